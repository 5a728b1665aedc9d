"""The IR verifier: runs after every pass, so a broken pass is caught where it broke the graph."""

from __future__ import annotations

import functools

from bmc.ir.graph import ROLES, Graph
from bmc.ir.printer import print_graph


class VerifyError(Exception):
    """An IR invariant is broken: always a bug in bmc, never a user error."""


def verify(graph: Graph, after: str = "") -> None:
    defined = set()
    for v in graph.inputs:
        if graph.roles.get(v) not in ROLES:
            raise VerifyError(f"input {v} has no valid role")
        if v in defined:
            raise VerifyError(f"input {v} is listed twice")
        defined.add(v)
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            if v not in defined:
                raise _fail(graph, after, f"node {i} ({node.op.name}) uses {v} before it is defined")
        body = getattr(node.op, "body", None)
        if isinstance(body, Graph):
            verify(body, after)
        types = _inferred(node.op, tuple(v.type for v in node.inputs)) if body is None else \
            node.op.infer(*(v.type for v in node.inputs))
        types = types if isinstance(types, tuple) else (types,)
        if tuple(o.type for o in node.outputs) != types:
            raise _fail(graph, after, f"node {i} ({node.op.name}) has output types that its shape rule does not give")
        for o in node.outputs:
            if o in defined:
                raise _fail(graph, after, f"node {i} ({node.op.name}) redefines {o}")
            if o.producer is not node:
                raise _fail(graph, after, f"node {i} ({node.op.name}) output {o} points to another producer")
            defined.add(o)
    for name, v in graph.outputs.items():
        if v not in defined:
            raise _fail(graph, after, f"output {name} is not defined")


@functools.lru_cache(maxsize=8192)
def _inferred(op, types: tuple):
    """An op's shape rule on its input types; ops and types are frozen values, and a pass leaves most nodes as they
    were, so the verifier after each pass asks mostly what it asked before."""
    return op.infer(*types)


def _fail(graph: Graph, after: str, message: str) -> VerifyError:
    context = f" after pass '{after}'" if after else ""
    return VerifyError(f"IR verification failed{context}: {message}\n{print_graph(graph)}")
