"""The expressions an imported model is written in: a small tree that renders as `.bm` source.

Every name in a tree has been through `names.py` already; numbers render as the shortest literal that reads back
to the same float (`repr`), so an imported constant is exactly the ONNX model's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bmc.ir.dims import factors
from bmc.ir.types import Dim

# binding strength of each binary operator, as grammar/bm.lark orders them
PRECEDENCE = {"==": 1, "!=": 1, "<": 1, "<=": 1, ">": 1, ">=": 1, "+": 2, "-": 2, "*": 3, "/": 3, "@": 3, "**": 5}
UNARY = 4  # unary minus binds tighter than * and looser than **


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Lit:
    value: int | float | bool | str


@dataclass(frozen=True)
class Items:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Bin:
    op: str
    lhs: Expr
    rhs: Expr


@dataclass(frozen=True)
class Neg:
    operand: Expr


@dataclass(frozen=True)
class Sub:
    """x[...]: one item per axis (an int, a Slice or `...`)."""

    base: Expr
    index: tuple[int | Slice | str, ...]


@dataclass(frozen=True)
class Slice:
    start: int | None = None
    stop: int | None = None
    step: int | None = None


@dataclass(eq=False)
class Owned:
    """The parameters a layer call creates, by the suffix the layer names them with (`W`, `b`, `running_mean`),
    with the values the ONNX model gives them; the statement that holds the call decides their full names."""

    func: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()
    owned: Owned | None = None  # set on a parameter-owning layer call

    def kwarg(self, name: str) -> Expr | None:
        return dict(self.kwargs).get(name)


Expr = Ref | Lit | Items | Bin | Neg | Call | Sub


def lit(value) -> Expr:
    """A Python or NumPy number (or a list of them) as an expression."""
    if isinstance(value, list | tuple):
        return Items(tuple(lit(v) for v in value))
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return Neg(Lit(-value))
    return Lit(value)


def dim(d: Dim) -> Expr:
    """A dim as an expression: 4, N, or 4 * N * T."""
    if isinstance(d, int):
        return lit(d)
    static, syms = factors(d)
    terms: list[Expr] = ([Lit(static)] if static != 1 else []) + [Ref(s) for s in syms]
    out = terms[0]
    for t in terms[1:]:
        out = Bin("*", out, t)
    return out


def shape(dims: tuple[Dim, ...] | list[Dim]) -> Items:
    return Items(tuple(dim(d) for d in dims))


def calls(e: Expr):
    """The calls of an expression in the order the compiler lowers them: arguments before the call."""
    if isinstance(e, Call):
        for a in e.args:
            yield from calls(a)
        for _, v in e.kwargs:
            yield from calls(v)
        yield e
    elif isinstance(e, Bin):
        yield from calls(e.lhs)
        yield from calls(e.rhs)
    elif isinstance(e, Neg):
        yield from calls(e.operand)
    elif isinstance(e, Sub):
        yield from calls(e.base)
    elif isinstance(e, Items):
        for i in e.items:
            yield from calls(i)


def size(e: Expr) -> int:
    """How many operations an expression holds: what decides whether it is inlined into its user."""
    if isinstance(e, Call):
        return 1 + sum(size(a) for a in e.args)
    if isinstance(e, Bin):
        return 1 + size(e.lhs) + size(e.rhs)
    if isinstance(e, Neg | Sub):
        return 1 + size(e.operand if isinstance(e, Neg) else e.base)
    return 0


def render(e: Expr, parent: int = 0) -> str:
    """The expression as `.bm` source, parenthesized only where precedence needs it."""
    match e:
        case Ref(name):
            return name
        case Lit(bool() as v):
            return "true" if v else "false"
        case Lit(str() as v):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        case Lit(int() as v):
            return str(v)
        case Lit(float() as v):
            if not math.isfinite(v):
                raise ValueError(f"non-finite literal {v}")
            return repr(v)
        case Items(items):
            return "[" + ", ".join(render(i) for i in items) + "]"
        case Neg(operand):
            text = "-" + render(operand, UNARY)
            return f"({text})" if parent > UNARY else text
        case Bin(op, lhs, rhs):
            p = PRECEDENCE[op]
            if op == "**":  # right-associative; its base is a primary
                text = f"{render(lhs, p + 1)} ** {render(rhs, UNARY)}"
            else:  # left-associative: a right operand of equal strength needs parentheses
                text = f"{render(lhs, p)} {op} {render(rhs, p + 1)}"
            return f"({text})" if parent > p or (p == 1 and parent == 1) else text
        case Call(func, args, kwargs):
            parts = [render(a) for a in args] + [f"{k} = {render(v)}" for k, v in kwargs]
            return f"{func}({', '.join(parts)})"
        case Sub(base, index):
            return f"{render(base, 6)}[{', '.join(_index(i) for i in index)}]"
    raise TypeError(f"not an expression: {e!r}")


def _index(i: int | Slice | str) -> str:
    if isinstance(i, str):
        return i
    if isinstance(i, int):
        return str(i)
    text = ("" if i.start is None else str(i.start)) + ":" + ("" if i.stop is None else str(i.stop))
    return text + ("" if i.step is None else f":{i.step}")
