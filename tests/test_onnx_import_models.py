"""`bmc import` on models no one here wrote the ONNX for: PyTorch's exporter's graphs of a ResNet, a MobileNetV3, a
Transformer encoder and an LSTM tagger (tests/onnx_zoo.py), and bmc's own ONNX export of every example.

Each import must compile, compute what onnxruntime computes (float32, relative 1e-4), have the gradients PyTorch
autograd has in float64 (every trainable parameter, found in the PyTorch module by value, and the float input), and
fine-tune: a loss added by the import, and a few epochs of bmc's training lower it. Every example exported with
`bmc build --target onnx` imports back to the same outputs and the same float64 gradients."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="bmc import needs the onnx package")
pytest.importorskip("onnxruntime", reason="the imported models are compared with onnxruntime")
pytest.importorskip("torch", reason="the models are PyTorch's, exported by torch.onnx")

import bmc
import bmc.runtime
from bmc.ir import dims
from bmc.onnx_import import Imported, import_onnx
from bmc.syntax import parse
from tests import onnx_zoo as Z

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.bm"))
FORWARD_RTOL = 1e-4  # float32, against onnxruntime
ROUND_TRIP_RTOL = 1e-5  # float32, against the model that was exported
GRADIENT_RTOL = 1e-6  # float64; the exporter's float32 constants (1/sqrt(d) in attention, 1/6 in hardsigmoid) differ
# from PyTorch's exact ones by ~1e-8
GRADIENT_CASES = ["resnet_bn", "mobilenet_bn", "transformer", "transformer_gelu", "lstm", "lstm_forward",
                  "transformer_dynamo", "lstm_dynamo"]
FINE_TUNE_CASES = ["resnet", "resnet_bn", "mobilenet", "transformer_gelu", "lstm", "mobilenet_dynamo"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each case exported once: (module, ONNX path, import)."""
    folder = tmp_path_factory.mktemp("zoo")
    made: dict = {}

    def get(name: str):
        if name not in made:
            made[name] = Z.import_case(Z.CASES[name], folder)
        return made[name]

    return get


# ---- PyTorch's models ----------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", list(Z.CASES))
def test_import_compiles_and_matches_onnxruntime(exported, name):
    case = Z.CASES[name]
    _, path, imported = exported(name)
    bmc.compile_string(imported.source)  # what `bmc check` accepts
    assert imported.inputs == ["x"] and imported.outputs == ["y"]
    assert "_2 =" not in imported.source.split("output")[-1]  # the output is one statement, named after it
    for batch in (1, 5):
        x = case.sample(batch, np.random.default_rng(batch))
        expected = Z.onnxruntime_outputs(path, x)
        got = Z.bmc_forward(imported, {"x": x})
        assert got["y"].shape == expected["y"].shape
        assert Z.relative_error(got["y"], expected["y"]) < FORWARD_RTOL


def test_resnet_import_reads_like_the_network(exported):
    """The folded ResNet: one statement per residual block half, convolutions carrying the folded batch norms."""
    _, _, imported = exported("resnet")
    body = imported.source
    assert body.count("conv2d(") == 10 and body.count("+ ") >= 4
    assert "max_pool(relu(conv2d(x, 8, 3, padding = 1)), 3, stride = 2, padding = 1)" in body
    assert "conv2d(layer1_1_2, 16, 1, stride = 2)" in body  # the strided downsample
    assert "output y = dense(global_avg_pool(relu(layer2_1)), 10)" in body


def test_bidirectional_lstm_layout_changes_cancel(exported):
    """PyTorch's time-major LSTM output, its [T, 2, N, H] -> [N, T, 2H] transposes and reshapes, is the layer's own
    batch-first output: nothing of the layout dance is left."""
    _, _, imported = exported("lstm")
    assert "output y = dense(lstm(embed, 12, return_sequences = true, bidirectional = true), 6)" in imported.source
    assert "transpose" not in imported.source and "reshape" not in imported.source
    _, _, forward = exported("lstm_forward")
    assert "output y = dense(lstm(embed, 12, return_sequences = true), 6)" in forward.source


@pytest.mark.slow
@pytest.mark.parametrize("name", GRADIENT_CASES)
def test_gradients_match_pytorch_autograd(exported, name):
    """The gradient of sum(y * probe), by bmc's autodiff on the import and by PyTorch on the module (training mode:
    batch norms on the batch's statistics), for every trainable parameter and the float input."""
    case = Z.CASES[name]
    module, _, imported = exported(name)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = case.sample(4, rng)
    probe = rng.standard_normal(Z.bmc_forward(imported, {"x": x})["y"].shape)
    loss, grads, trainable = Z.bmc_gradients(imported, {"x": x}, {"y": probe})
    torch_loss, torch_grads, torch_x = Z.torch_gradients(module, x, probe, train_mode=True)
    assert loss == pytest.approx(torch_loss, rel=GRADIENT_RTOL)
    found = Z.param_map(imported, module)
    assert set(found) == set(imported.params)  # nothing folded: every parameter is a PyTorch tensor's elements
    covered = {found[k].tensors[w] for k in trainable for w in set(found[k].which.reshape(-1).tolist())}
    assert covered == set(torch_grads)  # every PyTorch parameter is checked
    scale = max(float(np.max(np.abs(g))) for g in torch_grads.values())
    errors = {k: Z.gradient_error(grads[k], found[k].take(torch_grads), scale) for k in sorted(trainable)}
    assert {k: e for k, e in errors.items() if not e < GRADIENT_RTOL} == {}
    if torch_x is not None:
        assert Z.gradient_error(grads["x"], torch_x, float(np.max(np.abs(torch_x)))) < GRADIENT_RTOL


@pytest.mark.slow
@pytest.mark.parametrize("name", FINE_TUNE_CASES)
def test_fine_tuning_the_import_lowers_the_loss(tmp_path, name):
    """`import_onnx(..., loss="cross_entropy")` trains as it is, from the imported parameters."""
    case = Z.CASES[name]
    _, _, imported = Z.import_case(case, tmp_path, loss="cross_entropy")
    model = bmc.compile_string(imported.source)
    rng = np.random.default_rng(3)
    x = case.sample(64, rng)
    logits = Z.bmc_forward(imported, {"x": x})["y"]
    labels = rng.integers(0, logits.shape[-1], logits.shape[:-1])
    build = model.train((x, labels, x, labels), epochs=4, batch=16, lr=1e-3, optimizer="adam",
                        params=imported.params, log=lambda s: None, progress=False)
    trained = Imported(imported.source, build.params, imported.name, 0, 0, imported.inputs, imported.outputs)
    before, after = cross_entropy(logits, labels), cross_entropy(Z.bmc_forward(trained, {"x": x})["y"], labels)
    assert math.isfinite(after) and after < before


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    z = logits - logits.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(-np.take_along_axis(log_p, labels[..., None], -1).mean())


# ---- bmc's own export, imported back ----------------------------------------------------------------------------

BATCH, OTHER_DIM = 5, 3
SMALL = (8, 4, 12)  # the big int constants of an example shrunk (as tests/test_model_gradients.py does)
NOT_IMPORTABLE: dict[str, str] = {}  # example.model -> what the import says it cannot write
FOLDED = {"cnn.cnn": 4}  # parameters the ONNX export computes (batch norms folded into convolutions): not found


def example_models() -> list:
    return [pytest.param(path, name, id=f"{path.stem}.{name}")
            for path in EXAMPLES for name in parse(path.read_text(encoding="utf-8"), str(path)).models]


def small_model(path: Path, name: str, dtype: str = "f32") -> bmc.Model:
    model = bmc.compile(path, model=name)
    big = [k for k, v in model.compiled.model.constants.items() if type(v) is int and v > 8]
    return bmc.compile(path, model=name, dtype=dtype, defines={k: SMALL[i % len(SMALL)] for i, k in enumerate(big)})


def example_inputs(model: bmc.Model, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for v in model.compiled.model.graph.inputs_with_role("input"):
        shape = tuple(static * (BATCH if syms == ["N"] else OTHER_DIM ** len(syms))
                      for static, syms in map(dims.factors, v.type.shape))
        out[v.name] = rng.standard_normal(shape).astype(np.float32) if v.type.is_float else \
            rng.integers(0, 2, shape).astype(np.int64)
    return out


def distinct_params(model: bmc.Model, seed: int) -> dict[str, np.ndarray]:
    """Initial parameters with values distinct across the model (so the import's are found again by value)."""
    params, _ = model.init_params(seed)
    total = sum(p.size for p in params.values())
    grid = (np.random.default_rng(seed).permutation(total) + 0.5) / total * 2 - 1
    out, start = {}, 0
    for k, p in params.items():
        g = grid[start:start + p.size].reshape(p.shape)
        start += p.size
        scale = float(np.max(np.abs(p), initial=0.0)) or 0.1  # the initializer's size; zeros (biases) get 0.1
        out[k] = (1 + 0.5 * g if k.endswith(("running_var", "gamma")) else g * scale).astype(p.dtype)
    return out


def forward(model: bmc.Model, params: dict[str, np.ndarray], inputs: dict[str, np.ndarray]) -> dict:
    module = bmc.runtime.load_source(model.generate("numpy", train=False))
    return module.forward(params, **inputs)


@pytest.mark.slow
@pytest.mark.parametrize(("path", "name"), example_models())
def test_example_exported_to_onnx_imports_back(tmp_path, path: Path, name: str):
    model = small_model(path, name)
    params = distinct_params(model, zlib.crc32(name.encode()))
    out = model.build(tmp_path / "build", target="onnx", params=params, log=lambda s: None)
    key = f"{path.stem}.{name}"
    if key in NOT_IMPORTABLE:
        with pytest.raises(bmc.BmcError, match=NOT_IMPORTABLE[key]):
            import_onnx(out / "model.onnx")
        return
    imported = import_onnx(out / "model.onnx")
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    inputs = example_inputs(model, rng)
    assert len(imported.inputs) == len(inputs)
    renamed = dict(zip(imported.inputs, inputs.values(), strict=True))  # ONNX graph-input order is the model's
    expected = forward(model, params, inputs)
    got = Z.bmc_forward(imported, renamed)
    assert set(got) == set(expected)
    for k in expected:
        assert Z.relative_error(got[k], expected[k]) < ROUND_TRIP_RTOL, k

    # float64 gradients of sum(output * probe), inference mode, the import's parameters found among the original's
    probes = {k: rng.standard_normal(v.shape) for k, v in expected.items()}
    original = Z.probe_gradients(small_model(path, name, "f64"), {**inputs, **params}, probes)
    again = Z.probe_gradients(bmc.compile_string(imported.source, dtype="f64"), {**renamed, **imported.params}, probes)
    tolerance = GRADIENT_RTOL  # the ONNX file's constants (attention's 1/sqrt(d), folded batch norms) are float32
    assert again["loss"] == pytest.approx(original["loss"], rel=tolerance)
    found = Z.find_by_value(imported.params, params)
    assert len(set(imported.params) - set(found)) == FOLDED.get(key, 0)  # the input's gradient checks those
    scale = max(float(np.max(np.abs(original[k]))) for k in params)
    errors = {k: Z.gradient_error(again[k], f.take(original), scale) for k, f in found.items()}
    for mine, theirs in zip(imported.inputs, inputs, strict=True):
        if inputs[theirs].dtype.kind == "f":
            errors[mine] = Z.gradient_error(again[mine], original[theirs], float(np.max(np.abs(original[theirs]))))
    assert {k: e for k, e in errors.items() if not e < tolerance} == {}
