"""ONNX models compute what the NumPy backend (the reference) computes.

* Inference, every example at tiny size (large int constants shrunk as in test_model_gradients): onnxruntime (CPU)
  and onnx.reference.ReferenceEvaluator against the NumPy backend at batch sizes 1, 7 and 64, relative error
  (max |a - b| / max |b|) below 1e-5.
* Training, every example with a loss: 50 steps of the exported train step in onnxruntime (parameters kept in its
  memory) against 50 steps of the NumPy backend from the same start and data: parameters agree to 1e-4.
* The training loop through onnxruntime (`bmc.backends.onnx.fit`) gives the NumPy loop's parameters and history.
* Dropout's random numbers are equal bit for bit.
"""

from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import pytest

pytest.importorskip("onnx", reason="the ONNX backend needs the onnx package")
pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime")

import numpy as np
from bmc.backends import onnx as onnx_backend
from bmc.backends.numpy import compile_function
from onnx.reference import ReferenceEvaluator

import bmc
from bmc import ops
from bmc.ir import dims
from bmc.ir.graph import Builder, Graph, Value
from bmc.ir.types import TensorType
from bmc.passes.pipeline import optimize
from bmc.reference.interpret import run_graph
from bmc.train.config import OPTIMIZERS, OptimizerConfig
from bmc.train.step import train_graph
from tests.conftest import EXAMPLES
from tests.test_model_gradients import consumers, example_models, small_model

CPU = ["CPUExecutionProvider"]
OTHER_DIM = 3  # symbolic dims other than N (sequence lengths)


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    want = np.asarray(want, dtype=np.float64)
    return float(np.abs(np.asarray(got, dtype=np.float64) - want).max() / max(np.abs(want).max(), 1e-30))


def batch_data(graph: Graph, values: list[Value], n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Data of each value's shape (N = n) that its consumers accept: class indices and token ids in range."""
    out = {}
    for v in values:
        shape = tuple(static * int(np.prod([n if s == "N" else OTHER_DIM for s in syms]))
                      for static, syms in map(dims.factors, v.type.shape))
        if v.type.is_float:
            out[v.name] = rng.standard_normal(shape).astype(np.float32)
            continue
        users = consumers(graph, v)
        limits = [inputs[0].type.shape[-1] for op, inputs in users if isinstance(op, ops.CrossEntropy)]
        limits += [inputs[0].type.shape[0] for op, inputs in users if isinstance(op, ops.Gather)]
        out[v.name] = rng.integers(0, min(limits, default=2), shape)
    return out


def perturbed(params: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Initial parameters moved off their special values (zero biases, unit running variances)."""
    out = {}
    for k, p in params.items():
        noise = 0.1 * rng.standard_normal(p.shape).astype(p.dtype)
        out[k] = np.abs(p + noise) if k.endswith("running_var") else p + noise
    return out


def _seed(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


# ---- inference ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "name"), example_models())
def test_inference_matches_numpy_at_batch_1_7_64(path: Path, name: str):
    model = small_model(path, name)
    graph = model.compiled.inference()
    rng = _seed(name)
    params = perturbed(model.init_params(0)[0], rng)
    proto = onnx_backend.inference_model(model, params)
    session, reference, numpy_fn = onnx_backend.Predictor(proto, CPU), ReferenceEvaluator(proto), \
        compile_function(graph)
    for n in (1, 7, 64):
        data = batch_data(graph, graph.inputs_with_role("input"), n, rng)
        want = numpy_fn({**data, **params})
        got = session(**data)
        ref = dict(zip(session.outputs, reference.run(None, data), strict=True))
        for k in graph.outputs:
            assert got[k].shape == want[k].shape
            assert relative_error(got[k], want[k]) < 1e-5, (k, n, "onnxruntime")
            assert relative_error(ref[k], want[k]) < 1e-5, (k, n, "ReferenceEvaluator")


def tiny_cnn() -> bmc.Model:
    """examples/cnn.bm with 10x10 images, 4 and 6 channels and 16 hidden units: same layers, a fraction of the work."""
    text = (EXAMPLES / "cnn.bm").read_text(encoding="utf-8")
    for old, new in (("28, 28]", "10, 10]"), ("(image, 32, 3)", "(image, 4, 3)"), ("(c1, 64, 3)", "(c1, 6, 3)"),
                     ("flatten(c2), 128)", "flatten(c2), 16)")):
        assert old in text
        text = text.replace(old, new)
    return bmc.compile_string(text, filename="examples/cnn.bm")


def test_tiny_cnn_inference_matches_numpy():
    model = tiny_cnn()
    graph, rng = model.compiled.inference(), _seed("tiny_cnn")
    params = perturbed(model.init_params(0)[0], rng)
    proto = onnx_backend.inference_model(model, params)
    data = batch_data(graph, graph.inputs_with_role("input"), 7, rng)
    want = compile_function(graph)({**data, **params})["probs"]
    assert relative_error(onnx_backend.Predictor(proto, CPU)(**data)["probs"], want) < 1e-5
    assert relative_error(ReferenceEvaluator(proto).run(None, data)[0], want) < 1e-5


# ---- training ----------------------------------------------------------------------------------------------------

# Models with a parameter whose exact gradient is zero (a convolution's bias before batch norm, attention's key bias:
# softmax ignores a shift) train with SGD here: Adam divides such a gradient, pure rounding noise, by its own size,
# so the parameter wanders by about lr per step differently on any two machines. SGD leaves it at noise level.
SGD = OptimizerConfig("sgd", {**OPTIMIZERS["sgd"], "lr": 0.01, "momentum": 0.9})
TRAIN_CASES = [pytest.param(lambda p=p, n=n: small_model(p, n), None, id=f"{p.stem}.{n}")
               for p, n in (x.values for x in example_models()) if p.stem not in ("cnn", "vit", "char_lm")]
TRAIN_CASES += [pytest.param(tiny_cnn, SGD, id="cnn.tiny"),
                pytest.param(lambda: small_model(EXAMPLES / "vit.bm", "vit"), SGD, id="vit.vit"),
                pytest.param(lambda: small_model(EXAMPLES / "char_lm.bm", "char_lm"), SGD, id="char_lm.char_lm")]


@pytest.mark.parametrize(("make", "optimizer"), TRAIN_CASES)
def test_fifty_train_steps_match_numpy(make, optimizer):
    model = make()
    if model.compiled.model.loss is None:
        pytest.skip("no loss")
    config = model.compiled.config
    if optimizer is not None:
        config = dataclasses.replace(config, optimizer=optimizer)
    graph = optimize(train_graph(model.compiled.model, config))
    numpy_step = compile_function(graph)
    params, state = model.init_params(0)
    state = {v.name: np.zeros(v.type.shape, np.float32) for v in graph.inputs_with_role("state")}
    trainer = onnx_backend.Trainer(onnx_backend.graph_to_model(graph), params, state, CPU)
    hyper = [v.name for v in graph.inputs_with_role("hyper")]
    rng = _seed(graph.name)
    p_np, s_np = dict(params), dict(state)
    for step in range(50):
        batch = batch_data(graph, graph.inputs_with_role("input", "target"), 16, rng)
        scalars = {"lr": np.float32(config.optimizer.lr), "rng": np.int64(1_000_003 + step)}
        scalars = {k: scalars[k] for k in hyper}
        out = numpy_step({**batch, **p_np, **s_np, **scalars})
        p_np = {k: out.get(f"params/{k}", v) for k, v in p_np.items()}
        s_np = {k: out.get(f"state/{k}", v) for k, v in s_np.items()}
        result = trainer.step(batch, **scalars)
        assert relative_error(result["loss"], out["loss"]) < 1e-4, step
    p_ort = trainer.params()
    for k, want in p_np.items():
        moved = np.abs(want - params[k]).max()
        if moved < 1e-6:  # a parameter with a zero gradient (see SGD above): both backends leave it alone
            assert np.abs(p_ort[k] - params[k]).max() < 1e-6, k
        else:
            assert relative_error(p_ort[k], want) < 1e-4, k
    assert all(relative_error(trainer.state()[k], v) < 1e-4 for k, v in s_np.items() if np.abs(v).max() > 1e-6)


@pytest.mark.parametrize("make", [lambda: small_model(EXAMPLES / "mlp.bm", "mlp"), tiny_cnn,
                                  lambda: small_model(EXAMPLES / "char_lm.bm", "char_lm")],
                         ids=["mlp", "cnn.tiny", "char_lm"])
def test_a_train_step_in_the_reference_evaluator_matches_numpy(make):
    """The standard's own evaluator agrees too (dropout's hash, scatter-add, max-pool indices, SGD with momentum);
    it cannot run the recurrent models' train steps: its Scan implements neither reversed scans nor axes but 0."""
    model = make()
    graph = optimize(train_graph(model.compiled.model, dataclasses.replace(model.compiled.config, optimizer=SGD)))
    params, _ = model.init_params(0)
    rng = _seed(graph.name)
    feeds = {**params, **batch_data(graph, graph.inputs_with_role("input", "target"), 5, rng),
             **{v.name: np.ones(v.type.shape, np.float32) for v in graph.inputs_with_role("state")}}
    hyper = {"lr": np.float32(0.01), "rng": np.int64(77)}
    feeds.update({v.name: hyper[v.name] for v in graph.inputs_with_role("hyper")})
    want = compile_function(graph)(dict(feeds))
    proto = onnx_backend.graph_to_model(graph)
    got = dict(zip([o.name for o in proto.graph.output], ReferenceEvaluator(proto).run(None, feeds), strict=True))
    for k, v in want.items():  # the velocities start at 1, so even a parameter with a zero gradient moves
        assert relative_error(got[k], v) < 1e-5, k


def test_training_loop_through_onnxruntime_matches_numpy():
    from bmc.data import load_dataset
    from bmc.runtime import load_source
    from bmc.train.loop import ArrayTask, Run, fit

    digits = load_dataset("digits")
    model = bmc.compile(EXAMPLES / "mlp.bm", defines={"features": 64, "hidden": 16})
    config = dataclasses.replace(model.compiled.config, epochs=2, batch=64)
    n = 256
    train = {"image": digits.x_train[:n], "label": digits.y_train[:n]}
    test = {"image": digits.x_test, "label": digits.y_test}

    def task():
        return ArrayTask(train, {}, test, "probs", 10, ("accuracy",), config.batch)

    runs = []
    for backend in ("numpy", "onnxruntime"):
        params, state = model.init_params(0)
        if backend == "numpy":
            history = fit(load_source(model.generate("numpy", train=True)), config, params, state, task(),
                          log=lambda s: None, progress=False, run=Run(test_every_epoch=True))
        else:
            history = onnx_backend.fit(model, config, params, state, task(), log=lambda s: None, progress=False,
                                       provider_list=CPU, run=Run(test_every_epoch=True))
        runs.append((params, state, history))
    (p_np, s_np, h_np), (p_ort, s_ort, h_ort) = runs
    assert all(relative_error(p_ort[k], p_np[k]) < 1e-4 for k in p_np)
    assert all(relative_error(s_ort[k], s_np[k]) < 1e-4 for k in s_np)
    for a, b in zip(h_np.epochs, h_ort.epochs, strict=True):
        assert a.step == b.step and abs(a.loss - b.loss) < 1e-4 * abs(a.loss)
        assert a.test == pytest.approx(b.test, abs=1e-3)


# ---- randomness --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [0, 12345, -5, 2**40 + 3, 2**63 - 1])
def test_dropout_numbers_are_equal_bit_for_bit(key: int):
    g = Graph("random")
    x = g.add_input(TensorType("f32", ("N", 3, 5)), "x", "input")
    k = g.add_input(TensorType("i64", ()), "key", "hyper")
    g.outputs = {"u": Builder(g).emit(ops.RandomUniformLike(salt=7), x, k)}
    proto = onnx_backend.graph_to_model(g)
    feeds = {"x": np.zeros((11, 3, 5), np.float32), "key": np.int64(key)}
    want = run_graph(g, feeds)["u"]
    assert want.dtype == np.float32 and len(np.unique(want)) > 100
    np.testing.assert_array_equal(onnx_backend.Predictor(proto, CPU)(**feeds)["u"], want)
    np.testing.assert_array_equal(ReferenceEvaluator(proto).run(None, feeds)[0], want)
