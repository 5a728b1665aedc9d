"""Acceptance of ONNX import for fine-tuning: a ResNet-like CNN trained in PyTorch on five Fashion-MNIST classes,
exported by torch.onnx.export, imported by `bmc import`, its head replaced by a 10-class one (a one-line edit of
the .bm file), then trained by `bmc train --params` on all ten classes twice: with the imported features frozen
(only the head learns) and with everything fine-tuned. Fine-tuning must beat the frozen features; the fine-tuned
model's train_step.onnx then trains in plain onnxruntime (examples/train_onnx.py, in an interpreter that never
imports bmc)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the exported model is written in PyTorch (pip install '.[reference]')")
pytest.importorskip("onnxruntime", reason="bmc import checks against onnxruntime")

import bmc.cli  # noqa: E402
from bmc.data import load_dataset  # noqa: E402
from tests.conftest import EXAMPLES, fashion_mnist_or_skip  # noqa: E402
from tests.onnx_zoo import ResNet  # noqa: E402
from tests.test_onnx_examples import RUNNER  # noqa: E402

STEPS = 400


def pretrained(tmp_path) -> str:
    """ResNet-like features learned on classes 0-4 in PyTorch, exported with its 5-class head."""
    data = load_dataset("fashion_mnist")
    keep = data.y_train < 5
    x = torch.tensor(data.x_train[keep][:12000].astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.tensor(data.y_train[keep][:12000].astype(np.int64))
    torch.manual_seed(0)
    net = ResNet(width=8, classes=5)
    net.conv1 = torch.nn.Conv2d(1, 8, 3, 1, 1, bias=False)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    net.train()
    for step in range(300):
        pick = torch.randint(0, len(x), (64,), generator=torch.Generator().manual_seed(step))
        loss = torch.nn.functional.cross_entropy(net(x[pick]), y[pick])
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path / "pretrained.onnx"
    torch.onnx.export(net.eval(), (x[:2],), str(path), dynamo=False, opset_version=17, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}})
    return str(path)


def train(args: list[str], out) -> float:
    assert bmc.cli.main(["train", *args, "--data", "fashion_mnist", "--steps", str(STEPS), "--batch", "64",
                         "--lr", "3e-3",
                         "--quiet", "-o", str(out)]) == 0
    return json.loads((out / "manifest.json").read_text())["training"]["history"][-1]["test"]["accuracy"]


@pytest.mark.slow
def test_fine_tuning_an_imported_cnn_beats_its_frozen_features(tmp_path, capsys):
    fashion_mnist_or_skip()
    onnx_path = pretrained(tmp_path)
    model = tmp_path / "resnet.bm"
    assert bmc.cli.main(["import", onnx_path, "-o", str(model), "--loss", "cross_entropy"]) == 0
    source = model.read_text()
    head = re.search(r"^    output (\w+) = dense\((.*), 5\)$", source, re.M)  # the new head: a one-line edit
    assert head, source
    model.write_text(source.replace(head.group(0), head.group(0).replace(", 5)", ", 10)")))
    params = str(tmp_path / "params.npz")
    features = sorted({name.split(".")[0] for name in np.load(params).files} - {head.group(1)})
    frozen = train([str(model), "--params", params, "--freeze", ",".join(features)], tmp_path / "frozen")
    tuned = train([str(model), "--params", params], tmp_path / "tuned")
    print(f"test accuracy: frozen features {frozen:.4f}, fine-tuned {tuned:.4f}")
    assert tuned > frozen + 0.05 and tuned > 0.7
    # the fine-tuned model's train step, exported and trained in onnxruntime alone
    out = tmp_path / "onnx"
    assert bmc.cli.main(["build", str(model), "--target", "onnx", "--train", "--params", str(tmp_path / "tuned"),
                         "-o", str(out)]) == 0
    run = subprocess.run([sys.executable, "-c", RUNNER, str(EXAMPLES / "train_onnx.py"), str(out),
                          str(fashion_mnist_or_skip()), "60", "64", "3e-4"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    first, last = (float(v) for v in re.search(r"mean loss (\S+), last 20 steps' (\S+)", run.stdout).groups())
    assert np.isfinite(first) and last < 1.0, run.stdout
