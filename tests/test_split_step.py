"""The train step's two halves (bmc/train/step.py: gradients_graph, apply_graph) in the generated NumPy module:
gradients() then apply() is train_step, bit for bit, for every example and every optimizer setting; the halves'
signatures are what a driver (bmc/train/replicas.py, Horovod, a federated server) relies on."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

import bmc
from bmc.runtime import load_source

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.bm"))


def _batch(model: bmc.Model, module, rng: np.random.Generator, n: int = 4) -> dict[str, np.ndarray]:
    feed = {}
    graph = model.compiled.train_step()
    for v in graph.inputs_with_role("input", "target"):
        shape = [n if isinstance(d, str) else d for d in v.type.shape]
        if v.type.dtype.startswith("i"):
            feed[v.name] = rng.integers(0, 2, shape)
        else:
            feed[v.name] = rng.standard_normal(shape).astype(module.DTYPE)
    return feed


def _both(model: bmc.Model, steps: int = 3) -> tuple[dict, dict, dict, dict]:
    module = load_source(model.generate("numpy", train=True))
    params, state = model.init_params(seed=1)
    feed = _batch(model, module, np.random.default_rng(0))
    whole = copy.deepcopy(params), copy.deepcopy(state)
    halves = copy.deepcopy(params), copy.deepcopy(state)
    lr = module.DTYPE(0.01) if "lr" in module.HYPER else None
    for step in range(steps):
        hyper = {"lr": lr, "rng": np.int64(step)}
        module.train_step(*whole, feed, *(hyper[k] for k in module.HYPER))
        grads = module.gradients(halves[0], feed, *(hyper[k] for k in module.HYPER if k != "lr"))
        module.apply(*halves, grads, lr)
    return *whole, *halves


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_gradients_then_apply_is_the_train_step(path, dtype):
    p1, s1, p2, s2 = _both(bmc.compile(path, dtype=dtype))
    assert sorted(p1) == sorted(p2) and sorted(s1) == sorted(s2)
    for name in p1:
        np.testing.assert_array_equal(p1[name], p2[name], err_msg=name)
    for name in s1:
        np.testing.assert_array_equal(s1[name], s2[name], err_msg=name)


SETTINGS = ["optimizer = sgd(lr = 0.1, momentum = 0.9, nesterov = true)", "optimizer = gd(lr = 0.1)",
            "optimizer = adamw(lr = 0.01, weight_decay = 0.1)", "optimizer = adam(lr = 0.01)\n    clip = 0.5",
            "optimizer = sgd(lr = 0.1)\n    l2 = 0.01\n    l1 = 0.001", "optimizer = adam(lr = 0.01)\n    freeze = h"]


@pytest.mark.parametrize("setting", SETTINGS, ids=["nesterov", "gd", "adamw", "clip", "l1-l2", "freeze"])
def test_every_optimizer_setting_splits_exactly(setting):
    source = f"""
model m(classes = 3) {{
    input  x: f32[N, 5]
    target label: i64[N]
    h      = relu(dense(x, 6))
    logits = dense(h, classes)
    output probs = softmax(logits)
    loss = cross_entropy(logits, label)
}}
train m {{
    {setting}
}}
"""
    model = bmc.compile_string(source)
    p1, s1, p2, s2 = _both(model)
    for name in p1:
        np.testing.assert_array_equal(p1[name], p2[name], err_msg=name)
    for name in s1:
        np.testing.assert_array_equal(s1[name], s2[name], err_msg=name)
    apply = model.compiled.apply()
    trainable = {v.name for v in apply.params}
    if "freeze" in setting:
        assert trainable == {"logits.W", "logits.b"}  # a frozen parameter has no gradient and no update
        assert not any(k.startswith("grad/h.") for k in model.compiled.gradients().outputs)
    assert {v.name for v in apply.inputs_with_role("grad")} == {f"grad/{n}" for n in trainable}


def test_the_halves_read_and_write_what_they_say():
    """gradients() leaves the trainable parameters as they are and returns 'grad/<name>' for each; apply()
    returns nothing and changes params and state in place."""
    model = bmc.compile("examples/cnn.bm")
    module = load_source(model.generate("numpy", train=True))
    params, state = model.init_params(seed=0)
    before = copy.deepcopy(params)
    feed = _batch(model, module, np.random.default_rng(1))
    grads = module.gradients(params, feed, np.int64(3))
    trainable = [v.name for v in model.compiled.apply().params]
    assert {k for k in grads if k.startswith("grad/")} == {f"grad/{n}" for n in trainable}
    for name in trainable:
        np.testing.assert_array_equal(params[name], before[name])
        assert grads[f"grad/{name}"].shape == params[name].shape
    running = [n for n in params if n not in trainable]
    assert running and all(not np.array_equal(params[n], before[n]) for n in running)  # batch norm's statistics
    assert module.apply(params, state, grads, np.float32(0.01)) == {}
    assert all(not np.array_equal(params[n], before[n]) for n in trainable)
