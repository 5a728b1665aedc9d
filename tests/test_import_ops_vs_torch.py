"""Grouped and depthwise convolution, transposed convolution, subscripts and resize (the features an ONNX importer
emits) against PyTorch in float64, forward and gradients, through the NumPy backend; and the ONNX export of the same
model in onnxruntime (float32) against PyTorch. PyTorch is written from the layers' definitions (README, docs), not
from bmc."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from bmc.backends import onnx as onnx_backend
from bmc.backends.numpy import compile_function

import bmc
from bmc.passes import precision
from bmc.passes.pipeline import optimize
from bmc.runtime import load_source
from bmc.train.step import gradient_graph

torch = pytest.importorskip("torch", reason="PyTorch (torch==2.13.0, CPU) is not installed")
F = torch.nn.functional

MODEL = """
model m {
    input x: {dt}[N, 4, 6, 5]
    target t: {dt}[N, 3, 8, 6]
    g = conv2d(x, 6, 3, padding = [1, 0, 2, 1], groups = 2)
    d = conv2d(g, 6, [3, 2], stride = 2, groups = 6)
    u = conv_transpose2d(d, 4, [3, 2], stride = [2, 3], padding = [1, 0, 0, 1], output_padding = [1, 2], groups = 2)
    s = u[:, 1:, ::-1, 1:5]
    output y = resize(s, [1.25, 1.5], mode = "linear")
    output z = resize(s[:, :, 1:5, ::2], 2, coordinates = "asymmetric", nearest = "floor")
    output q = u[:, 2, 3:, -1]
    output c = resize(u[..., 1:, 0:6:3], size = [5, 3], mode = "linear", coordinates = "align_corners")
    loss = mse(y, t) + mean(z * z) + mean(q * q) + mean(c * c)
}
"""


def torch_model(p: dict, x, t):
    g = F.conv2d(F.pad(x, (0, 1, 1, 2)), p["g.W"], p["g.b"], groups=2)
    d = F.conv2d(g, p["d.W"], p["d.b"], stride=2, groups=6)
    full = F.conv_transpose2d(d, p["u.W"], p["u.b"], stride=(2, 3), output_padding=(1, 2), groups=2)
    u = full[:, :, 1:, : full.shape[3] - 1]  # ONNX pads [top 1, left 0, bottom 0, right 1]
    s = u[:, 1:].flip(2)[..., 1:5]
    y = F.interpolate(s, scale_factor=(1.25, 1.5), mode="bilinear", align_corners=False)
    z = F.interpolate(s[:, :, 1:5, ::2], scale_factor=2, mode="nearest")
    q = u[:, 2, 3:, -1]
    c = F.interpolate(u[..., 1:, 0:6:3], size=(5, 3), mode="bilinear", align_corners=True)
    loss = F.mse_loss(y, t) + (z * z).mean() + (q * q).mean() + (c * c).mean()
    return {"y": y, "z": z, "q": q, "c": c, "loss": loss}


def _setup(dtype: str):
    model = bmc.compile_string(textwrap.dedent(MODEL.replace("{dt}", dtype)))
    rng = np.random.default_rng(0)
    params = {k: v.astype(np.float64) + 0.1 * rng.standard_normal(v.shape) for k, v in model.init_params(0)[0].items()}
    x, t = rng.standard_normal((3, 4, 6, 5)), rng.standard_normal((3, 3, 8, 6))
    return model, params, x, t


def test_forward_and_gradients_match_pytorch_in_float64():
    model, params, x, t = _setup("f64")
    tp = {k: torch.from_numpy(v).requires_grad_() for k, v in params.items()}
    tx = torch.from_numpy(x).requires_grad_()
    want = torch_model(tp, tx, torch.from_numpy(t))
    want["loss"].backward()
    got = load_source(model.generate("numpy")).forward(params, x)
    for k in ("y", "z", "q", "c"):
        np.testing.assert_allclose(got[k], want[k].detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=k)
    grads = compile_function(precision.run(optimize(gradient_graph(model.compiled.model, wrt="all")), "f64"))
    out = grads({"x": x, "t": t, **params})
    np.testing.assert_allclose(out["loss"], want["loss"].item(), rtol=1e-10)
    for k, v in tp.items():
        np.testing.assert_allclose(out[f"grad/{k}"], v.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(out["grad/x"], tx.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_onnx_export_matches_pytorch():
    pytest.importorskip("onnxruntime", reason="the ONNX backend's runs need onnxruntime")
    model, params, x, t = _setup("f32")
    params32 = {k: v.astype(np.float32) for k, v in params.items()}
    proto = onnx_backend.inference_model(model, params32)
    onnx_backend.check(proto)
    assert {"Resize", "ConvTranspose", "Conv", "Slice"} <= {n.op_type for n in proto.graph.node}
    assert any(a.name == "group" and a.i == 6 for n in proto.graph.node for a in n.attribute)
    got = onnx_backend.Predictor(proto, ["CPUExecutionProvider"])(x=x.astype(np.float32))
    with torch.no_grad():
        want = torch_model({k: torch.from_numpy(v) for k, v in params.items()}, torch.from_numpy(x),
                           torch.from_numpy(t))
    for k in ("y", "z", "q", "c"):
        np.testing.assert_allclose(got[k], want[k].numpy(), rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.mark.parametrize(("mode", "coordinates", "nearest", "scale"), [
    ("nearest", "half_pixel", "round_prefer_floor", (2.0, 3.0)),
    ("nearest", "asymmetric", "floor", (1.5, 0.6)),
    ("nearest", "half_pixel", "round_prefer_ceil", (1.75, 2.5)),
    ("nearest", "align_corners", "ceil", (1.4, 0.5)),
    ("linear", "half_pixel", "round_prefer_floor", (1.4, 0.6)),
    ("linear", "pytorch_half_pixel", "round_prefer_floor", (0.2, 2.0)),
    ("linear", "align_corners", "round_prefer_floor", (1.6, 0.8)),
    ("linear", "asymmetric", "round_prefer_floor", (2.0, 1.5)),
])
def test_resize_matches_onnxruntime(mode, coordinates, nearest, scale):
    pytest.importorskip("onnxruntime", reason="the ONNX backend's runs need onnxruntime")
    import onnxruntime as ort
    from onnx import TensorProto, helper

    text = (f"model m {{\n input x: f32[N, 2, 5, 5]\n output y = resize(x, [{scale[0]}, {scale[1]}], mode = "
            f'"{mode}", coordinates = "{coordinates}", nearest = "{nearest}")\n}}')
    model = bmc.compile_string(text)
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 5)).astype(np.float32)
    got = load_source(model.generate("numpy")).forward({}, x)["y"]
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode=mode, coordinate_transformation_mode=coordinates,
                            nearest_mode=nearest)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, *scale])])
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    want = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("expr", "message", "at"), [
    ("x[:, 9]", "index 9 is out of range for axis 1 (size 4)", "9"),
    ("x[1:]", "symbolic dim N: it can only be taken whole", "1:"),
    ("x[:, ::0]", "a slice's step cannot be 0", "0"),
    ("x[:, 3:1]", "this slice takes no elements of axis 1", "3:1"),
    ("x[:, :, :, :, 0]", "5 indices for f32[N, 4, 6, 5], which has 4 axes", "0"),
    ("x[..., 0, ...]", "at most one '...'", "..."),
    ("x[:, 1:N]", "a slice to a symbolic length starts at 0 with step 1", "1:N"),
    ("conv2d(x, 6, 3, groups = 3)", "groups 3 does not divide the 4 input channels", "3"),
    ("conv_transpose2d(x, 4, 3, stride = 2, output_padding = 2)", "output_padding 2 must be smaller than its stride",
     "2"),
    ("resize(x, 2, size = [3, 3])", "a scale or a size", "[3, 3]"),
    ('resize(x, 2, mode = "cubic")', 'must be one of "nearest", "linear"', '"cubic"'),
])
def test_errors_point_at_the_argument_or_index(expr, message, at):
    text = f"model m {{\n    input x: f32[N, 4, 6, 5]\n    output y = {expr}\n}}\n"
    with pytest.raises(bmc.BmcError) as e:
        bmc.compile_string(text)
    assert message in str(e.value)
    span = e.value.span
    assert (span.line, text.splitlines()[2][span.column - 1 : span.end_column - 1]) == (3, at)


def test_a_static_axis_cut_to_a_symbolic_length():
    """table[:T]: the first T rows of a parameter, T bound by the input; more than the table holds is an error
    when the model runs."""
    text = ("model m {\n    input ids: i64[N, T]\n    param pos: f32[6, 3] ~ glorot_uniform\n"
            "    output y = embedding(ids, 5, 3) + pos[:T]\n}\n")
    model = bmc.compile_string(text)
    module = load_source(model.generate("numpy"))
    params, _ = model.init_params(0)
    ids = np.random.default_rng(0).integers(0, 5, (2, 4))
    got = module.forward(params, ids)["y"]
    names = sorted(params)
    table, pos = params[names[1]], params[names[0]]  # y.table, pos
    np.testing.assert_allclose(got, table[ids] + pos[:4], rtol=1e-6)
    with pytest.raises(Exception, match="at most T = 6"):
        module.forward(params, np.zeros((2, 7), np.int64))
