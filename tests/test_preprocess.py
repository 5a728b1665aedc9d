"""One preprocessing contract per build: every artifact takes the data set's raw samples and computes
(raw * scale - mean) / std itself, as the manifest and the ONNX metadata record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bmc
import bmc.cli
from bmc import artifacts
from bmc.data import load_dataset
from bmc.diagnostics import BmcError, UsageError
from bmc.frontend.preprocess import Preprocess
from bmc.runtime import load_module, load_source
from tests.cuda_emulator import emulate
from tests.test_data import idx_bytes

ort = pytest.importorskip("onnxruntime", reason="the ONNX artifacts run in onnxruntime")

CPU = ["CPUExecutionProvider"]


def _onnx_outputs(path: Path, feeds: dict) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=CPU)
    wanted = {i.name: i for i in session.get_inputs()}
    types = {"tensor(float)": np.float32, "tensor(int64)": np.int64}
    run = {k: np.asarray(v, dtype=types[wanted[k].type]) for k, v in feeds.items() if k in wanted}
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, run), strict=True))


def _metadata(path: Path) -> dict:
    session = ort.InferenceSession(str(path), providers=CPU)
    return json.loads(session.get_modelmeta().custom_metadata_map["preprocess"])


def test_every_artifact_of_a_build_gives_the_same_predictions_on_raw_input(tmp_path, capsys):
    """model.py, model.onnx, train_step.onnx, gradients.onnx, bmc.load().predict and bmc eval, fed the digits test
    images as the data set stores them (pixels 0..16), predict the same classes with the same probabilities."""
    build, exported = tmp_path / "build", tmp_path / "onnx"
    assert bmc.cli.main(["train", "examples/mlp.bm", "--data", "digits", "--epochs", "3", "--lr", "0.01",
                         "-D", "hidden=16", "--quiet", "-o", str(build)]) == 0
    assert bmc.cli.main(["build", "examples/mlp.bm", "--target", "onnx", "--params", str(build), "--train",
                         "-o", str(exported)]) == 0  # the build's constants and contract come with --params
    digits = load_dataset("digits")
    raw, labels = digits.x_test, digits.y_test
    assert raw.max() == 16

    module = load_module(build / "model.py")
    params = module.load_params()
    probs = {
        "model.py": module.forward(params, raw)["probs"],
        "model.onnx": _onnx_outputs(exported / "model.onnx", {"image": raw})["probs"],
        "train_step.onnx": _onnx_outputs(exported / "train_step.onnx", {
            "image": raw, "label": labels, "lr": 0.0, **artifacts.read_npz(exported / "params.npz"),
            **artifacts.read_npz(exported / "state.npz")})["probs"],
        "gradients.onnx": _onnx_outputs(exported / "gradients.onnx", {
            "image": raw, "label": labels, **artifacts.read_npz(exported / "params.npz")})["probs"],
        "bmc.load().predict": bmc.load(build).predict(raw)["probs"],
    }
    reference = probs["model.py"]
    for name, p in probs.items():
        np.testing.assert_array_equal(p.argmax(1), reference.argmax(1), err_msg=name)
        np.testing.assert_allclose(p, reference, rtol=0, atol=1e-5, err_msg=name)
    accuracy = float(np.mean(reference.argmax(1) == labels))
    assert accuracy > 0.8  # a trained model, not a constant one
    capsys.readouterr()
    assert bmc.cli.main(["eval", str(build), "--data", "digits"]) == 0
    assert capsys.readouterr().out.startswith(f"accuracy {accuracy:.4f}")
    assert bmc.load(build).evaluate("digits")["accuracy"] == accuracy

    contract = json.loads((build / "manifest.json").read_text())["preprocess"]
    assert contract["scale"] == 1 / 16 and contract["raw"].startswith("pixels 0..16") and contract["std"] > 0
    assert "every artifact" in contract["applied_by"]
    assert contract == module.PREPROCESS
    assert json.loads((exported / "manifest.json").read_text())["preprocess"] == contract
    for name in ("model.onnx", "train_step.onnx", "gradients.onnx", "apply.onnx"):
        assert _metadata(exported / name) == contract, name


def _learnable_images(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """8x8 uint8 images: class c lights up row c (plus noise), as an image file holds them."""
    labels = np.arange(n) % 8
    images = rng.integers(0, 60, (n, 8, 8))
    images[np.arange(n), labels] += 180
    return images.astype(np.uint8), labels.astype(np.uint8)


def _write_idx(directory: Path, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    (x_train, y_train), (x_test, y_test) = _learnable_images(rng, 160), _learnable_images(rng, 48)
    arrays = {"train-images-idx3-ubyte": x_train, "train-labels-idx1-ubyte": y_train,
              "t10k-images-idx3-ubyte": x_test, "t10k-labels-idx1-ubyte": y_test}
    directory.mkdir(parents=True)
    for name, array in arrays.items():
        (directory / name).write_bytes(idx_bytes(array))
    return arrays


CLASSIFIER = """model m(features = 64) {
  input  image: f32[N, features]
  target label: i64[N]
  logits = dense(relu(dense(image, 16)), 8)
  output probs = softmax(logits)
  loss = cross_entropy(logits, label)
}
train m { optimizer = adam(lr = 0.01) epochs = 8 batch = 32 normalize = true }"""


def test_predict_on_raw_uint8_images_matches_the_accuracy_training_measured(tmp_path):
    arrays = _write_idx(tmp_path / "idx")
    trained = bmc.compile_string(CLASSIFIER).train(str(tmp_path / "idx"), log=lambda s: None, progress=False)
    trained.save(tmp_path / "build")
    loaded = bmc.load(tmp_path / "build")
    assert loaded.manifest["preprocess"]["raw"] == "uint8 pixels 0..255"
    images, labels = arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"]
    assert images.dtype == np.uint8
    accuracy = float(np.mean(loaded.predict(images)["probs"].argmax(1) == labels))
    assert accuracy == trained.history.final.test["accuracy"] > 0.9
    assert loaded.evaluate(str(tmp_path / "idx"))["accuracy"] == accuracy


def test_eval_converts_a_data_set_whose_raw_samples_have_another_scale(tmp_path):
    """A build trained on [0, 1] floats (a .npz: scale 1) evaluated on the same images as uint8 IDX files (scale
    1/255) is fed x * (1/255) / 1: its own raw units."""
    arrays = _write_idx(tmp_path / "idx")
    np.savez(tmp_path / "unit.npz", x_train=arrays["train-images-idx3-ubyte"] / 255,
             y_train=arrays["train-labels-idx1-ubyte"], x_test=arrays["t10k-images-idx3-ubyte"] / 255,
             y_test=arrays["t10k-labels-idx1-ubyte"])
    trained = bmc.compile_string(CLASSIFIER).train(str(tmp_path / "unit.npz"), log=lambda s: None, progress=False)
    assert trained.manifest["preprocess"]["scale"] == 1.0
    on_npz = trained.evaluate(str(tmp_path / "unit.npz"))
    assert on_npz["accuracy"] > 0.9 and trained.evaluate(str(tmp_path / "idx")) == on_npz


def test_the_prologue_is_ir_right_after_the_input():
    model = bmc.compile("examples/mlp.bm", defines={"features": 64})
    assert "mul(%image" not in model.ir()
    pre = Preprocess("image", 1 / 16, 0.25, 0.5, "pixels 0..16")
    ir = model.with_preprocess(pre).ir(optimized=False)
    lines = [line.strip() for line in ir.splitlines() if "examples/mlp.bm:4" in line]  # the input's declaration
    assert [line.split(" = ")[1].split("(")[0] for line in lines] == ["const", "mul", "const", "sub", "const", "div"]
    assert lines[-1].startswith("%image.standardized") and "dense(%image.standardized" in ir
    assert model.with_preprocess(Preprocess("image")).ir() == model.ir()  # the identity computes nothing
    assert "raw pixels 0..16; the model computes image = (image * 0.0625 - 0.25) / 0.5" in \
        model.with_preprocess(pre).summary()


def test_a_build_of_the_old_contract_is_refused(tmp_path):
    """Before the contract, model.py took standardized inputs and the manifest had no scale: loading such a build
    would give silently wrong predictions."""
    model = bmc.compile("examples/mlp.bm", defines={"features": 64})
    out = model.build(tmp_path / "old")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["preprocess"] = {"input": "image", "mean": 0.3, "std": 0.4}
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UsageError, match="older bmc"):
        bmc.load(out)


def test_an_integer_input_cannot_take_scaled_pixels(tmp_path):
    _write_idx(tmp_path / "idx")
    text = CLASSIFIER.replace("input  image: f32[N, features]", "input  image: i64[N, features]").replace(
        "dense(image, 16)", "dense(cast(image, f32), 16)")
    with pytest.raises(BmcError, match=r"input 'image' is i64\[N, 64\], but its data must be computed") as err:
        bmc.compile_string(text).train(str(tmp_path / "idx"), log=lambda s: None, progress=False)
    assert err.value.span.line == 2


@pytest.mark.skipif(emulate.compiler() is None, reason="no g++ for the CUDA emulator")
def test_the_cuda_program_takes_raw_input_too():
    from bmc.backends.cuda import build as cuda_build
    from bmc.backends.cuda.runtime import Library

    model = bmc.compile("examples/mlp.bm", defines={"features": 64, "hidden": 16}).with_preprocess(
        Preprocess("image", 1 / 16, 0.3, 0.4, "pixels 0..16"))
    params, _ = model.init_params(0)
    prog = cuda_build.program(model)
    session = Library(emulate.build(prog.source), prog.manifest).session()
    session.load(params)
    raw = np.random.default_rng(0).integers(0, 17, (5, 64)).astype(np.float32)
    want = load_source(model.generate()).forward(params, raw)["probs"]
    np.testing.assert_allclose(session.run("forward", {"image": raw})["probs"], want, rtol=1e-4, atol=1e-6)
