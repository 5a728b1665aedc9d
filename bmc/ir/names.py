"""Unique, deterministic names for the values of a graph, shared by the IR printer and the code generators.

The code generators give a Namer their target's one mangling function (`bmc/reference/pytext.py:identifier`,
`backends/cuda/ctext.py:c_identifier`), which maps every `.bm` name into a namespace the generated code's own names,
the language's keywords and its libraries' names never enter; the Namer then keeps the names of one scope unique.
"""

from __future__ import annotations

from collections.abc import Callable

from bmc.ir.graph import Graph, Value


class Namer:
    """Gives every value a unique name, derived from its `.bm` name when it has one, in graph order.

    `legal` maps a hint to a legal name for the target; `reserved` names are never produced. Values without a name
    get temporaries (`t0`, `t1`, ...), which are also kept apart from every other name given.
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

    def fresh(self, hint: str) -> str:
        """A new name for something that is not a value (a symbolic dim): legal, and unlike every name given."""
        name = self._fresh(self.legal(hint))
        self.used.add(name)
        return name

    def name(self, v: Value) -> str:
        if v not in self.names:
            if v.name:
                name = self.fresh(v.name)
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
