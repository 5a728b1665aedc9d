"""The ONNX exporter: every op lowers or decomposes; every example's inference and train-step export passes the
full checker and strict shape inference; graphs are as small as torch.onnx.export's; the batch dim is symbolic;
names, docs and metadata come from the `.bm` file; bad requests fail cleanly, never leaving a partial model.onnx."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("onnx", reason="the ONNX backend needs the onnx package")
pytest.importorskip("onnxruntime", reason="the ONNX backend needs onnxruntime")

import numpy as np
import onnx
from bmc.backends import onnx as onnx_backend

import bmc
from bmc.diagnostics import BmcError, UsageError
from bmc.ir.graph import Node
from bmc.ops import Op
from tests.test_model_gradients import example_models, small_model


def _check(model) -> None:
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    assert all(o.domain in ("", "ai.onnx") for o in model.opset_import)
    assert (model.ir_version, model.opset_import[0].version) == (onnx_backend.IR_VERSION, onnx_backend.OPSET)
    assert all(n.domain == "" for n in model.graph.node)


@pytest.mark.parametrize(("path", "name"), example_models())
def test_inference_export_passes_the_checker_and_strict_shape_inference(path: Path, name: str):
    _check(onnx_backend.inference_model(bmc.compile(path, model=name)))


@pytest.mark.parametrize(("path", "name"), example_models())
def test_train_step_export_passes_the_checker_and_strict_shape_inference(path: Path, name: str):
    model = small_model(path, name)
    if model.compiled.model.loss is None:
        pytest.skip(f"model {name} has no loss")
    proto = onnx_backend.train_step_model(model)
    _check(proto)
    graph = model.compiled.train_step()
    assert [i.name for i in proto.graph.input] == [v.name for v in graph.inputs]
    assert [o.name for o in proto.graph.output] == list(graph.outputs)


def _graph(name: str):
    return onnx_backend.inference_model(bmc.compile(f"examples/{name}.bm")).graph


def _ops(name: str) -> list[str]:
    return [n.op_type for n in _graph(name).node]


def test_mlp_is_gemm_relu_gemm_softmax():
    assert _ops("mlp") == ["Gemm", "Relu", "Gemm", "Softmax"]  # torch.onnx.export: Gemm, Relu, Gemm (+ Softmax)


def test_cnn_is_what_torch_onnx_export_gives_plus_softmax():
    # torch.onnx.export of the same network in eval mode (batch norm folded into the convolutions) gives these
    # 10 nodes; the softmax is the model's declared output
    assert _ops("cnn") == ["Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Relu", "Gemm",
                           "Softmax"]


@pytest.mark.parametrize(("name", "cell"), [("rnn", "RNN"), ("lstm", "LSTM"), ("gru", "GRU")])
def test_recurrent_layers_are_onnx_recurrent_ops(name: str, cell: str):
    assert _ops(name) == ["Transpose", cell, "Squeeze", "Gemm", "Softmax"]


@pytest.mark.parametrize("name", ["vit", "char_lm"])
def test_transformers_use_fused_ops_and_no_redundant_chains(name: str):
    graph = _graph(name)
    ops = [n.op_type for n in graph.node]
    assert ops.count("LayerNormalization") == 5 and ops.count("Gelu") == 2 and ops.count("Softmax") == 3
    producer = {o: n.op_type for n in graph.node for o in n.output}
    movers = ("Identity", "Reshape", "Transpose", "Cast", "Flatten", "Squeeze", "Unsqueeze")
    chains = [n.op_type for n in graph.node if n.op_type in movers and producer.get(n.input[0]) == n.op_type]
    assert "Identity" not in ops and chains == []


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_symbolic_dims_stay_symbolic_and_names_come_from_the_bm_file():
    proto = onnx_backend.inference_model(bmc.compile("examples/char_lm.bm"))
    (tokens,), (probs,) = proto.graph.input, proto.graph.output
    assert (tokens.name, _dims(tokens)) == ("tokens", ["N", "T"])
    assert (probs.name, _dims(probs)) == ("probs", ["N", "T", 96])
    assert {t.name for t in proto.graph.initializer} >= {"x.embedding.table", "logits.dense.W"}


def test_metadata_and_doc_strings():
    model = bmc.compile("examples/mlp.bm")
    proto = onnx_backend.inference_model(model, metadata={"vocab": "abc", "window": 8})
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["bmc_version"] == bmc.__version__ and meta["source"].endswith("mlp.bm")
    assert meta["source_sha256"] == model.compiled.source_hash and len(meta["source_sha256"]) == 64
    assert json.loads(meta["vocab"]) == "abc" and json.loads(meta["window"]) == 8
    assert proto.graph.input[0].doc_string == "input image: f32[N, 784], declared at examples/mlp.bm:4:5"
    assert proto.graph.output[0].doc_string.startswith("probs: f32[N, 10]") and "mlp.bm:10" in \
        proto.graph.output[0].doc_string
    assert proto.producer_name == "bmc" and proto.doc_string
    assert all(n.doc_string.startswith("examples/mlp.bm:") for n in proto.graph.node)


def test_export_writes_a_model_that_loads(tmp_path):
    model = bmc.compile("examples/mlp.bm", defines={"features": 64})
    params, _ = model.init_params(3)
    path = onnx_backend.export_inference(model, params, tmp_path / "out" / "model.onnx")
    loaded = onnx.load(path)
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in loaded.graph.initializer}
    np.testing.assert_array_equal(stored["h.W"], params["h.W"])
    assert [p.name for p in tmp_path.joinpath("out").iterdir()] == ["model.onnx"]


class NoLowering(Op):
    """An op no backend knows (not registered)."""

    def infer(self, x):
        return x


def test_an_op_without_a_lowering_is_an_error_at_its_bm_location(tmp_path):
    model = bmc.compile("examples/mlp.bm")
    graph = model.compiled.inference()
    relu = next(n for n in graph.nodes if n.op.name == "relu")
    graph.nodes[graph.nodes.index(relu)] = Node(NoLowering(), relu.inputs, relu.outputs, relu.span)
    model.compiled.inference = lambda optimized=True: graph
    with pytest.raises(BmcError) as err:
        onnx_backend.export_inference(model, None, tmp_path / "model.onnx")
    assert str(err.value.span) == "examples/mlp.bm:7:14" and "no ONNX lowering" in err.value.message
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_path_is_a_clear_error_and_leaves_the_old_model(tmp_path):
    model = bmc.compile("examples/mlp.bm")
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(UsageError, match="cannot write"):
        onnx_backend.export_inference(model, None, tmp_path / "file" / "model.onnx")
    old = tmp_path / "model.onnx"
    old.write_bytes(b"old")
    with pytest.raises(UsageError, match=r"no value for parameter 'h\.W'"):
        onnx_backend.export_inference(model, {}, old)
    assert old.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["file", "model.onnx"]


def test_provider_choice_is_silent(capfd):
    chosen = onnx_backend.providers()
    assert chosen[-1] == "CPUExecutionProvider"
    assert capfd.readouterr() == ("", "")


def test_sessions_take_the_thread_count_of_the_threads_option(monkeypatch):
    """`bmc train --backend onnxruntime --threads N` runs the train step on N intra-op and N inter-op threads that do
    not spin, with all of onnxruntime's graph optimizations (`--threads` sets OMP_NUM_THREADS, which BLAS reads too)."""
    import onnxruntime as ort
    from bmc.backends.onnx import runtime

    from bmc import cli

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # restored after the test
        monkeypatch.setenv(var, "1")
    cli._set_threads(["train", "examples/mlp.bm", "--threads", "3"])
    model = bmc.compile(Path(__file__).parent.parent / "examples" / "mlp.bm")
    params, state = model.init_params(0)
    trainer = runtime.Trainer(onnx_backend.train_step_model(model), params, state, ["CPUExecutionProvider"])
    options = trainer.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (3, 3)
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert runtime.threads() == 0  # unset: onnxruntime's default, one thread per core


def test_the_preprocessing_prologue_folds_into_the_first_layer():
    """A model compiled with a preprocessing contract takes raw input; with constant parameters its prologue
    (x * scale - mean) / std folds into the first Gemm, and the model computes what the prologue would."""
    from bmc.backends.numpy import compile_function

    from bmc.frontend.preprocess import Preprocess

    plain = bmc.compile("examples/mlp.bm", defines={"features": 64})
    pre = Preprocess("image", 1 / 16, 0.3, 0.4, "pixels 0..16")
    model = plain.with_preprocess(pre)
    params, _ = model.init_params(0)
    proto = onnx_backend.inference_model(model, params)
    assert [n.op_type for n in proto.graph.node] == ["Gemm", "Relu", "Gemm", "Softmax"]  # folded into the Gemm
    assert json.loads({p.key: p.value for p in proto.metadata_props}["preprocess"]) == pre.as_json()
    assert "raw samples (pixels 0..16)" in proto.graph.input[0].doc_string
    unfolded = onnx_backend.inference_model(model, params_as_inputs=True)  # a trainer's: parameters are inputs
    assert [n.op_type for n in unfolded.graph.node][:3] == ["Mul", "Sub", "Div"]
    x = np.random.default_rng(0).integers(0, 17, (5, 64)).astype(np.float32)  # raw pixels
    scaled = (x * np.float32(1 / 16) - np.float32(0.3)) / np.float32(0.4)
    want = compile_function(plain.compiled.inference())({"image": scaled, **params})
    got = onnx_backend.Predictor(proto, ["CPUExecutionProvider"])(image=x)
    np.testing.assert_allclose(got["probs"], want["probs"], rtol=1e-5, atol=1e-7)
    got = onnx_backend.Predictor(unfolded, ["CPUExecutionProvider"])(image=x, **params)
    np.testing.assert_allclose(got["probs"], want["probs"], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("mean", "folded"), [(0.0, True), (0.3, False)])
def test_a_padded_convolution_takes_a_folded_scale_but_not_a_shift(mean, folded):
    """Padding adds zeros to the preprocessed input, not to the raw one: a shift cannot fold into a padded Conv."""
    from bmc.frontend.preprocess import Preprocess

    text = """model m { input x: f32[N, 1, 6, 6]
      output y = conv2d(x, 2, 3, padding = 1) }"""
    plain = bmc.compile_string(text)
    model = plain.with_preprocess(Preprocess("x", 1 / 255, mean, 0.5 if mean else 1.0))
    params, _ = model.init_params(0)
    proto = onnx_backend.inference_model(model, params)
    ops = [n.op_type for n in proto.graph.node]
    assert (ops == ["Conv"]) == folded, ops
    x = np.random.default_rng(1).integers(0, 256, (2, 1, 6, 6)).astype(np.float32)
    scaled = (x * np.float32(1 / 255) - np.float32(mean)) / np.float32(0.5 if mean else 1.0)
    want = onnx_backend.Predictor(onnx_backend.inference_model(plain, params), ["CPUExecutionProvider"])(x=scaled)
    got = onnx_backend.Predictor(proto, ["CPUExecutionProvider"])(x=x)
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-5, atol=1e-6)
