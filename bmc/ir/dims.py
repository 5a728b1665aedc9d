"""Symbolic dim arithmetic. A symbolic dim is a string: one symbol (`N`) or a canonical product (`N*T`, `4*N`)."""

from __future__ import annotations

from bmc.ir.types import Dim


def factors(d: Dim) -> tuple[int, list[str]]:
    """Split a dim into its static factor and its sorted symbols: `4*N*T` -> (4, ["N", "T"])."""
    if isinstance(d, int):
        return d, []
    static, syms = 1, []
    for f in d.split("*"):
        if f.isdigit():
            static *= int(f)
        else:
            syms.append(f)
    return static, sorted(syms)


def product(dims: list[Dim] | tuple[Dim, ...]) -> Dim:
    """The product of dims in canonical form: an int when all are static."""
    static, syms = 1, []
    for d in dims:
        s, f = factors(d)
        static *= s
        syms += f
    if not syms:
        return static
    syms.sort()
    return "*".join(([str(static)] if static != 1 else []) + syms)


def quotient(total: Dim, part: Dim) -> Dim | None:
    """total / part when it is exact (static parts divide, symbols cancel); None otherwise."""
    ts, tf = factors(total)
    ps, pf = factors(part)
    rest = list(tf)
    for s in pf:
        if s not in rest:
            return None
        rest.remove(s)
    if ps == 0 or ts % ps:
        return None
    return product([ts // ps, *rest])


def symbols_in(d: Dim) -> list[str]:
    return factors(d)[1]
