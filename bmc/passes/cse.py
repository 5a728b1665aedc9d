"""Common-subexpression elimination.

Two nodes merge when they apply an equal pure op to the same input values. Parameters and inputs are graph inputs,
never nodes, so two parameters with equal initial values can never be merged (tinygrad issue #9597).
"""

from __future__ import annotations

from bmc.ir.graph import Builder, Graph, Node, Value
from bmc.ir.rewrite import rewrite

name = "cse"


def run(graph: Graph) -> Graph:
    seen: dict[tuple, tuple[Value, ...]] = {}

    def rule(b: Builder, node: Node, inputs: tuple[Value, ...]) -> tuple[Value, ...] | None:
        if not node.op.pure:
            return None
        key = (node.op.key(), tuple(v.id for v in inputs))
        if key in seen:
            return seen[key]
        outs = b.emit(node.op, *inputs, span=node.span)
        outs = outs if isinstance(outs, tuple) else (outs,)
        seen[key] = outs
        return outs

    return rewrite(graph, rule)
