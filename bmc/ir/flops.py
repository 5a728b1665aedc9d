"""FLOP counts as polynomials in the symbolic dims, and the cost of a graph as the sum of its ops' rules.

Each op states its cost beside its shape rule (`Op.flops`, bmc/ops/base.py); this module only adds them up. A count
is a `Flops`: the FLOPs of matrix products and convolutions (what profilers such as PyTorch's FlopCounterMode count)
and every other FLOP (elementwise arithmetic, reductions), apart, so either can be compared on its own.
Conventions: a multiply-add is 2 FLOPs, an elementwise op is 1 FLOP per output element, moving data is free.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bmc.ir import dims
from bmc.ir.types import Dim, TensorType

if TYPE_CHECKING:
    from bmc.ir.graph import Graph

Monomial = tuple[str, ...]  # sorted symbols, repeated for powers: ("N", "T", "T") is N*T^2


@dataclass(frozen=True)
class Poly:
    """A polynomial with integer coefficients in symbolic dims: `203520*N + 10`."""

    terms: tuple[tuple[Monomial, int], ...] = ()  # canonical: sorted, no zero coefficients

    @staticmethod
    def of(terms: Mapping[Monomial, int]) -> Poly:
        return Poly(tuple(sorted((m, c) for m, c in terms.items() if c)))

    @staticmethod
    def dim(d: Dim) -> Poly:
        static, syms = dims.factors(d)
        return Poly.of({tuple(syms): static})

    @staticmethod
    def elements(shape: Iterable[Dim]) -> Poly:
        """The number of elements of a tensor of this shape."""
        return Poly.dim(dims.product(list(shape)))

    def __add__(self, other: Poly | int) -> Poly:
        out = dict(self.terms)
        for m, c in _poly(other).terms:
            out[m] = out.get(m, 0) + c
        return Poly.of(out)

    __radd__ = __add__

    def __mul__(self, other: Poly | int) -> Poly:
        out: dict[Monomial, int] = {}
        for m1, c1 in self.terms:
            for m2, c2 in _poly(other).terms:
                m = tuple(sorted(m1 + m2))
                out[m] = out.get(m, 0) + c1 * c2
        return Poly.of(out)

    __rmul__ = __mul__

    @property
    def symbols(self) -> list[str]:
        return sorted({s for m, _ in self.terms for s in m})

    @property
    def value(self) -> int | None:
        """The number, when no symbol is left."""
        if self.symbols:
            return None
        return sum(c for _, c in self.terms)

    def at(self, values: Mapping[str, int]) -> Poly:
        """The polynomial with the given symbols replaced by numbers (others stay symbolic)."""
        out: dict[Monomial, int] = {}
        for m, c in self.terms:
            rest = tuple(s for s in m if s not in values)
            for s in m:
                if s in values:
                    c *= values[s]
            out[rest] = out.get(rest, 0) + c
        return Poly.of(out)

    def format(self, grouped: bool = True) -> str:
        """`203,520*N + 1,290` (highest degree first); `grouped=False` leaves out the thousands separators."""
        if not self.terms:
            return "0"
        parts = []
        for m, c in sorted(self.terms, key=lambda t: (-len(t[0]), t[0])):
            number = f"{c:,}" if grouped else str(c)
            power = "*".join(s if m.count(s) == 1 else f"{s}^{m.count(s)}" for s in sorted(set(m)))
            parts.append(number if not m else power if c == 1 else f"{number}*{power}")
        return " + ".join(parts).replace("+ -", "- ")

    def __str__(self) -> str:
        return self.format()


ZERO = Poly()


def _poly(x: Poly | int) -> Poly:
    return x if isinstance(x, Poly) else Poly.of({(): x})


@dataclass(frozen=True)
class Flops:
    matmul: Poly = field(default=ZERO)  # matrix products and convolutions
    other: Poly = field(default=ZERO)  # elementwise ops, reductions and the rest

    @property
    def total(self) -> Poly:
        return self.matmul + self.other

    def __add__(self, other: Flops) -> Flops:
        return Flops(self.matmul + other.matmul, self.other + other.other)

    def __mul__(self, k: Poly | int) -> Flops:
        return Flops(self.matmul * k, self.other * k)


NONE = Flops()


def elementwise(outs: Iterable[TensorType]) -> Flops:
    """One FLOP per output element."""
    return Flops(other=sum((Poly.elements(t.shape) for t in outs), ZERO))


def graph_flops(g: Graph) -> Flops:
    """The FLOPs of running every node of `g` once."""
    return sum((node_flops(n) for n in g.nodes), NONE)


def node_flops(node) -> Flops:
    return node.op.flops(tuple(v.type for v in node.inputs), tuple(v.type for v in node.outputs))
