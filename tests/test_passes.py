"""Passes in the xDSL filecheck spirit: IR text in, one pass, expected IR text out.

Inputs are parsed with `bmc.ir.parse` (a one-line header is fine); outputs are compared with the printer's text,
without source locations. Each pass's result must also pass the verifier.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import bmc
from bmc import ops
from bmc.init import Init
from bmc.ir.graph import Builder, ParamInfo
from bmc.ir.parse import ParseError, parse_graph
from bmc.ir.printer import print_graph
from bmc.ir.types import TypeError_
from bmc.ir.verifier import VerifyError, verify
from bmc.passes import cse, dce, decompose, fold, simplify
from bmc.passes.autodiff import gradients
from bmc.reference.interpret import run_graph
from bmc.train.step import gradient_graph


def ir(text: str) -> str:
    return textwrap.dedent(text).strip()


def check(run_pass, before: str, after: str) -> None:
    graph = parse_graph(before)
    verify(graph)
    result = run_pass(graph)
    verify(result, "the pass under test")
    assert print_graph(result, locations=False) == ir(after)


# ---- fold --------------------------------------------------------------------------------------------------------


def test_fold_evaluates_scalar_constant_chains():
    check(fold.run, """
        graph g(param %x: f64[N, 3]) {
          %two: f64[] = const(2.0)
          %three: f64[] = const(3.0)
          %six: f64[] = mul(%two, %three)
          %four: f64[] = sub(%six, %two)
          %y: f64[N, 3] = mul(%x, %four)
          %k: i64[] = const(7)
          %k2: i64[] = add(%k, %k)
          return y = %y, k2 = %k2
        }
    """, """
        graph g(
            param %x: f64[N, 3],
        ) {
          %two: f64[] = const(2.0)
          %three: f64[] = const(3.0)
          %six: f64[] = const(6.0)
          %four: f64[] = const(4.0)
          %y: f64[N, 3] = mul(%x, %four)
          %k: i64[] = const(7)
          %k2: i64[] = const(14)
          return y = %y, k2 = %k2
        }
    """)


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_fold_keeps_comparisons_and_non_finite_results():
    check(fold.run, """
        graph g() {
          %one: f64[] = const(1.0)
          %zero: f64[] = const(0.0)
          %inf: f64[] = div(%one, %zero)
          %less: bool[] = compare(%zero, %one, op=<)
          return inf = %inf, less = %less
        }
    """, """
        graph g(
        ) {
          %one: f64[] = const(1.0)
          %zero: f64[] = const(0.0)
          %inf: f64[] = div(%one, %zero)
          %less: bool[] = compare(%zero, %one, op=<)
          return inf = %inf, less = %less
        }
    """)


def test_fold_turns_size_of_static_dims_into_constants_but_not_symbolic_ones():
    check(fold.run, """
        graph g(input %x: f32[N, 3, 4]) {
          %static: f32[] = size_of(%x, axes=[1, 2], dtype=f32)
          %symbolic: f32[] = size_of(%x, axes=[0], dtype=f32)
          %all: i64[] = size_of(%x, axes=none, dtype=i64)
          return static = %static, symbolic = %symbolic, all = %all
        }
    """, """
        graph g(
            input %x: f32[N, 3, 4],
        ) {
          %static: f32[] = const(12.0)
          %symbolic: f32[] = size_of(%x, axes=[0], dtype=f32)
          %all: i64[] = size_of(%x, axes=none, dtype=i64)
          return static = %static, symbolic = %symbolic, all = %all
        }
    """)


def test_integer_division_is_rejected_by_the_shape_rule():
    """'/' is float division everywhere (fold would truncate 7/2 where NumPy gives 3.5), so ints must be cast."""
    graph = parse_graph("""
        graph g() {
          %seven: i64[] = const(7)
          %two: i64[] = const(2)
          %q: i64[] = div(%seven, %two)
          return q = %q
        }
    """)
    with pytest.raises(TypeError_, match="divides floating-point tensors"):
        verify(graph)


# ---- simplify ----------------------------------------------------------------------------------------------------


def test_simplify_drops_identities_to_a_fixpoint():
    # x * 1 -> x ; x + 0 -> x ; x - 0 -> x ; x / 1 -> x, one after the other
    check(simplify.run, """
        graph g(param %x: f64[2, 3]) {
          %zero: f64[] = const(0.0)
          %one: f64[] = const(1.0)
          %a: f64[2, 3] = mul(%x, %one)
          %b: f64[2, 3] = add(%a, %zero)
          %c: f64[2, 3] = sub(%b, %zero)
          %d: f64[2, 3] = div(%c, %one)
          return d = %d
        }
    """, """
        graph g(
            param %x: f64[2, 3],
        ) {
          %zero: f64[] = const(0.0)
          %one: f64[] = const(1.0)
          return d = %x
        }
    """)


def test_simplify_constant_on_the_left():
    # 0 + x -> x ; 1 * x -> x ; 0 - x -> -x ; -1 * x -> -x ; x * -1 -> -x
    check(simplify.run, """
        graph g(param %x: f64[3]) {
          %zero: f64[] = const(0.0)
          %one: f64[] = const(1.0)
          %minus: f64[] = const(-1.0)
          %a: f64[3] = add(%zero, %x)
          %b: f64[3] = mul(%one, %x)
          %c: f64[3] = sub(%zero, %x)
          %d: f64[3] = mul(%minus, %x)
          %e: f64[3] = mul(%x, %minus)
          return a = %a, b = %b, c = %c, d = %d, e = %e
        }
    """, """
        graph g(
            param %x: f64[3],
        ) {
          %zero: f64[] = const(0.0)
          %one: f64[] = const(1.0)
          %minus: f64[] = const(-1.0)
          %c: f64[3] = neg(%x)
          %d: f64[3] = neg(%x)
          %e: f64[3] = neg(%x)
          return a = %x, b = %x, c = %c, d = %d, e = %e
        }
    """)


def test_simplify_negations():
    # -(-x) -> x ; x - (-y) -> x + y ; x + (-y) -> x - y ; -(x * c) -> x * (-c)
    check(simplify.run, """
        graph g(param %x: f64[3], param %y: f64[3]) {
          %nx: f64[3] = neg(%x)
          %nnx: f64[3] = neg(%nx)
          %ny: f64[3] = neg(%y)
          %s: f64[3] = sub(%x, %ny)
          %a: f64[3] = add(%x, %ny)
          %c: f64[] = const(2.0)
          %m: f64[3] = mul(%x, %c)
          %nm: f64[3] = neg(%m)
          return nnx = %nnx, s = %s, a = %a, nm = %nm
        }
    """, """
        graph g(
            param %x: f64[3],
            param %y: f64[3],
        ) {
          %nx: f64[3] = neg(%x)
          %ny: f64[3] = neg(%y)
          %s: f64[3] = add(%x, %y)
          %a: f64[3] = sub(%x, %y)
          %c: f64[] = const(2.0)
          %m: f64[3] = mul(%x, %c)
          %t0: f64[] = const(-2.0)
          %nm: f64[3] = mul(%x, %t0)
          return nnx = %x, s = %s, a = %a, nm = %nm
        }
    """)


def test_simplify_removes_shape_ops_that_change_nothing():
    # reshape/broadcast_to to the own shape, transpose by the identity, cast to the own dtype -> x
    check(simplify.run, """
        graph g(param %x: f64[N, 3]) {
          %a: f64[N, 3] = reshape(%x, shape=[-1, 3])
          %b: f64[N, 3] = broadcast_to(%a, shape=[N, 3])
          %c: f64[N, 3] = transpose(%b, perm=[0, 1])
          %d: f64[N, 3] = cast(%c, dtype=f64)
          return d = %d
        }
    """, """
        graph g(
            param %x: f64[N, 3],
        ) {
          return d = %x
        }
    """)


def test_simplify_merges_reshape_and_transpose_chains():
    # reshape(reshape(x)) -> reshape(x) ; transpose(transpose(x, p), q) -> transpose(x, p∘q), the identity -> x
    check(simplify.run, """
        graph g(param %x: f64[2, 3, 4]) {
          %flat: f64[24] = reshape(%x, shape=[24])
          %r: f64[6, 4] = reshape(%flat, shape=[6, 4])
          %t: f64[3, 4, 2] = transpose(%x, perm=[1, 2, 0])
          %tt: f64[4, 2, 3] = transpose(%t, perm=[1, 2, 0])
          %back: f64[2, 3, 4] = transpose(%tt, perm=[1, 2, 0])
          return r = %r, tt = %tt, back = %back
        }
    """, """
        graph g(
            param %x: f64[2, 3, 4],
        ) {
          %flat: f64[24] = reshape(%x, shape=[24])
          %r: f64[6, 4] = reshape(%x, shape=[6, 4])
          %t: f64[3, 4, 2] = transpose(%x, perm=[1, 2, 0])
          %tt: f64[4, 2, 3] = transpose(%x, perm=[2, 0, 1])
          return r = %r, tt = %tt, back = %x
        }
    """)


def test_simplify_keeps_shape_ops_that_broadcast_or_convert():
    # broadcast_to a larger shape, a real reshape and a cast to another dtype are not no-ops
    before = """
        graph g(param %v: f64[3], param %x: f64[2, 3]) {
          %b: f64[2, 3] = broadcast_to(%v, shape=[2, 3])
          %r: f64[3, 2] = reshape(%x, shape=[3, 2])
          %c: f32[2, 3] = cast(%x, dtype=f32)
          %s: f64[2, 3] = add(%x, %b)
          return s = %s, r = %r, c = %c
        }
    """
    check(simplify.run, before, print_graph(parse_graph(before)))


# ---- cse ---------------------------------------------------------------------------------------------------------


def test_cse_merges_equal_nodes_and_constants():
    check(cse.run, """
        graph g(param %x: f64[2, 3], param %y: f64[2, 3]) {
          %a: f64[2, 3] = mul(%x, %y)
          %b: f64[2, 3] = mul(%x, %y)
          %one: f64[] = const(1.0)
          %also_one: f64[] = const(1.0)
          %c: f64[2, 3] = add(%a, %one)
          %d: f64[2, 3] = add(%b, %also_one)
          %rows: f64[3] = sum(%c, axes=[0], keepdims=false)
          %cols: f64[2] = sum(%d, axes=[1], keepdims=false)
          return rows = %rows, cols = %cols
        }
    """, """
        graph g(
            param %x: f64[2, 3],
            param %y: f64[2, 3],
        ) {
          %a: f64[2, 3] = mul(%x, %y)
          %one: f64[] = const(1.0)
          %c: f64[2, 3] = add(%a, %one)
          %rows: f64[3] = sum(%c, axes=[0], keepdims=false)
          %cols: f64[2] = sum(%c, axes=[1], keepdims=false)
          return rows = %rows, cols = %cols
        }
    """)


def test_cse_never_merges_parameters_with_equal_initial_values():
    """Parameters are graph inputs, not nodes: equal inits must not make them one (tinygrad issue #9597)."""
    before = """
        graph g(input %x: f64[3], param %w1: f64[3], param %w2: f64[3]) {
          %a: f64[3] = mul(%x, %w1)
          %b: f64[3] = mul(%x, %w2)
          %s: f64[3] = add(%a, %b)
          return s = %s
        }
    """
    graph = parse_graph(before)
    for w in graph.params:
        graph.param_info[w] = ParamInfo(Init("constant", {"value": 0.5}))
    assert print_graph(cse.run(graph), locations=False) == print_graph(parse_graph(before))


def test_cse_keeps_negative_zero_apart_from_zero():
    graph = parse_graph("""
        graph g() {
          %zero: f64[] = const(0.0)
          %minus_zero: f64[] = const(-0.0)
          %one: f64[] = const(1.0)
          %d: f64[] = div(%one, %minus_zero)
          return zero = %zero, d = %d
        }
    """)
    with np.errstate(divide="ignore"):
        assert run_graph(cse.run(graph), {})["d"] == -np.inf


# ---- dce ---------------------------------------------------------------------------------------------------------


def test_dce_drops_nodes_no_output_needs_and_keeps_unused_inputs():
    check(dce.run, """
        graph g(param %x: f64[3], param %unused: f64[3]) {
          %dead: f64[3] = exp(%x)
          %dead2: f64[3] = mul(%dead, %x)
          %live: f64[3] = neg(%x)
          %y: f64[3] = add(%live, %x)
          return y = %y
        }
    """, """
        graph g(
            param %x: f64[3],
            param %unused: f64[3],
        ) {
          %live: f64[3] = neg(%x)
          %y: f64[3] = add(%live, %x)
          return y = %y
        }
    """)


# ---- decompose ---------------------------------------------------------------------------------------------------


def test_decompose_expands_unsupported_ops_to_a_fixpoint():
    # cross_entropy decomposes into a log_softmax, which is unsupported too; relu becomes maximum(x, 0)
    unsupported = (ops.CrossEntropy, ops.LogSoftmax, ops.Relu)
    check(lambda g: decompose.run(g, lambda op: not isinstance(op, unsupported)), """
        graph g(input %x: f64[N, 3], target %label: i64[N]) {
          %loss: f64[] = cross_entropy(%x, %label)
          %r: f64[N, 3] = relu(%x)
          %p: f64[N, 3] = softmax(%x, axis=-1)
          return loss = %loss, r = %r, p = %p
        }
    """, """
        graph g(
            input %x: f64[N, 3],
            target %label: i64[N],
        ) {
          %t0: f64[N, 3] = one_hot(%label, depth=3, dtype=f64)
          %t1: f64[N, 1] = max(%x, axes=[-1], keepdims=true)
          %t2: f64[N, 3] = sub(%x, %t1)
          %t3: f64[N, 3] = exp(%t2)
          %t4: f64[N, 1] = sum(%t3, axes=[-1], keepdims=true)
          %t5: f64[N, 1] = log(%t4)
          %t6: f64[N, 3] = sub(%t2, %t5)
          %t7: f64[N, 3] = mul(%t0, %t6)
          %t8: f64[] = sum(%t7, axes=none, keepdims=false)
          %t9: f64[] = size_of(%x, axes=[0], dtype=f64)
          %t10: f64[] = div(%t8, %t9)
          %loss: f64[] = neg(%t10)
          %t11: f64[] = const(0.0)
          %r: f64[N, 3] = maximum(%x, %t11)
          %p: f64[N, 3] = softmax(%x, axis=-1)
          return loss = %loss, r = %r, p = %p
        }
    """)


def test_decompose_refuses_an_unsupported_op_without_decomposition():
    graph = parse_graph("graph g(param %x: f64[3]) { %y: f64[3] = exp(%x)\n return y = %y }")
    with pytest.raises(LookupError, match="'exp' has neither a lowering on this backend nor a decomposition"):
        decompose.run(graph, lambda op: False)


# ---- verifier ----------------------------------------------------------------------------------------------------


def test_verifier_rejects_a_use_before_the_definition():
    graph = parse_graph("""
        graph g(param %x: f64[3]) {
          %b: f64[3] = neg(%a)
          %a: f64[3] = exp(%x)
          return b = %b
        }
    """)
    with pytest.raises(VerifyError, match=r"node 0 \(neg\) uses .* before it is defined"):
        verify(graph)


def test_verifier_rejects_an_output_type_the_shape_rule_does_not_give():
    graph = parse_graph("""
        graph g(param %x: f64[3]) {
          %s: f64[3] = sum(%x, axes=none, keepdims=false)
          return s = %s
        }
    """)
    with pytest.raises(VerifyError, match=r"node 0 \(sum\) has output types that its shape rule does not give"):
        verify(graph)


# ---- the parser ----------------------------------------------------------------------------------------------------


def test_parser_reads_attributes_back_into_op_fields():
    graph = parse_graph("""
        graph g(input %x: f32[N, T, 3], input %label: i64[N, T]) {
          %flat: f32[N*T, 3] = reshape(%x, shape=[-1, 3])  # model.bm:3
          %eq: bool[N, T, 3] = compare(%x, %x, op===)
          %gt: bool[N, T, 3] = compare(%x, %x, op=>)
          %m: f32[N, 1, 3] = max(%x, axes=[1], keepdims=true)
          %s: f32[] = sum(%x, axes=none, keepdims=false)
          %mm: f32[N, 3, 3] = matmul(%x, %x, transpose_a=true, transpose_b=false)
          %c: f32[] = const(-1e-07)
          %k: i64[] = const(3)
          %oh: f32[N, T, 4] = one_hot(%label, depth=4, dtype=f32)
          return flat = %flat
        }
    """)
    assert [n.op for n in graph.nodes] == [
        ops.Reshape((-1, 3)), ops.Compare("=="), ops.Compare(">"), ops.Max((1,), True), ops.Sum(None, False),
        ops.MatMul(True, False), ops.Const(-1e-07, "f32"), ops.Const(3, "i64"), ops.OneHot(4, "f32"),
    ]
    assert str(graph.nodes[0].outputs[0].type) == "f32[N*T, 3]"
    verify(graph)


@pytest.mark.parametrize(("text", "message"), [
    ("graph g(param %x: f64[3]) { %y: f64[3] = frobnicate(%x)\n return y = %y }", "unknown op 'frobnicate'"),
    ("graph g(param %x: f64[3]) { %y: f64[3] = neg(%z)\n return y = %y }", "%z is never defined"),
    ("graph g(param %x: f64[3]) { %y: f64[3] = sum(%x, axis=0)\n return y = %y }", "bad attributes for sum"),
    ("graph g(weight %x: f64[3]) {\n return y = %x }", "unknown role 'weight'"),
    ("graph g(param %x: f64[3]) { %y: f64[3] = neg(%x) }", "a graph ends with 'return"),
])
def test_parser_errors(text, message):
    with pytest.raises(ParseError, match=message.replace("(", r"\(")):
        parse_graph(text)


@pytest.mark.parametrize("which", ["train step", "optimized train step", "gradients"])
def test_print_parse_print_round_trips_the_mlp(which):
    model = bmc.compile("examples/mlp.bm", defines={"features": 4, "hidden": 3, "classes": 2})
    graph = {
        "train step": lambda: model.compiled.train_step(optimized=False),
        "optimized train step": lambda: model.compiled.train_step(),
        "gradients": lambda: gradient_graph(model.compiled.model, wrt="all"),
    }[which]()
    text = print_graph(graph)  # with `# examples/mlp.bm:7` comments, which the parser skips
    parsed = parse_graph(text)
    verify(parsed)
    assert print_graph(parsed) == print_graph(graph, locations=False)


def test_print_parse_print_round_trips_nested_scan_bodies():
    """A decomposed GRU and its gradient: a forward and a backward scan, each with its body printed below it."""
    graph = parse_graph("""
        graph g(input %x: f32[N, 3, 2], param %W: f32[6, 2], param %R: f32[6, 2], param %B: f32[12]) {
          %seq: f32[N, 3, 2], %last: f32[N, 2] = gru(%x, %W, %R, %B, hidden=2, reverse=false, linear_before_reset=true)
          %loss: f32[] = sum(%seq, axes=none, keepdims=false)
          return loss = %loss
        }
    """)
    graph = decompose.run(graph, lambda op: not isinstance(op, ops.GRU))
    grads = gradients(Builder(graph), graph.outputs["loss"], graph.params)
    graph.outputs.update({f"grad/{p.name}": g for p, g in grads.items()})
    text = print_graph(graph)
    assert text.count("body: graph") == 2
    parsed = parse_graph(text)
    verify(parsed)
    assert print_graph(parsed) == print_graph(graph, locations=False)
