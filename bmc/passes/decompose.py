"""Expand composite ops that a backend has no lowering for into the smaller ops of their `decompose` rule."""

from __future__ import annotations

from collections.abc import Callable

from bmc.ir.graph import Builder, Graph, Node, Value
from bmc.ir.rewrite import rewrite
from bmc.ops.base import Op

name = "decompose"


def run(graph: Graph, supported: Callable[[Op], bool]) -> Graph:
    """Decompose, to a fixpoint, every node whose op `supported` rejects."""

    def rule(b: Builder, node: Node, inputs: tuple[Value, ...]) -> tuple[Value, ...] | None:
        if supported(node.op):
            return None
        if not node.op.has_decomposition():
            raise LookupError(f"op '{node.op.name}' has neither a lowering on this backend nor a decomposition")
        outs = node.op.decompose(b, *inputs)
        return outs if isinstance(outs, tuple) else (outs,)

    while any(not supported(n.op) for n in graph.nodes):
        graph = rewrite(graph, rule)
    return graph
