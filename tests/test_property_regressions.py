"""Bugs the property tests (tests/test_pass_properties.py) found, each pinned by the shrunk graph hypothesis printed,
as IR text in and the fixed behaviour out."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from bmc.backends import onnx as onnx_backend

from bmc.frontend.preprocess import Preprocess, prologue
from bmc.ir.graph import Builder
from bmc.ir.parse import parse_graph
from bmc.ir.types import TypeError_
from bmc.ir.verifier import verify
from bmc.passes.autodiff import gradients
from bmc.reference.interpret import run_graph

CPU = ["CPUExecutionProvider"]


def ir(text: str):
    graph = parse_graph(textwrap.dedent(text))
    verify(graph)
    return graph


# ---- the IR --------------------------------------------------------------------------------------------------------


def test_split_into_one_piece_is_rejected_by_the_shape_rule():
    # a one-result split was evaluated as a single value: the interpreter gave f32[1, 2, 2] for this f32[2, 2]
    with pytest.raises(TypeError_, match="two or more pieces"):
        ir("""
            graph g(input %x: f32[2, 2]) {
              %a: f32[2, 2] = split(%x, axis=0, sizes=[2])
              return a = %a
            }
        """)


@pytest.mark.parametrize("expr", ["neg(%b)", "abs(%b)", "sign(%b)", "add(%b, %b)", "sub(%b, %b)", "mul(%b, %b)",
                                  "maximum(%b, %b)", "minimum(%b, %b)", "compare(%b, %b, op=<)"])
def test_arithmetic_on_truth_values_is_refused_by_the_shape_rule(expr):
    # the rules took bools for numbers: NumPy then raised on -b and b - b, and ONNX has no bool kernel for any of these
    with pytest.raises(TypeError_, match="expects numbers"):
        ir(f"""
            graph g(input %b: bool[3]) {{
              %y: bool[3] = {expr}
              return y = %y
            }}
        """)


def test_a_sum_of_truth_values_is_refused_and_equality_and_max_are_kept():
    # sum(b) was typed bool[] while NumPy computes an int64 count (`bmc check` now says to cast first)
    with pytest.raises(TypeError_, match="sum expects numbers"):
        ir("""
            graph g(input %b: bool[3]) {
              %n: bool[] = sum(%b, axes=none, keepdims=false)
              return n = %n
            }
        """)
    g = ir("""
        graph g(input %b: bool[3], input %c: bool[3]) {
          %same: bool[3] = compare(%b, %c, op===)
          %any: bool[] = max(%b, axes=none, keepdims=false)
          return same = %same, any = %any
        }
    """)
    out = run_graph(g, {"b": np.array([True, False, False]), "c": np.array([True, True, False])})
    assert out["same"].tolist() == [True, False, True] and out["any"] == np.True_


# ---- autodiff ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("repeated", "distinct"), [
    ("gelu_grad(%x, %x)", "gelu_grad(%x, %x2)"),
    ("layer_norm(%x, %x, %x, eps=1e-05)", "layer_norm(%x, %x2, %x3, eps=1e-05)"),
], ids=["gelu_grad", "layer_norm"])
def test_gradient_through_a_decomposition_counts_a_repeated_operand_once(repeated, distinct):
    """An op without a gradient rule is differentiated through its decomposition; an operand read twice got its
    whole gradient once per read (gelu_grad(x, x): twice the finite differences). It must get the sum of what each
    read would get with distinct operands holding the same values."""
    def grad_of(expr: str) -> dict[str, np.ndarray]:
        g = ir(f"""
            graph g(param %x: f64[4], param %x2: f64[4], param %x3: f64[4]) {{
              %y: f64[4] = {expr}
              %loss: f64[] = sum(%y, axes=none, keepdims=false)
              return loss = %loss
            }}
        """)
        grads = gradients(Builder(g), g.outputs["loss"], g.params)
        g.outputs = {p.name: grads[p] for p in g.params}
        verify(g)
        x = np.array([-1.5, -0.2, 0.7, 2.0])
        return run_graph(g, {"x": x, "x2": x, "x3": x})

    once, apart = grad_of(repeated), grad_of(distinct)
    np.testing.assert_allclose(once["x"], apart["x"] + apart["x2"] + apart["x3"], rtol=1e-12, atol=1e-12)


# ---- the ONNX backend ------------------------------------------------------------------------------------------------


def onnx_run(graph, **feeds):
    proto = onnx_backend.graph_to_model(graph)
    onnx_backend.check(proto)
    return onnx_backend.Predictor(proto, CPU)(**feeds)


def test_onnx_sum_over_no_axes_is_the_identity():
    # ONNX's ReduceSum reads empty axes as "every axis": the export returned a scalar (and failed the checker)
    g = ir("""
        graph g(input %x: f32[2, 2]) {
          %s: f32[2, 2] = sum(%x, axes=[], keepdims=false)
          %m: f32[2, 2] = max(%x, axes=[], keepdims=true)
          return s = %s, m = %m
        }
    """)
    x = np.arange(4, dtype=np.float32).reshape(2, 2)
    out = onnx_run(g, x=x)
    np.testing.assert_array_equal(out["s"], x)
    np.testing.assert_array_equal(out["m"], x)


def test_onnx_export_of_a_recurrent_layer_nothing_reads():
    # both outputs unused: the rule asked for an ONNX node without outputs (StopIteration, an internal error)
    g = ir("""
        graph g(input %x: f32[2, 1, 1], param %W: f32[1, 1], param %R: f32[1, 1], param %B: f32[2]) {
          %seq: f32[2, 1, 1], %last: f32[2, 1] = rnn(%x, %W, %R, %B, hidden=1, reverse=false)
          %y: f32[2, 1, 1] = exp(%x)
          return y = %y
        }
    """)
    proto = onnx_backend.graph_to_model(g)
    assert [n.op_type for n in proto.graph.node] == ["Exp"]


def test_onnx_standardizing_an_input_nothing_reads():
    # folding the standardization looked up the readers of the standardized input, which has none (KeyError)
    g = ir("""
        graph g(input %x0: f32[2, 2], input %x1: f32[2, 2]) {
          %y: f32[2, 2] = exp(%x1)
          return y = %y
        }
    """)
    g = prologue(g, g.inputs[0], Preprocess("x0", mean=0.25, std=2.0))[0]
    proto = onnx_backend.graph_to_model(g, params={})
    x1 = np.ones((2, 2), np.float32)
    out = onnx_backend.Predictor(proto, CPU)(x0=x1, x1=x1)
    np.testing.assert_allclose(out["y"], np.exp(x1))


def test_onnx_predictor_keeps_a_scalar_input_a_scalar():
    # np.ascontiguousarray makes a 0-d array [1]: one_hot of a scalar label came back f32[1, 1] for f32[1]
    g = ir("""
        graph g(input %label: i64[]) {
          %hot: f32[3] = one_hot(%label, depth=3, dtype=f32)
          return hot = %hot
        }
    """)
    out = onnx_run(g, label=np.array(1))
    np.testing.assert_array_equal(out["hot"], np.array([0, 1, 0], np.float32))


def test_onnx_transpose_of_a_scalar():
    # perm=[] could not be written as an ONNX attribute (an internal error at export)
    g = ir("""
        graph g(input %x: f32[]) {
          %t: f32[] = transpose(%x, perm=[])
          %y: f32[] = mul(%t, %x)
          return t = %t, y = %y
        }
    """)
    out = onnx_run(g, x=np.array(3.0, np.float32))
    assert out["t"].shape == () and out["t"] == 3.0 and out["y"] == 9.0


def test_onnx_gemm_fusion_skips_an_add_of_a_split_whose_first_piece_is_unread():
    # fuse_gemm looked up the readers of the Add operand's producer's first output (KeyError for a Split's)
    g = ir("""
        graph g(input %x: f32[4, 3]) {
          %a: f32[1, 3], %b: f32[3, 3] = split(%x, axis=0, sizes=[1, 3])
          %one: f32[] = const(1.0)
          %y: f32[3, 3] = add(%b, %one)
          return y = %y
        }
    """)
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_array_equal(onnx_run(g, x=x)["y"], x[1:] + 1)


def test_onnx_scatter_add_of_i32_ids():
    # ScatterND takes int64 indices only: i32 ids gave a model onnxruntime refused to load
    g = ir("""
        graph g(input %ids: i32[3], input %u: f32[3, 2]) {
          %s: f32[2, 2] = scatter_add(%ids, %u, rows=2)
          return s = %s
        }
    """)
    feeds = {"ids": np.array([1, 0, 1], np.int32), "u": np.arange(6, dtype=np.float32).reshape(3, 2)}
    np.testing.assert_array_equal(onnx_run(g, **feeds)["s"], run_graph(g, feeds)["s"])


def test_onnx_pad_end_after_a_transpose_runs_in_onnxruntime():
    # Pad's `axes` input, sharing the constant [0] with the Slice: onnxruntime's transpose optimizer then ran an
    # out-of-range Gather ("idx=3 must be within the inclusive range [-2,1]")
    g = ir("""
        graph g(input %x: f32[2, 2], input %w: f32[2, 2]) {
          %t: f32[2, 2] = transpose(%x, perm=[1, 0])
          %p: f32[3, 2] = pad_end(%t, axis=0, size=3)
          %e: f32[3, 2] = exp(%p)
          %s: f32[2, 2] = slice(%e, axis=0, start=0, stop=2)
          %m: f32[2, 2] = mul(%s, %w)
          %back: f32[2, 2] = transpose(%m, perm=[1, 0])
          return e = %e, back = %back
        }
    """)
    feeds = {"x": np.arange(4, dtype=np.float32).reshape(2, 2) / 4, "w": np.full((2, 2), 2, np.float32)}
    got, want = onnx_run(g, **feeds), run_graph(g, feeds)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6)


def test_onnx_avg_pool_gradient_with_a_symbolic_channel_count():
    # the transposed convolution was grouped per channel, which needs their count: np.ones(('T', 1, 1, 1)) failed
    g = ir("""
    graph g(input %g: f32[2, T, 2, 2]) {
      %dx: f32[2, T, 3, 3] = avg_pool2d_grad(%g, kernel=[2, 2], stride=[1, 1], padding=[0, 0, 0, 0], input_size=[3, 3])
      return dx = %dx
    }
    """)
    feeds = {"g": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)}
    np.testing.assert_allclose(onnx_run(g, **feeds)["dx"], run_graph(g, feeds)["dx"], rtol=1e-6)
