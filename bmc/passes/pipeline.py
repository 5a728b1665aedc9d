"""The pass pipeline. The verifier runs after every pass."""

from __future__ import annotations

from collections.abc import Callable

from bmc.ir.graph import Graph
from bmc.ir.verifier import verify
from bmc.passes import cse, dce, fold, simplify

Pass = Callable[[Graph], Graph]

OPTIMIZE: list[tuple[str, Pass]] = [
    (fold.name, fold.run),
    (simplify.name, simplify.run),
    (cse.name, cse.run),
    (dce.name, dce.run),
]


def run_passes(graph: Graph, passes: list[tuple[str, Pass]]) -> Graph:
    verify(graph, "input")
    for name, p in passes:
        graph = p(graph)
        verify(graph, name)
    return graph


def optimize(graph: Graph, rounds: int = 3) -> Graph:
    """Fold, simplify, CSE and DCE until the graph stops shrinking (or `rounds` rounds)."""
    graph = run_passes(graph, [(dce.name, dce.run)])
    for _ in range(rounds):
        before = len(graph.nodes)
        graph = run_passes(graph, OPTIMIZE)
        if len(graph.nodes) == before:
            break
    return graph
