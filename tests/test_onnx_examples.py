"""examples/run_onnx.py and examples/generate_onnx.py run an exported model with plain onnxruntime: in a fresh
interpreter that imports only numpy and onnxruntime (never bmc)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("onnx", reason="the ONNX backend needs the onnx package")
pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime")

import numpy as np
from bmc.backends import onnx as onnx_backend

import bmc
from tests.conftest import EXAMPLES

# run a script as __main__, then check which packages it pulled in
RUNNER = """
import runpy, sys
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
loaded = {m.split(".")[0] for m in sys.modules}
assert "bmc" not in loaded and "sklearn" not in loaded and "onnx" not in loaded, sorted(loaded)
"""


def run_script(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, "-c", RUNNER, str(EXAMPLES / script), *args], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_run_onnx_classifies_test_images(tmp_path):
    model = bmc.compile(EXAMPLES / "mlp.bm", defines={"features": 64, "hidden": 32})
    trained = model.train("digits", epochs=15, log=lambda s: None, progress=False)
    # the example scales and standardizes its inputs: so does the exported model, which takes raw pixels
    path = onnx_backend.export_inference(model.matching(trained), trained.params, tmp_path / "model.onnx")
    from bmc.data import load_dataset

    digits = load_dataset("digits")
    images = digits.x_test.reshape(-1, 8, 8).astype(np.uint8)  # raw pixels 0..16, as an image file would hold them
    np.savez(tmp_path / "test.npz", x_test=images, y_test=digits.y_test)
    out = run_script("run_onnx.py", str(path), str(tmp_path / "test.npz"))
    accuracy = float(out.split("accuracy")[1].split()[0])
    assert f"{len(images)} test images in batches of 1000, input 'image' [{len(images)}, 64]" in out and accuracy > 0.9
    assert accuracy == round(trained.evaluate("digits")["accuracy"], 4)  # the script prints 4 decimals
    assert out.startswith("image 0: class ")  # batch 1
    assert "the model takes raw samples (pixels 0..16" in out and "computes image = (image * 0.0625 - " in out


def test_generate_onnx_reads_the_vocabulary_from_the_metadata(tmp_path):
    model = bmc.compile(EXAMPLES / "char_lm.bm", defines={"vocab": 5, "context": 8, "width": 8, "heads": 2,
                                                           "blocks": 1})
    path = onnx_backend.export_inference(model, None, tmp_path / "model.onnx",
                                         metadata={"vocab": "ab c\n", "window": 8})
    out = run_script("generate_onnx.py", str(path), "a b", "40")
    assert out.startswith("a b") and len(out) == len("a b") + 40 + 1 and set(out) <= set("ab c\n")


def test_cli_builds_onnx_and_trains_through_onnxruntime(tmp_path, capsys):
    """`bmc build --target onnx [--train]` and `bmc train --backend onnxruntime` (with a ragged last batch) agree
    with the NumPy backend's training."""
    import json

    import bmc.cli

    out = tmp_path / "onnx"
    assert bmc.cli.main(["build", "examples/mlp.bm", "--target", "onnx", "--train", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["apply.onnx", "gradients.onnx", "manifest.json", "model.onnx",
                                                     "params.npz", "state.npz", "train_step.onnx"]
    assert json.loads((out / "manifest.json").read_text())["target"] == "onnx"
    runs = {}
    for backend in ("numpy", "onnxruntime"):
        assert bmc.cli.main(["train", "examples/mlp.bm", "--data", "digits", "--epochs", "2", "--batch", "100",
                             "--backend", backend, "--quiet", "-o", str(tmp_path / backend)]) == 0
        runs[backend] = json.loads((tmp_path / backend / "manifest.json").read_text())["training"]["history"]
    for a, b in zip(runs["numpy"], runs["onnxruntime"], strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-5 and a["test"] == pytest.approx(b["test"], abs=1e-3)
    trained = tmp_path / "numpy"
    assert bmc.cli.main(["build", "examples/mlp.bm", "--target", "onnx", "--params", str(trained), "-o",
                         str(tmp_path / "trained_onnx")]) == 0


def test_trained_build_with_standardized_inputs_exports_to_raw_inputs(tmp_path):
    """The build's input standardization is folded into the first layer: model.onnx takes raw pixels, has the
    torch-sized node count, and predicts what the NumPy build predicts."""
    import onnx
    import onnxruntime as ort

    trained = bmc.compile("examples/mlp.bm").train("digits", epochs=1, log=lambda s: None, progress=False)
    assert trained.manifest["preprocess"]["std"] > 0
    model = bmc.compile("examples/mlp.bm", defines={"features": 64})
    out = model.build(tmp_path / "onnx", target="onnx", trained=trained)
    proto = onnx.load(out / "model.onnx")
    assert [n.op_type for n in proto.graph.node] == ["Gemm", "Relu", "Gemm", "Softmax"]
    x = np.random.default_rng(0).integers(0, 17, (7, 64)).astype(np.float32)  # raw pixels
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"image": x})[0], trained.predict(x)["probs"], rtol=1e-4,
                               atol=1e-6)
