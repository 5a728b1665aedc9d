"""The train step's two halves as ONNX (issue 16): gradients.onnx (the loss, the outputs, `grad/<name>` and the running
statistics) then apply.onnx (the optimizer update from `grad/<name>` inputs) compute what train_step.onnx computes,
in plain onnxruntime, with the same dtypes; their gradients are the NumPy module's `gradients()`; they pass the full
checker and run in the standard's reference evaluator; and `bmc build --target onnx --train` writes them beside
train_step.onnx, documented and with its metadata, so a driver (Horovod, Ray, a federated-learning server) can feed
the one's outputs to the other by name."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("onnx", reason="the ONNX backend needs the onnx package")
pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime")

import numpy as np
import onnx
import onnxruntime as ort
from bmc.backends import onnx as onnx_backend
from onnx.reference import ReferenceEvaluator

import bmc
from bmc.ir.types import NUMPY_NAMES
from bmc.runtime import load_source
from tests.conftest import EXAMPLES
from tests.test_model_gradients import small_model
from tests.test_onnx_parity import _seed, batch_data, perturbed, relative_error, tiny_cnn

CPU = ["CPUExecutionProvider"]
STEPS = 3
BATCH = 4

# two hidden layers, gradient clipping (active: the gradients' norm is far above 0.05), an L2 penalty, and a frozen
# parameter or layer; the optimizer is filled in
CLIPPED = """
model net(features = 6, hidden = 5, classes = 3) {
    input  x: f32[N, features]
    target y: i64[N]
    h      = tanh(dense(x, hidden))
    g      = relu(dense(h, hidden))
    logits = dense(g, classes)
    output probs = softmax(logits)
    loss = cross_entropy(logits, y)
}

train net {
    optimizer = OPTIMIZER
    clip      = 0.05
    l2        = 0.01
    freeze    = FROZEN
}
"""


def clipped(optimizer: str, frozen: str) -> bmc.Model:
    return bmc.compile_string(CLIPPED.replace("OPTIMIZER", optimizer).replace("FROZEN", frozen), filename="net.bm")


def mlp(dtype: str = "f32") -> bmc.Model:
    return bmc.compile(EXAMPLES / "mlp.bm", defines={"features": 12, "hidden": 8}, dtype=dtype)


CASES = [
    pytest.param(mlp, id="mlp"),
    pytest.param(lambda: mlp("f64"), id="mlp.f64"),
    pytest.param(tiny_cnn, id="cnn.tiny"),  # batch norm (running statistics) and dropout (rng)
    pytest.param(lambda: small_model(EXAMPLES / "lstm.bm", "lstm"), id="lstm"),
    pytest.param(lambda: clipped("sgd(lr = 0.1, momentum = 0.9, nesterov = true)", '"h.b"'), id="clip.sgd_momentum"),
    pytest.param(lambda: clipped("adamw(lr = 0.01, weight_decay = 0.1)", "h"), id="clip.adamw.frozen_layer"),
]


# ---- running the models as a driver would: plain onnxruntime, tensors by name ----------------------------------


def session(proto: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(proto.SerializeToString(), providers=CPU)


def run(s: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Exactly the session's inputs, taken from `feeds` by name (a missing one is a KeyError)."""
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, {i.name: feeds[i.name] for i in s.get_inputs()}), strict=True))


def updated(values: dict[str, np.ndarray], out: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k: out.get(f"{prefix}/{k}", v) for k, v in values.items()}


def whole_step(step, batch, params, state, hyper):
    out = run(step, {**batch, **params, **state, **hyper})
    return out, updated(params, out, "params"), updated(state, out, "state")


def split_step(gradients, apply, batch, params, state, hyper):
    """gradients.onnx, then apply.onnx fed gradients.onnx's `grad/<name>` outputs by name."""
    grads = run(gradients, {**batch, **params, **hyper})
    new = run(apply, {**grads, **params, **state, **hyper})
    assert not set(grads) & set(new)  # running statistics come from the one, trainable parameters from the other
    return grads, updated(params, {**grads, **new}, "params"), updated(state, new, "state")


def start(model: bmc.Model, name: str):
    """Perturbed initial parameters, zero optimizer state and the step's hyper inputs, in the model's dtypes."""
    graph = model.compiled.train_step()
    rng = _seed(name)
    params = perturbed(model.init_params(0)[0], rng)
    state = {v.name: np.zeros(v.type.shape, NUMPY_NAMES[v.type.dtype]) for v in graph.inputs_with_role("state")}
    lr = next(v for v in graph.inputs_with_role("hyper") if v.name == "lr")
    hyper = {"lr": np.array(0.01, NUMPY_NAMES[lr.type.dtype])}
    return graph, rng, params, state, hyper


def batches(model: bmc.Model, graph, rng: np.random.Generator, count: int = STEPS) -> list[dict[str, np.ndarray]]:
    out = []
    for _ in range(count):
        batch = batch_data(graph, graph.inputs_with_role("input", "target"), BATCH, rng)
        out.append({k: v.astype(NUMPY_NAMES[model.compiled.dtype]) if v.dtype.kind == "f" else v
                    for k, v in batch.items()})
    return out


def with_rng(hyper: dict[str, np.ndarray], step: int) -> dict[str, np.ndarray]:
    return {**hyper, "rng": np.array(1_000_003 + step, np.int64)}  # fed only to a model with dropout


# ---- gradients then apply is the whole step ------------------------------------------------------------------------


@pytest.mark.parametrize("make", CASES)
def test_gradients_then_apply_is_the_train_step_for_three_steps(make, request):
    model = make()
    graph, rng, params, state, hyper = start(model, request.node.callspec.id)
    step, gradients, apply = (session(f(model)) for f in (onnx_backend.train_step_model, onnx_backend.gradients_model,
                                                          onnx_backend.apply_model))
    tolerance = 1e-12 if model.compiled.dtype == "f64" else 1e-6
    whole_params, whole_state, split_params, split_state = dict(params), dict(state), dict(params), dict(state)
    for i, batch in enumerate(batches(model, graph, rng)):
        out, whole_params, whole_state = whole_step(step, batch, whole_params, whole_state, with_rng(hyper, i))
        grads, split_params, split_state = split_step(gradients, apply, batch, split_params, split_state,
                                                      with_rng(hyper, i))
        for k in ("loss", *model.compiled.model.outputs):
            assert grads[k].dtype == out[k].dtype and relative_error(grads[k], out[k]) <= tolerance, (i, k)
    for got, want, initial in ((split_params, whole_params, params), (split_state, whole_state, state)):
        assert got.keys() == want.keys() == initial.keys()
        for k, v in want.items():
            assert got[k].dtype == v.dtype == initial[k].dtype and got[k].shape == v.shape, k
            assert relative_error(got[k], v) <= tolerance, k
    moved = {k for k in params if not np.array_equal(whole_params[k], params[k])}
    frozen = set(params) - {v.name for v in model.compiled.apply().params} - {
        k.removeprefix("params/") for k in model.compiled.gradients().outputs if k.startswith("params/")}
    assert moved and not moved & frozen  # the steps trained, and left the frozen parameters alone


@pytest.mark.parametrize("make", CASES)
def test_the_halves_meet_by_name_and_type(make):
    """gradients.onnx's `grad/<name>` outputs are apply.onnx's `grad/<name>` inputs, of the same types (the
    parameter's); the halves' inputs and outputs are train_step.onnx's, with its types."""
    model = make()
    step, gradients, apply = (f(model).graph for f in (onnx_backend.train_step_model, onnx_backend.gradients_model,
                                                        onnx_backend.apply_model))
    step_types = {v.name: v.type for v in (*step.input, *step.output)}
    grad_out = [o.name for o in gradients.output if o.name.startswith("grad/")]
    grad_in = [i.name for i in apply.input if i.name.startswith("grad/")]
    trainable = [v.name for v in model.compiled.apply().params]
    assert grad_out == grad_in == [f"grad/{k}" for k in trainable] and grad_out
    assert {f"params/{k}" for k in trainable} <= step_types.keys()
    for v in (*gradients.output, *apply.input):
        if v.name.startswith("grad/"):
            assert v.type == step_types[v.name.removeprefix("grad/")], v.name
    others = [v for g in (gradients, apply) for v in (*g.input, *g.output) if not v.name.startswith("grad/")]
    assert all(v.type == step_types[v.name] for v in others)
    assert {v.name for v in (*gradients.output, *apply.output)} - set(grad_out) == {v.name for v in step.output}
    assert {v.name for v in (*gradients.input, *apply.input)} - set(grad_in) == {v.name for v in step.input}


# ---- the gradients are the NumPy module's ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [c for c in CASES if c.id != "mlp.f64"])
def test_gradients_match_the_numpy_modules_gradients(make, request):
    model = make()
    graph, rng, params, _, hyper = start(model, request.node.callspec.id)
    module = load_source(model.generate("numpy", train=True))
    (batch,) = batches(model, graph, rng, 1)
    extra = {k: v for k, v in with_rng(hyper, 0).items() if k != "lr" and k in {v.name for v in graph.inputs}}
    want_params = {k: v.copy() for k, v in params.items()}  # gradients() updates the running statistics in place
    want = module.gradients(want_params, dict(batch), **extra)
    got = run(session(onnx_backend.gradients_model(model)), {**batch, **params, **extra})
    assert {k for k in got if not k.startswith("params/")} == set(want)
    scale = max(np.abs(v).max() for k, v in want.items() if k.startswith("grad/"))
    for k, v in want.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape, k
        # a gradient that is exactly zero in exact arithmetic (a convolution's bias before batch norm) is rounding
        # noise in both (about 1e-7 here): measured against a tenth of the largest gradient
        err = np.abs(got[k].astype(np.float64) - v).max() / max(np.abs(v).max(), 0.1 * scale)
        assert err < 1e-5, k
    for k in (k.removeprefix("params/") for k in got if k.startswith("params/")):
        assert relative_error(got[f"params/{k}"], want_params[k]) < 1e-6, k


# ---- the standard's checker and reference evaluator -----------------------------------------------------------------


def test_both_halves_pass_the_full_checker_and_run_in_the_reference_evaluator():
    model = clipped("sgd(lr = 0.1, momentum = 0.9)", '"h.b"')
    graph, rng, params, state, hyper = start(model, "reference")
    state = {k: np.full_like(v, 0.5) for k, v in state.items()}  # a velocity, so every trainable parameter moves
    protos = onnx_backend.gradients_model(model), onnx_backend.apply_model(model)
    for proto in protos:
        onnx.checker.check_model(proto, full_check=True)
    (batch,) = batches(model, graph, rng, 1)
    feeds = {**batch, **params, **state, **hyper}
    for proto in protos:
        names = [o.name for o in proto.graph.output]
        want = run(session(proto), feeds)
        got = dict(zip(names, ReferenceEvaluator(proto).run(None, {i.name: feeds[i.name] for i in proto.graph.input}),
                       strict=True))
        for k, v in want.items():
            assert got[k].dtype == v.dtype and relative_error(got[k], v) < 1e-6, k
        feeds.update(want)  # apply.onnx takes gradients.onnx's `grad/<name>` outputs


# ---- the build ------------------------------------------------------------------------------------------------------


def test_an_onnx_build_with_train_writes_the_halves_documented_with_the_train_steps_metadata(tmp_path):
    model = tiny_cnn()
    out = model.build(tmp_path / "onnx", target="onnx", train_step=True, log=lambda s: None)
    assert sorted(p.name for p in out.iterdir()) == ["apply.onnx", "gradients.onnx", "manifest.json", "model.onnx",
                                                     "params.npz", "state.npz", "train_step.onnx"]
    listed = json.loads((out / "manifest.json").read_text())["bmc_build"]["files"]
    assert {"gradients.onnx", "apply.onnx"} <= set(listed)
    step, gradients, apply = (onnx.load(out / f"{name}.onnx") for name in ("train_step", "gradients", "apply"))
    meta = {p.key: p.value for p in step.metadata_props}
    assert meta["model"] == "cnn" and meta["source_sha256"] == model.compiled.source_hash
    for proto, kind in ((gradients, "gradients"), (apply, "apply")):
        onnx_backend.check(proto)
        assert {p.key: p.value for p in proto.metadata_props} == meta
        assert (proto.ir_version, proto.opset_import[0].version) == (onnx_backend.IR_VERSION, onnx_backend.OPSET)
        assert proto.producer_name == "bmc" and proto.doc_string and proto.graph.name == f"cnn_{kind}"
        assert all(v.doc_string for v in (*proto.graph.input, *proto.graph.output))
    docs = {**docs_of(gradients), **docs_of(apply)}
    assert docs_of(gradients)["grad/h.W"].startswith("grad/h.W: f32[6, 16], the loss's gradient with respect to h.W, "
                                                     "defined at examples/cnn.bm:10:")
    assert docs_of(apply)["grad/h.W"] == ("grad grad/h.W: f32[6, 16], the loss's gradient with respect to h.W, "
                                          "declared at examples/cnn.bm:10:27")
    assert all(doc == docs_of(step)[k] for k, doc in docs.items() if not k.startswith("grad/"))  # train_step's docs


def docs_of(proto: onnx.ModelProto) -> dict[str, str]:
    return {v.name: v.doc_string for v in (*proto.graph.input, *proto.graph.output)}


def test_export_functions_write_the_halves_atomically(tmp_path):
    model = mlp()
    paths = [onnx_backend.export_gradients(model, tmp_path / "gradients.onnx"),
             onnx_backend.export_apply(model, tmp_path / "apply.onnx")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["apply.onnx", "gradients.onnx"]
    for path, want in zip(paths, (onnx_backend.gradients_model(model), onnx_backend.apply_model(model)), strict=True):
        assert onnx.load(path) == want
