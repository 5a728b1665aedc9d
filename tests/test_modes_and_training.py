"""Training versus inference behaviour, and the training features the seed's models need."""

from __future__ import annotations

import math

import numpy as np
import pytest

import bmc
import bmc.runtime
from bmc.data import load_dataset
from bmc.diagnostics import BmcError
from bmc.frontend.preprocess import Preprocess
from bmc.train.augment import Augment, shift_images
from bmc.train.schedules import Schedule

BN_DROPOUT = """model m {
  input x: f32[N, 6]  target t: i64[N]
  h = dropout(relu(batch_norm(dense(x, 8))), 0.5)
  logits = dense(h, 3)
  output probs = softmax(logits)
  loss = cross_entropy(logits, t)
}
train m { optimizer = sgd(lr = 0.1) }"""


def module_and_params(text: str):
    model = bmc.compile_string(text)
    module = bmc.runtime.load_source(model.generate())
    params, state = model.init_params(0)
    return model, module, params, state


def batch(n=16):
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((n, 6)).astype(np.float32), "t": rng.integers(0, 3, n)}


def test_dropout_is_off_and_running_statistics_are_used_in_inference():
    _, module, params, _state = module_and_params(BN_DROPOUT)
    b = batch()
    # inference is deterministic and uses the running statistics (initially mean 0, var 1)
    a, c = module.forward(params, b["x"])["probs"], module.forward(params, b["x"])["probs"]
    np.testing.assert_array_equal(a, c)
    h = b["x"] @ params["h.dense.W"] + params["h.dense.b"]
    gamma, beta = params["h.batch_norm.gamma"], params["h.batch_norm.beta"]
    normalized = np.maximum((h - 0) / np.sqrt(1 + 1e-5) * gamma + beta, 0)
    logits = normalized @ params["logits.W"] + params["logits.b"]
    want = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(a, want / want.sum(1, keepdims=True), rtol=1e-5)


def test_training_draws_dropout_from_the_key_and_updates_running_statistics():
    _, module, params, state = module_and_params(BN_DROPOUT)
    b = batch()
    lr = np.float32(0.0)  # no parameter change: only the running statistics move
    p1, s1 = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in state.items()}
    first = module.train_step(p1, s1, b, np.int64(1), lr)["probs"]
    p2, s2 = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in state.items()}
    again = module.train_step(p2, s2, b, np.int64(1), lr)["probs"]
    other = module.train_step({k: v.copy() for k, v in params.items()}, dict(state), b, np.int64(2), lr)["probs"]
    np.testing.assert_array_equal(first, again)  # same key, same mask
    assert not np.allclose(first, other)  # another key, another mask
    h = b["x"] @ params["h.dense.W"] + params["h.dense.b"]
    np.testing.assert_allclose(p1["h.batch_norm.running_mean"], 0.1 * h.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(p1["h.batch_norm.running_var"], 0.9 + 0.1 * h.var(0, ddof=1), rtol=1e-5)
    np.testing.assert_array_equal(p1["h.dense.W"], params["h.dense.W"])


def test_a_sequence_of_any_length_uses_the_same_graph():
    model = bmc.compile("examples/lstm.bm", defines={"steps": 28})
    longer = bmc.compile("examples/lstm.bm", defines={"steps": 512})
    count = len(model.compiled.train_step().nodes)
    assert count == len(longer.compiled.train_step().nodes)
    assert sum(n.op.name == "scan" for n in model.compiled.train_step().nodes) == 2  # forward and reverse scans


def test_repeat_gives_each_copy_its_own_parameters():
    model = bmc.compile("examples/vit.bm")
    names = [p.name for p in model.compiled.model.params]
    assert "h.0.a.attention.q.W" in names and "h.1.a.attention.q.W" in names


def test_causal_attention_ignores_later_tokens():
    model = bmc.compile("examples/char_lm.bm", defines={"vocab": 10, "width": 16, "context": 8})
    module = bmc.runtime.load_source(model.generate())
    params, _ = model.init_params(0)
    tokens = np.array([[1, 2, 3, 4, 5, 6]])
    changed = tokens.copy()
    changed[0, 4:] = [9, 9]
    a, b = module.forward(params, tokens)["probs"], module.forward(params, changed)["probs"]
    np.testing.assert_allclose(a[0, :4], b[0, :4], rtol=1e-6)
    assert not np.allclose(a[0, 4:], b[0, 4:])
    # a shorter prompt runs through the same build (learned positions are sliced to the sequence length)
    assert module.forward(params, tokens[:, :3])["probs"].shape == (1, 3, 10)


def test_schedules():
    cosine = Schedule("cosine", warmup=10, final=0.1)
    assert cosine.lr(1.0, 0, 110) == pytest.approx(0.1)
    assert cosine.lr(1.0, 9, 110) == pytest.approx(1.0)
    assert cosine.lr(1.0, 60, 110) == pytest.approx(0.55)
    assert cosine.lr(1.0, 110, 110) == pytest.approx(0.1)
    step = Schedule("step", every=100, gamma=0.5)
    assert [step.lr(2.0, s, 1000) for s in (0, 99, 100, 250)] == [2.0, 2.0, 1.0, 0.5]


def test_clipping_bounds_the_global_norm():
    text = """model m { input x: f32[N, 2] target t: f32[N, 1]
      param W: f32[2, 1] = 0  output p = x @ W  loss = mse(p, t) }
      train m { optimizer = gd(lr = 1.0) clip = 0.5 }"""
    _model, module, params, state = module_and_params(text)
    x, t = np.array([[3.0, 4.0]], np.float32), np.array([[100.0]], np.float32)
    module.train_step(params, state, {"x": x, "t": t}, np.float32(1.0))
    assert np.linalg.norm(params["W"]) == pytest.approx(0.5, rel=1e-4)


def test_adamw_decays_weights_but_not_biases():
    text = """model m { input x: f32[N, 2] target t: f32[N, 1]
      output p = dense(x, 1, init = ones, bias_init = ones)  loss = mse(p, t) }
      train m { optimizer = adamw(lr = 0.1, weight_decay = 0.5) }"""
    _model, module, params, state = module_and_params(text)
    x, t = np.zeros((4, 2), np.float32), np.ones((4, 1), np.float32)  # zero gradient: only the decay acts
    module.train_step(params, state, {"x": x, "t": t}, np.float32(0.1))
    np.testing.assert_allclose(params["p.W"], 0.95, rtol=1e-6)
    np.testing.assert_allclose(params["p.b"], 1.0)


def test_augmentation_is_seeded_and_shifts_with_zero_fill():
    x = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    out = shift_images(x, np.array([[1, 0], [0, -1]]))
    np.testing.assert_array_equal(out[0, 0, 1:], x[0, 0, :3])
    np.testing.assert_array_equal(out[0, 0, 0], 0)
    np.testing.assert_array_equal(out[1, 0, :, :3], x[1, 0, :, 1:])
    aug = Augment(shift=2, flip=True)
    a = aug(x, np.random.default_rng(5))
    b = aug(x, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


def test_normalization_is_saved_and_computed_by_the_model(tmp_path):
    """The data set's scale and the training set's statistics are the build's contract; the model computes it from
    raw input, so its own forward and predict() agree, before and after saving."""
    text = """model m(features = 64) { input x: f32[N, features] target t: i64[N]
      logits = dense(x, 10) output probs = softmax(logits) loss = cross_entropy(logits, t) }
      train m { data = digits epochs = 1 normalize = true validation = 0.2 }"""
    trained = bmc.compile_string(text).train(log=lambda s: None, progress=False)
    pre = trained.manifest["preprocess"]
    digits = load_dataset("digits")
    raw = digits.x_train.astype(np.float64)
    assert pre["input"] == "x" and pre["scale"] == 1 / 16 and pre["raw"].startswith("pixels 0..16")
    assert pre["mean"] == pytest.approx(raw.mean() / 16) and pre["std"] == pytest.approx(raw.std() / 16)
    final = trained.history.final
    assert set(final.valid) == {"loss", "accuracy"} and set(final.test) == {"accuracy"}  # the test set, at the end
    trained.save(tmp_path / "b")
    again = bmc.load(tmp_path / "b")
    x = np.random.default_rng(0).integers(0, 17, (3, 64)).astype(np.float32)  # raw pixels
    np.testing.assert_allclose(again.predict(x)["probs"], trained.predict(x)["probs"], rtol=1e-6)
    np.testing.assert_allclose(again.module.forward(again.params, x)["probs"], again.predict(x)["probs"], rtol=1e-6)


def test_given_normalization_is_in_the_scaled_units():
    text = """model m { input x: f32[N, 64] target t: i64[N]
      logits = dense(x, 10) loss = cross_entropy(logits, t) }
      train m { data = digits epochs = 1 normalize = 0.25, 0.5 }"""
    trained = bmc.compile_string(text).train(log=lambda s: None, progress=False)
    assert trained.model.preprocess == Preprocess("x", 1 / 16, 0.25, 0.5, load_dataset("digits").raw_format)
    assert trained.manifest["preprocess"]["computes"] == "x = (x * 0.0625 - 0.25) / 0.5"


def test_text_training_and_generation(tmp_path):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    model = bmc.compile("examples/char_lm.bm", defines={"width": 16, "context": 16, "blocks": 1})
    trained = model.train(f"text:{corpus}", steps=30, batch=8, log=lambda s: None, progress=False)
    final = trained.history.final
    assert math.isfinite(final.valid["perplexity"]) and final.valid["perplexity"] < 30
    assert trained.manifest["vocab"] == "".join(sorted(set(corpus.read_text())))
    trained.save(tmp_path / "lm")
    text = bmc.load(tmp_path / "lm").generate("the ", length=20, seed=1)
    assert text.startswith("the ") and len(text) == 24
    with pytest.raises(BmcError, match="characters the model never saw"):
        bmc.load(tmp_path / "lm").generate("THE")
