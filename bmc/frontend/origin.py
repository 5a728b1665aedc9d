"""Where each op of a lowered model came from: the unrolled statements and layer calls of the `.bm` file.

Lowering keeps a path of keys (outermost first): a model statement `h` is `("h",)`; statement `a` of the first copy
of a repeated layer called from `h` is `("h", "h.0", "h.0.a")`. Each op's span carries the path it was made under
(`Span.origin`), so the attribution survives every pass, autodiff included (a gradient op has its forward op's
span). `Origins` describes each key: what it is, how to label it, its span and, for statements, the value it
defines. `bmc graph` draws from this; the cost report groups by it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bmc.diagnostics import Span
from bmc.ir.graph import Value
from bmc.syntax import ast


@dataclass
class Origin:
    key: str  # the full name: "h", "h.0", "h.0.a", "h.0.return"
    kind: str  # "statement" (a named equation), "return" (a layer's result), "layer" (a call of a user layer)
    label: str  # what a picture shows: "a", "return", "encoder_block"
    span: Span | None
    value: Value | None = None  # the tensor a statement or return defines, once lowered
    params: int = 0  # parameter elements created directly under this key
    repeat: int = 0  # a statement's `repeat` count (its copies are layer calls "h.0", "h.1", ...)
    layer: str = ""  # the user layer a layer call (or a statement that is one call) applies
    calls: tuple[str, ...] = ()  # a statement's functions and operators in evaluation order ("conv2d", "relu", "+")
    path: tuple[str, ...] = ()  # the keys it sits under, itself last


@dataclass
class Origins:
    """The keys of one lowered model, in the order lowering met them, and the path being lowered."""

    table: dict[str, Origin] = field(default_factory=dict)
    path: list[str] = field(default_factory=list)

    def enter(self, key: str, kind: str, label: str, span: Span | None) -> tuple[str, ...]:
        """Open `key` under the current path and return the path to restore after it (`leave`)."""
        saved = tuple(self.path)
        if not self.path or self.path[-1] != key:  # a layer call named after its statement adds no level
            self.path.append(key)
        self.table.setdefault(key, Origin(key, kind, label, span, path=tuple(self.path)))
        return saved

    def leave(self, saved: tuple[str, ...]) -> None:
        self.path[:] = saved

    def here(self) -> Origin | None:
        return self.table[self.path[-1]] if self.path else None

    def stamp(self, span: Span | None) -> Span | None:
        """`span` carrying the current path (see `Span.origin`)."""
        if span is None or not self.path or span.origin == tuple(self.path):
            return span
        return Span(span.source, span.line, span.column, span.end_line, span.end_column, tuple(self.path))


def calls(e: ast.Expr | None, constant: Callable[[str], bool]) -> tuple[str, ...]:
    """The functions and operators of an expression in the order they run: `max_pool(relu(conv2d(x, 32, 3)))` is
    ("conv2d", "relu", "max_pool"); `x + attention(layer_norm(x), 4)` is ("layer_norm", "attention", "+").
    Arithmetic on compile-time numbers (`2 * D`, `constant` says which names are numbers) makes no op and is left
    out."""
    if isinstance(e, ast.Call):
        inner = [c for a in (*e.args, *(k.value for k in e.kwargs)) for c in calls(a, constant)]
        return (*inner, e.func)
    if isinstance(e, ast.BinOp):
        if _numeric(e, constant):
            return ()
        return (*calls(e.lhs, constant), *calls(e.rhs, constant), e.op)
    if isinstance(e, ast.Neg):
        return () if _numeric(e, constant) else (*calls(e.operand, constant), "neg")
    if isinstance(e, ast.ListExpr):
        return tuple(c for i in e.items for c in calls(i, constant))
    if isinstance(e, ast.Subscript):
        return (*(c for i in e.children for c in calls(i, constant)), "[]")
    return ()


def _numeric(e: ast.Expr, constant: Callable[[str], bool]) -> bool:
    if isinstance(e, ast.Num):
        return True
    if isinstance(e, ast.Name):
        return constant(e.id)
    if isinstance(e, ast.BinOp):
        return _numeric(e.lhs, constant) and _numeric(e.rhs, constant)
    if isinstance(e, ast.Neg):
        return _numeric(e.operand, constant)
    return False
