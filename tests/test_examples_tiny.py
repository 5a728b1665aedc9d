"""Every example trains from the command line at a tiny size (a few steps on a small .npz of 28x28 images)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bmc.cli
from tests.conftest import EXAMPLES

SHRINK = {"hidden": 8, "width": 8, "heads": 2, "blocks": 1}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x_train=rng.random((48, 28, 28), dtype=np.float32), y_train=rng.integers(0, 10, 48),
             x_test=rng.random((16, 28, 28), dtype=np.float32), y_test=rng.integers(0, 10, 16))
    return path


@pytest.mark.parametrize("name", ["cnn", "gru", "lstm", "rnn", "vit", "mlp"])
def test_example_trains_at_tiny_size(name, images, tmp_path, capsys):
    model = bmc.compile(EXAMPLES / f"{name}.bm")
    defines = [f"{k}={v}" for k, v in SHRINK.items() if k in model.compiled.model.constants]
    args = ["train", str(EXAMPLES / f"{name}.bm"), "--data", str(images), "--steps", "2", "--batch", "16", "--quiet",
            "-o", str(tmp_path / name)]
    for d in defines:
        args += ["-D", d]
    assert bmc.cli.main(args) == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / name / "manifest.json").read_text())
    history = manifest["training"]["history"]
    assert history[-1]["step"] == 2 and np.isfinite(history[-1]["loss"])
    assert bmc.cli.main(["eval", str(tmp_path / name), "--data", str(images)]) == 0
