"""Algebraic simplification: small pattern rules, each with its identity in a comment, run to a fixpoint.

A rule only fires when the replacement has exactly the type of the value it replaces (so `x + 0` with a
broadcasting zero is kept).
"""

from __future__ import annotations

from collections.abc import Callable

from bmc.ir.graph import Builder, Graph, Node, Value
from bmc.ir.rewrite import rewrite
from bmc.ops import emit as E
from bmc.ops.elementwise import Add, Cast, Div, Mul, Neg, Sub
from bmc.ops.shape import BroadcastTo, Reshape, Transpose
from bmc.passes.fold import constant_of

name = "simplify"

Pattern = Callable[[Builder, Node, tuple[Value, ...]], Value | None]


def _is(v: Value, c: float) -> bool:
    value = constant_of(v)
    return value is not None and value == c


def _producer(v: Value, op_type: type) -> Node | None:
    return v.producer if v.producer is not None and isinstance(v.producer.op, op_type) else None


def add_zero(b, node, xs):  # x + 0 -> x ; 0 + x -> x
    if isinstance(node.op, Add):
        x, y = xs
        return x if _is(y, 0) else y if _is(x, 0) else None


def sub_zero(b, node, xs):  # x - 0 -> x ; 0 - x -> -x
    if isinstance(node.op, Sub):
        x, y = xs
        if _is(y, 0):
            return x
        if _is(x, 0):
            return E.neg(b, y)


def mul_one(b, node, xs):  # x * 1 -> x ; 1 * x -> x ; x * -1 -> -x
    if isinstance(node.op, Mul):
        x, y = xs
        if _is(y, 1):
            return x
        if _is(x, 1):
            return y
        if _is(y, -1):
            return E.neg(b, x)
        if _is(x, -1):
            return E.neg(b, y)


def div_one(b, node, xs):  # x / 1 -> x
    if isinstance(node.op, Div) and _is(xs[1], 1):
        return xs[0]


def double_neg(b, node, xs):  # -(-x) -> x
    if isinstance(node.op, Neg) and (inner := _producer(xs[0], Neg)):
        return inner.inputs[0]


def sub_neg(b, node, xs):  # x - (-y) -> x + y ; x + (-y) -> x - y
    if isinstance(node.op, Sub) and (inner := _producer(xs[1], Neg)):
        return E.add(b, xs[0], inner.inputs[0])
    if isinstance(node.op, Add) and (inner := _producer(xs[1], Neg)):
        return E.sub(b, xs[0], inner.inputs[0])


def neg_mul(b, node, xs):  # -(x * c) -> x * (-c) for a constant c
    if isinstance(node.op, Neg) and (inner := _producer(xs[0], Mul)):
        x, y = inner.inputs
        if (c := constant_of(y)) is not None:
            return E.mul(b, x, E.like(b, -c, y))


def noop_shape(b, node, xs):  # reshape/broadcast_to to its own shape, cast to its own dtype -> x
    # (a transpose whose output type equals its input's, as on [N, 8, 8], still moves data: see identity_transpose)
    if isinstance(node.op, Reshape | BroadcastTo | Cast):
        return xs[0]


def identity_transpose(b, node, xs):  # transpose(x, [0, 1, ..., n-1]) -> x
    if isinstance(node.op, Transpose) and node.op.perm == tuple(range(len(node.op.perm))):
        return xs[0]


def reshape_chain(b, node, xs):  # reshape(reshape(x)) -> reshape(x)
    if isinstance(node.op, Reshape) and (inner := _producer(xs[0], Reshape)):
        return E.reshape(b, inner.inputs[0], node.op.shape)


def transpose_chain(b, node, xs):  # transpose(transpose(x, p), q) -> transpose(x, p∘q)
    if isinstance(node.op, Transpose) and (inner := _producer(xs[0], Transpose)):
        perm = tuple(inner.op.perm[q] for q in node.op.perm)
        return E.transpose(b, inner.inputs[0], perm)


PATTERNS: list[Pattern] = [add_zero, sub_zero, mul_one, div_one, double_neg, sub_neg, neg_mul, noop_shape,
                           identity_transpose, reshape_chain, transpose_chain]


def run(graph: Graph, patterns: list[Pattern] | None = None) -> Graph:
    patterns = PATTERNS if patterns is None else patterns
    changed = True

    def rule(b: Builder, node: Node, xs: tuple[Value, ...]) -> tuple[Value, ...] | None:
        nonlocal changed
        if len(node.outputs) != 1:
            return None
        for pattern in patterns:
            mark = len(b.graph.nodes)
            out = pattern(b, node, xs)
            if out is not None and out.type == node.outputs[0].type:
                changed = True
                return (out,)
            del b.graph.nodes[mark:]  # a pattern that did not apply leaves nothing behind
        return None

    while changed:
        changed = False
        graph = rewrite(graph, rule)
    return graph
