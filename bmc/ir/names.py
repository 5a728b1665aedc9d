"""Unique, deterministic names for the values of a graph, shared by the IR printer and the code generators."""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable

from bmc.ir.graph import Graph, Value


def python_identifier(name: str) -> str:
    """A legal Python identifier from a `.bm` name: dots and other characters become `_`, keywords get a suffix."""
    ident = re.sub(r"\W", "_", name, flags=re.ASCII) or "v"
    if ident[0].isdigit():
        ident = "v" + ident
    if keyword.iskeyword(ident) or keyword.issoftkeyword(ident):
        ident += "_"
    return ident


class Namer:
    """Gives every value a unique name, derived from its `.bm` name when it has one, in graph order.

    `legal` maps a hint to a legal name for the target; `reserved` names are never produced.
    """

    def __init__(self, legal: Callable[[str], str] = lambda s: s, reserved: set[str] | None = None, temp: str = "t"):
        self.legal = legal
        self.used: set[str] = set(reserved or ())
        self.names: dict[Value, str] = {}
        self.temp = temp
        self.counter = 0

    def _fresh(self, base: str) -> str:
        if base not in self.used:
            return base
        i = 1
        while f"{base}_{i}" in self.used:
            i += 1
        return f"{base}_{i}"

    def name(self, v: Value) -> str:
        if v not in self.names:
            if v.name:
                name = self._fresh(self.legal(v.name))
            else:
                name = self._fresh(f"{self.temp}{self.counter}")
                self.counter += 1
            self.used.add(name)
            self.names[v] = name
        return self.names[v]

    def name_graph(self, graph: Graph) -> None:
        """Name inputs first, then outputs of nodes in order, so names are stable and deterministic."""
        for v in graph.inputs:
            self.name(v)
        for n in graph.nodes:
            for o in n.outputs:
                self.name(o)
