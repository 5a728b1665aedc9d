"""The op-case table (tests/op_cases.py) on every backend: the ONNX lowering in onnxruntime and in onnx.reference's
ReferenceEvaluator, the CUDA kernels in the CPU emulator, and the generated NumPy module, each against the
reference semantics (bmc/reference/interpret.py). The independent check of the reference itself, against PyTorch,
is tests/test_differential.py."""

from __future__ import annotations

import numpy as np
import pytest
from bmc.backends.numpy import compile_function

from bmc.reference.interpret import run_graph
from bmc.reference.rules import prepare
from tests.op_cases import CASES, case_feeds, case_graph

PARAMS = [pytest.param(*c, id=c[0]) for c in CASES]
# onnx.reference (1.23) cuts a grouped ConvTranspose's weights [C_in, O / G, kh, kw] along axis 0 by O / G rows
# instead of C_in / G (op_conv_transpose.py): onnxruntime alone checks these
REFERENCE_EVALUATOR_WRONG = {"conv2d_grad_input_groups", "conv_transpose2d"}


def _compare(got: dict, want: dict, backend: str) -> None:
    for k, w in want.items():
        w = np.asarray(w)
        scale = max(1.0, float(np.abs(w, where=np.isfinite(w), out=np.zeros(w.shape)).max(initial=0)))
        result = np.asarray(got[k])
        assert result.shape == w.shape and result.dtype == w.dtype, (backend, k, result.shape, result.dtype)
        np.testing.assert_allclose(result, w, rtol=1e-5, atol=1e-6 * scale, err_msg=f"{backend} {k}")


def _case(name, op, types, high):
    graph = case_graph(name, op, types)
    feeds = case_feeds(graph, op, high)
    return graph, feeds, run_graph(prepare(graph), dict(feeds))


@pytest.mark.parametrize(("name", "op", "types", "high"), PARAMS)
def test_numpy_module(name, op, types, high):
    graph, feeds, want = _case(name, op, types, high)
    _compare(compile_function(graph)(dict(feeds)), want, "numpy")


@pytest.mark.parametrize(("name", "op", "types", "high"), PARAMS)
def test_onnx(name, op, types, high):
    pytest.importorskip("onnxruntime", reason="the ONNX backend's runs need onnxruntime")
    from bmc.backends import onnx as onnx_backend
    from onnx.reference import ReferenceEvaluator

    graph, feeds, want = _case(name, op, types, high)
    proto = onnx_backend.graph_to_model(graph)
    onnx_backend.check(proto)
    got = onnx_backend.Predictor(proto, ["CPUExecutionProvider"])(**feeds)
    _compare(got, want, "onnxruntime")
    if name not in REFERENCE_EVALUATOR_WRONG:
        _compare(dict(zip(got, ReferenceEvaluator(proto).run(None, feeds), strict=True)), want, "onnx.reference")


@pytest.fixture(scope="module")
def cuda_session():
    """Every case as one function of one model.cu, compiled once by the emulator."""
    from bmc.backends import cuda
    from bmc.backends.cuda.runtime import Library

    from tests.cuda_emulator import emulate

    if emulate.compiler() is None:
        pytest.skip("no g++ for the CUDA emulator")
    prog = cuda.generate("cases", "cases.bm", "", {c[0]: case_graph(*c[:3]) for c in CASES})
    return Library(emulate.build(prog.source), prog.manifest).session()


@pytest.mark.parametrize(("name", "op", "types", "high"), PARAMS)
def test_cuda_emulator(cuda_session, name, op, types, high):
    _, feeds, want = _case(name, op, types, high)
    _compare(cuda_session.run(name, feeds), want, "cuda emulator")
