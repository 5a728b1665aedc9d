"""Whole-model gradients, for every model with a loss in examples/ (new examples are picked up automatically).

Each model is compiled with its large int constants shrunk (`-D hidden=5`), its gradient graph is optimized by the
same passes as a build, retyped to float64 and compiled to NumPy code; every parameter's and every float input's
gradient is then checked against central finite differences along a random direction. The train step with plain
gradient descent at lr = 1 must move each parameter by exactly minus that gradient.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from bmc.backends.numpy import compile_function

import bmc
from bmc import ops
from bmc.ir import dims
from bmc.ir.graph import Graph, Value
from bmc.passes import precision
from bmc.passes.pipeline import optimize
from bmc.syntax import parse
from bmc.train.config import OptimizerConfig, TrainConfig
from bmc.train.step import gradient_graph, train_graph

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.bm"))
BATCH = 5  # the size of N; other symbolic dims get OTHER_DIM
OTHER_DIM = 3
SMALL = (8, 4, 12)  # multiples of 4, so attention widths still divide into heads
EPS = 1e-6  # small enough that a step rarely crosses a ReLU or max-pool kink of the bigger models
RTOL = 1e-6
PASS_THROUGH = (ops.Reshape, ops.Transpose, ops.BroadcastTo, ops.Slice, ops.Concat, ops.Cast)


def example_models() -> list:
    return [pytest.param(path, name, id=f"{path.stem}.{name}")
            for path in EXAMPLES for name in parse(path.read_text(encoding="utf-8"), str(path)).models]


def small_model(path: Path, name: str) -> bmc.Model:
    model = bmc.compile(path, model=name)
    big = [k for k, v in model.compiled.model.constants.items() if type(v) is int and v > 8]
    if not big:
        return model
    return bmc.compile(path, model=name, defines={k: SMALL[i % len(SMALL)] for i, k in enumerate(big)})


def consumers(graph: Graph, v: Value) -> list[tuple[ops.Op, tuple[Value, ...]]]:
    """The ops that use v's values, looking through reshapes, casts and other data movement."""
    users, found, todo = graph.users(), [], [v]
    while todo:
        for node in users.get(todo.pop(), []):
            if isinstance(node.op, PASS_THROUGH):
                todo.extend(node.outputs)
            else:
                found.append((node.op, node.inputs))
    return found


def random_data(graph: Graph, v: Value, rng: np.random.Generator) -> np.ndarray:
    """Data of v's shape that its consumers accept: indices in range, probabilities, 0/1 targets."""
    shape = tuple(int(np.prod([BATCH if s == "N" else OTHER_DIM for s in syms])) * static
                  for static, syms in map(dims.factors, v.type.shape))
    users = consumers(graph, v)
    if v.type.dtype == "bool":
        return rng.random(shape) < 0.5
    if not v.type.is_float:
        limits = [inputs[0].type.shape[-1] for op, inputs in users if isinstance(op, ops.CrossEntropy)]
        limits += [op.depth for op, _ in users if isinstance(op, ops.OneHot)]
        limits += [inputs[0].type.shape[0] for op, inputs in users if isinstance(op, ops.Gather)]  # table rows
        return rng.integers(0, min(limits, default=2), shape)
    if any(isinstance(op, ops.CrossEntropy) for op, _ in users):
        e = np.exp(rng.standard_normal(shape))
        return e / e.sum(axis=-1, keepdims=True)
    if any(isinstance(op, ops.BinaryCrossEntropy) for op, _ in users):
        return rng.random(shape)
    return rng.standard_normal(shape)


def setup(path: Path, name: str):
    model = small_model(path, name)
    if model.compiled.model.loss is None:
        pytest.skip(f"model {name} has no loss")
    rng = np.random.default_rng(zlib.crc32(f"{path.stem}.{name}".encode()))
    graph = model.compiled.model.graph
    data = {v.name: random_data(graph, v, rng) for v in graph.inputs_with_role("input", "target")}
    if any(v.name == "rng" for v in graph.inputs_with_role("hyper")):
        data["rng"] = np.int64(12345)  # a fixed dropout key: the loss is then a deterministic function
    params = {k: p.astype(np.float64) + 0.1 * rng.standard_normal(p.shape) for k, p in model.init_params()[0].items()}
    return model, data, params, rng


def checked_inputs(graph: Graph) -> list[Value]:
    """Every float data input and float target."""
    return [v for v in graph.inputs_with_role("input", "target") if v.type.is_float]


def compiled(graph: Graph):
    return compile_function(precision.run(optimize(graph), "f64"))


@pytest.mark.parametrize(("path", "name"), example_models())
def test_every_gradient_matches_finite_differences(path: Path, name: str):
    model, data, params, rng = setup(path, name)
    gradients = compiled(gradient_graph(model.compiled.model, wrt="all"))
    feeds = {**data, **params}
    out = gradients(feeds)
    checked = [*params, *(v.name for v in checked_inputs(model.compiled.model.graph))]
    assert set(checked) <= {k.removeprefix("grad/") for k in out}
    errors = {}
    for key in checked:
        v = rng.standard_normal(np.shape(feeds[key]))
        loss_plus = gradients({**feeds, key: feeds[key] + EPS * v})["loss"]
        loss_minus = gradients({**feeds, key: feeds[key] - EPS * v})["loss"]
        numeric = float(loss_plus - loss_minus) / (2 * EPS)
        analytic = float(np.vdot(out[f"grad/{key}"], v))
        magnitude = float(np.abs(out[f"grad/{key}"] * v).sum())  # the size of the terms of <grad, v>
        noise = 1e-3 * max(1.0, abs(float(out["loss"])))  # float64 rounding of the loss, divided by 2 EPS
        error = abs(analytic - numeric) / max(abs(analytic), abs(numeric), magnitude, noise)
        if not error < RTOL:
            errors[key] = f"<grad, v> = {analytic!r}, finite differences give {numeric!r} (relative error {error:.1e})"
    assert errors == {}


@pytest.mark.parametrize(("path", "name"), example_models())
def test_gradient_descent_step_moves_each_parameter_by_minus_its_gradient(path: Path, name: str):
    model, data, params, _ = setup(path, name)
    gd = TrainConfig(optimizer=OptimizerConfig("gd", {"lr": 1.0}))
    step = compiled(train_graph(model.compiled.model, gd))
    grads = compiled(gradient_graph(model.compiled.model, wrt="params"))({**data, **params})
    updated = step({**data, **{k: p.copy() for k, p in params.items()}, "lr": np.float64(1.0)})  # may update in place
    graph = model.compiled.model.graph
    trainable = [p.name for p in graph.params if graph.param_info[p].trainable]
    assert {f"params/{k}" for k in trainable} <= set(updated)
    assert updated["loss"] == grads["loss"]
    for k in trainable:
        np.testing.assert_array_equal(updated[f"params/{k}"], params[k] - grads[f"grad/{k}"], err_msg=k)
