"""The naming state of lowering: the names of the body being lowered (`Scope`) and how the calls of the statement
being lowered name their parameters (`Naming`). The lowerer holds one of each and switches both only through
`Lowerer.within`."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from bmc.diagnostics import Span
from bmc.frontend.builtins import PARAM_OWNERS
from bmc.ir.graph import Value
from bmc.ir.types import Dim
from bmc.syntax import ast

Scalar = int | float | bool
Result = Value | Scalar | str | list  # what an expression lowers to: a tensor, a compile-time value, a list


@dataclass
class Scope:
    """The names of one model or layer body: statements, lowered values, compile-time constants and shape vars."""

    kind: str  # "model" or "layer"
    owner: str  # model or layer name, for messages
    prefix: str  # parameter name prefix ("" for a model, "h." inside a layer called from statement h)
    statements: dict[str, ast.Stmt] = field(default_factory=dict)
    returned: ast.Return | None = None  # a layer's `return`, apart from the names (`return` is not a value)
    values: dict[str, Result] = field(default_factory=dict)
    constants: dict[str, Scalar] = field(default_factory=dict)
    dim_vars: dict[str, Dim] = field(default_factory=dict)
    in_progress: list[str] = field(default_factory=list)
    path: tuple[str, ...] = ()  # the origin path of the body (bmc/frontend/origin.py): () for a model

    def is_number(self, name: str) -> bool:
        """Whether `name` is a compile-time number here (a constant or a dim bound by a shape pattern)."""
        return name in self.constants or name in self.dim_vars


@dataclass
class Naming:
    """How the parameter-owning calls of one statement (or one layer's return) name their parameters: after the
    statement (`h.W`) when it makes one, numbered by function (`h.dense.W`, `h.dense_1.W`) when it makes several.
    Lowering another statement midway (a name used before its definition) works under a Naming of its own."""

    owner: str  # the statement's full name: "h", or "block1.h" inside a layer called from statement block1
    total: int = 1  # how many parameter-owning calls the statement makes
    counts: dict[str, int] = field(default_factory=dict)  # calls named so far, per function

    def prefix(self, func: str) -> str:
        k = self.counts.get(func, 0)
        self.counts[func] = k + 1
        if self.total <= 1:
            return self.owner
        return f"{self.owner}.{func}" + (f"_{k}" if k else "")

    def table(self, name: str) -> str:
        """The name of a fixed table a call adds without owning trainable parameters (`h.sinusoid`), numbered when
        the statement makes several; it does not change how the owning calls are named."""
        k = self.counts.get(f"table:{name}", 0)
        self.counts[f"table:{name}"] = k + 1
        return f"{self.owner}.{name}" + (f"_{k}" if k else "")


@dataclass(frozen=True)
class Bound:
    """An already-lowered value standing in an argument position (repeat threads its tensor this way)."""

    value: Value
    span: Span


def count_owners(e: ast.Expr | None, layers: Collection[str]) -> int:
    """How many parameter-owning calls an expression makes (not looking inside layers, named in `layers`)."""
    if e is None:
        return 0
    if isinstance(e, ast.Call):
        own = 1 if (e.func in PARAM_OWNERS or e.func in layers or e.func == "repeat") else 0
        if e.func == "repeat":  # its copies name their own parameters
            return own
        return own + sum(count_owners(a, layers) for a in e.args) + sum(count_owners(k.value, layers) for k in e.kwargs)
    if isinstance(e, ast.BinOp):
        return count_owners(e.lhs, layers) + count_owners(e.rhs, layers)
    if isinstance(e, ast.Neg):
        return count_owners(e.operand, layers)
    if isinstance(e, ast.ListExpr):
        return sum(count_owners(i, layers) for i in e.items)
    if isinstance(e, ast.Subscript):
        return sum(count_owners(i, layers) for i in e.children)
    return 0
