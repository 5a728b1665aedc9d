"""Dead-code elimination: drop nodes whose outputs no graph output needs."""

from __future__ import annotations

from bmc.ir.graph import Graph

name = "dce"


def run(graph: Graph) -> Graph:
    live = set(graph.outputs.values())
    kept = []
    for node in reversed(graph.nodes):
        if any(o in live for o in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    graph.nodes = kept[::-1]
    return graph
