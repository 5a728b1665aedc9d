"""Training from the command line and the API, end to end, on real data."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bmc
import bmc.cli
from tests.conftest import fashion_mnist_or_skip


def test_mlp_on_digits_reaches_095(tmp_path, capsys):
    out = tmp_path / "mlp"
    code = bmc.cli.main(["train", "examples/mlp.bm", "--data", "digits", "--epochs", "40", "--quiet",
                         "-o", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "note: features = 64, from the data" in text
    manifest = json.loads((out / "manifest.json").read_text())
    final = manifest["training"]["history"][-1]
    assert final["test"]["accuracy"] >= 0.95
    assert set(final["test"]) == {"accuracy", "recall", "f1"}
    # `bmc eval` on the saved build agrees with the training log
    assert bmc.cli.main(["eval", str(out), "--data", "digits"]) == 0
    assert f"accuracy {final['test']['accuracy']:.4f}" in capsys.readouterr().out


def test_training_is_reproducible():
    model = bmc.compile("examples/mlp.bm", defines={"hidden": 16})
    a = model.train("digits", epochs=2, log=lambda s: None, progress=False)
    b = model.train("digits", epochs=2, log=lambda s: None, progress=False)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


@pytest.mark.parametrize("example, metric, bound", [
    ("logistic_regression", "accuracy", 0.95),
    ("residual_mlp", "accuracy", 0.94),
])
def test_examples_learn(example, metric, bound):
    trained = bmc.compile(f"examples/{example}.bm").train(log=lambda s: None, progress=False)
    assert trained.history.final.test[metric] >= bound


def test_linear_regression_with_full_batch_gd_converges_to_least_squares():
    model = bmc.compile("examples/linear_regression.bm")
    assert model.config.batch is None  # gd means full batch
    trained = model.train(epochs=400, log=lambda s: None, progress=False)
    from bmc.data import load_dataset

    d = load_dataset("diabetes")
    x = np.hstack([d.x_train, np.ones((len(d.x_train), 1), np.float32)]).astype(np.float64)
    solution, *_ = np.linalg.lstsq(x, d.y_train.astype(np.float64), rcond=None)
    best = np.mean((x @ solution - d.y_train) ** 2)
    assert trained.history.final.loss <= best * 1.01


@pytest.mark.slow
def test_fashion_mnist_mlp_matches_keras(capsys):
    """Acceptance: 5 epochs, batch 64, Adam 1e-3 reach the Keras model's level (>= 0.865)."""
    fashion_mnist_or_skip()
    trained = bmc.compile("examples/mlp.bm").train("fashion_mnist", log=lambda s: None, progress=False)
    assert trained.history.final.test["accuracy"] >= 0.865


def test_api_predict_save_load(tmp_path):
    model = bmc.compile_string(
        "model tiny(features = 4) { input x: f32[N, features] target y: i64[N]\n"
        "  logits = dense(x, 3) output p = softmax(logits) loss = cross_entropy(logits, y) }"
    )
    params, _ = model.init_params(0)
    build_dir = model.build(tmp_path / "b")
    loaded = bmc.load(build_dir)
    x = np.random.default_rng(0).random((7, 4), dtype=np.float32)
    p = loaded.predict(x)["p"]
    assert p.shape == (7, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-6)
    logits = x @ params["logits.W"] + params["logits.b"]
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p, expected, rtol=1e-5)


def test_a_training_process_keeps_its_freed_memory_on_glibc():
    """bmc train sets glibc's allocator to keep freed memory (bmc.runtime.keep_freed_memory): every mallopt call
    takes; elsewhere the call changes nothing and says so."""
    import platform

    from bmc.runtime import keep_freed_memory

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the allocator setting is glibc's")
    assert keep_freed_memory() is True
