"""leaky_relu, hard_sigmoid, hard_swish, clip and erf beyond their rows in tests/elementwise_ops.py and cases in
tests/op_cases.py: erf without SciPy (the NumPy kernel and the decomposition against `math.erf` to the last bits,
in the tails and for tiny values), the ONNX export of f64 models (onnxruntime has float kernels only for four of
them), and a `.bm` model of all five built for NumPy and ONNX against PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bmc.backends.numpy import compile_function

import bmc
from bmc import ops
from bmc.ir.graph import Builder, Graph
from bmc.ir.types import TensorType
from bmc.passes import decompose
from bmc.reference.interpret import run_graph
from bmc.reference.kernels import _erf

GRID = np.unique(np.concatenate([
    np.linspace(-7.0, 7.0, 140_001),  # every range of Cody's approximation and the steps between them
    np.geomspace(1e-300, 30.0, 20_001), -np.geomspace(1e-300, 30.0, 2_001),  # tiny values, the tails
    [0.46875, np.nextafter(0.46875, 1), 4.0, np.nextafter(4.0, 5), 26.5, 27.0, 1e300],
]))
GRID32 = GRID[np.abs(GRID) < 1e30].astype(np.float32)


def math_erf(x: np.ndarray) -> np.ndarray:
    return np.array([math.erf(float(v)) for v in x.ravel()]).reshape(x.shape)


def ulps(got: np.ndarray, want: np.ndarray) -> float:
    return float((np.abs(got - want) / np.spacing(np.abs(want).astype(got.dtype))).max())


def unary_graph(op: ops.Op, dtype: str) -> Graph:
    g = Graph(op.name)
    x = g.add_input(TensorType(dtype, ("N",)), "x", "input")
    g.outputs = {"y": Builder(g).emit(op, x)}
    return g


# ---- erf -----------------------------------------------------------------------------------------------------------


def test_erf_kernel_is_within_4_ulps_of_math_erf():
    got = _erf(GRID)
    assert got.dtype == np.float64
    assert ulps(got, math_erf(GRID)) <= 4


def test_erf_kernel_rounds_float32_inputs_as_math_erf_does():
    x = GRID32
    got = _erf(x)
    assert got.dtype == np.float32
    assert ulps(got, math_erf(x).astype(np.float32)) <= 1


def test_erf_kernel_special_values():
    got = _erf(np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -1e-310]))
    assert got[:4].tolist() == [0.0, 0.0, 1.0, -1.0] and np.signbit(got[1])
    assert np.isnan(got[4])
    np.testing.assert_allclose(got[5:], [math.erf(5e-324), math.erf(-1e-310)], rtol=0, atol=1e-323)


def test_erf_in_the_generated_numpy_module_needs_only_numpy():
    fn = compile_function(unary_graph(ops.Erf(), "f64"))
    assert "scipy" not in fn.source and "import numpy as np" in fn.source
    assert ulps(fn({"x": GRID})["y"], math_erf(GRID)) <= 4


def test_erf_decomposition_is_cody_too():
    """The decomposition (what an f64 ONNX model computes) is the kernel's formula in elementwise ops."""
    graph = decompose.run(unary_graph(ops.Erf(), "f64"), lambda op: not op.has_decomposition())
    got = run_graph(graph, {"x": GRID})["y"]
    assert ulps(got, math_erf(GRID)) <= 4
    assert ulps(got, _erf(GRID)) <= 1


# ---- ONNX ----------------------------------------------------------------------------------------------------------

FLOAT_KERNELS = {
    "leaky_relu": (ops.LeakyRelu(0.2), "LeakyRelu"), "hard_sigmoid": (ops.HardSigmoid(1 / 6, 0.5), "HardSigmoid"),
    "hard_swish": (ops.HardSwish(), "HardSwish"), "erf": (ops.Erf(), "Erf"), "clip": (ops.Clip(-0.5, 1.0), "Clip"),
    "clip_max": (ops.Clip(max=0.25), "Clip"),
}


@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize(("op", "node"), FLOAT_KERNELS.values(), ids=FLOAT_KERNELS)
def test_onnx_export_runs_in_onnxruntime(op, node, dtype):
    """The one ONNX node in f32; in f64 the decomposition where onnxruntime has no double kernel (Clip has one)."""
    pytest.importorskip("onnxruntime", reason="the ONNX backend's runs need onnxruntime")
    from bmc.backends import onnx as onnx_backend

    graph = unary_graph(op, dtype)
    proto = onnx_backend.graph_to_model(graph)
    onnx_backend.check(proto)
    types = [n.op_type for n in proto.graph.node]
    assert (types == [node]) == (dtype == "f32" or node == "Clip"), types
    x = (GRID if dtype == "f64" else GRID32)[::7]
    got = onnx_backend.Predictor(proto, ["CPUExecutionProvider"])(x=x)["y"]
    want = compile_function(graph)({"x": x})["y"]
    assert got.dtype == want.dtype
    tol = 1e-15 if dtype == "f64" else 1e-6
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# ---- a model of all five against PyTorch -------------------------------------------------------------------------

FIVE = """\
model five {{
    input x: {dtype}[N, 16]
    output leaky = leaky_relu(x) + leaky_relu(x, alpha = 0.2)
    output hard = hard_sigmoid(x) + hard_sigmoid(x, alpha = 1 / 6, beta = 0.5)
    output swish = hard_swish(x)
    output clipped = clip(x, min = -0.5, max = 1) + clip(x, max = 0.25) + clip(x, min = 0)
    output e = erf(x)
}}
"""


def torch_five(t):
    import torch
    import torch.nn.functional as F

    return {"leaky": F.leaky_relu(t) + F.leaky_relu(t, 0.2),
            "hard": torch.clamp(0.2 * t + 0.5, 0, 1) + F.hardsigmoid(t), "swish": F.hardswish(t),
            "clipped": torch.clamp(t, -0.5, 1.0) + torch.clamp(t, max=0.25) + torch.clamp(t, min=0.0),
            "e": torch.erf(t)}


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_a_model_of_all_five_matches_pytorch_on_numpy_and_onnx(dtype):
    torch = pytest.importorskip("torch", reason="the comparison needs PyTorch")
    pytest.importorskip("onnxruntime", reason="the ONNX backend's runs need onnxruntime")
    from bmc.backends import onnx as onnx_backend

    model = bmc.compile_string(FIVE.format(dtype=dtype), filename="five.bm")
    rng = np.random.default_rng(5)
    x = (4 * rng.standard_normal((64, 16))).astype(np.float32 if dtype == "f32" else np.float64)
    want = {k: v.numpy() for k, v in torch_five(torch.from_numpy(x)).items()}
    numpy_out = compile_function(model.compiled.inference())({"x": x})
    onnx_out = onnx_backend.Predictor(onnx_backend.inference_model(model, {}), ["CPUExecutionProvider"])(x=x)
    tol = 1e-6 if dtype == "f32" else 1e-14
    for k, w in want.items():
        for backend, got in (("numpy", numpy_out), ("onnx", onnx_out)):
            assert got[k].dtype == w.dtype, (backend, k)
            np.testing.assert_allclose(got[k], w, rtol=tol, atol=tol, err_msg=f"{backend} {k}")


# ---- the `.bm` surface -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("call", "message", "at"), [
    ("clip(x)", "clip() needs a min, a max or both", "clip(x)"),
    ("clip(x, min = 1, max = -1)", "clip's min 1 is greater than its max -1", "-1"),
    ("clip(x, min = x)", "clip's min must be a number, not a tensor f32[N, 8]", "x"),
    ("leaky_relu(x, alpha = true)", "leaky_relu's alpha must be a number, not true", "true"),
    ("hard_swish(x, alpha = 0.1)", "hard_swish() has no argument named 'alpha'", "alpha = 0.1"),
])
def test_argument_errors_point_at_the_argument(call, message, at):
    from bmc.diagnostics import BmcError

    text = f"model m {{\n    input x: f32[N, 8]\n    output y = {call}\n}}\n"
    with pytest.raises(BmcError) as info:
        bmc.compile_string(text, filename="m.bm")
    e = info.value
    assert message in e.message, e.render()
    assert e.span.text() == at, e.render()


def test_exact_gelu_matches_pytorch_forward_and_gradient():
    """gelu(x, approximate = "none") is nn.GELU(): 0.5 x (1 + erf(x / √2)), in f64; and bmc's gradient of it (one
    step of gd with lr 1 on a parameter added to x: the step is minus the gradient) is autograd's."""
    torch = pytest.importorskip("torch", reason="the comparison is with PyTorch (pip install '.[reference]')")
    from bmc.runtime import load_source

    model = bmc.compile_string("""
model m {
    input  x: f32[N, 6]
    target t: f32[N, 6]
    param  w: f32[6] = 0
    output y = gelu(x + w, approximate = "none")
    loss = mse(y, t)
}
train m {
    optimizer = gd(lr = 1)
}""", dtype="f64")
    module = load_source(model.generate("numpy", train=True))
    x = np.random.default_rng(0).standard_normal((4, 6)) * 3
    t = np.random.default_rng(1).standard_normal((4, 6))
    tx, tw = torch.tensor(x), torch.zeros(6, dtype=torch.float64, requires_grad=True)
    ty = torch.nn.functional.gelu(tx + tw)
    params, state = model.init_params(0)
    np.testing.assert_allclose(module.forward(params, x)["y"], ty.detach().numpy(), rtol=1e-14, atol=1e-15)
    torch.nn.functional.mse_loss(ty, torch.tensor(t)).backward()
    module.train_step(params, state, {"x": x, "t": t}, 1.0)
    np.testing.assert_allclose(-params["w"], tw.grad.numpy(), rtol=1e-12, atol=1e-15)
