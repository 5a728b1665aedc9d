"""The abstract syntax tree of a `.bm` file. Every node carries the `Span` it came from."""

from __future__ import annotations

from dataclasses import dataclass

from bmc.diagnostics import Source, Span

# ---- expressions ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    value: int | float
    span: Span


@dataclass(frozen=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True)
class Str:
    value: str
    span: Span


@dataclass(frozen=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class Kwarg:
    name: str
    value: Expr
    span: Span


@dataclass(frozen=True)
class Call:
    func: str
    func_span: Span
    args: tuple[Expr, ...]
    kwargs: tuple[Kwarg, ...]
    span: Span


@dataclass(frozen=True)
class BinOp:
    op: str  # one of + - * / @ ** == != < <= > >=
    lhs: Expr
    rhs: Expr
    span: Span


@dataclass(frozen=True)
class Neg:
    operand: Expr
    span: Span


@dataclass(frozen=True)
class Ellipsis_:  # noqa: N801 - `Ellipsis` is a builtin
    span: Span


@dataclass(frozen=True)
class Range:
    """`start:stop:step` in a subscript; an omitted bound is None."""

    start: Expr | None
    stop: Expr | None
    step: Expr | None
    span: Span

    @property
    def bounds(self) -> tuple[Expr, ...]:
        return tuple(e for e in (self.start, self.stop, self.step) if e is not None)


@dataclass(frozen=True)
class Subscript:
    """`value[i, a:b, ..., ::-1]`: each index an expression (an integer: the axis is dropped), a Range or `...`."""

    value: Expr
    indices: tuple[Expr | Range | Ellipsis_, ...]
    span: Span

    @property
    def children(self) -> tuple[Expr, ...]:
        """The expressions inside: the value and every bound."""
        inner = [b for i in self.indices for b in (i.bounds if isinstance(i, Range) else
                                                    () if isinstance(i, Ellipsis_) else (i,))]
        return (self.value, *inner)


Expr = Num | Name | Str | ListExpr | Call | BinOp | Neg | Subscript

# ---- statements ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorType:
    dtype: str
    dtype_span: Span
    dims: tuple[Expr | Ellipsis_, ...]
    span: Span


@dataclass(frozen=True)
class InputDecl:
    name: str
    name_span: Span
    type: TensorType
    role: str  # "input" or "target"
    span: Span


@dataclass(frozen=True)
class ParamDecl:
    name: str
    name_span: Span
    type: TensorType
    init: Expr
    random: bool  # `~ init` (a distribution) or `= value` (a constant)
    span: Span


@dataclass(frozen=True)
class Assign:
    name: str
    name_span: Span
    value: Expr | None  # None only for `output name` that marks an existing binding
    output: bool
    span: Span


@dataclass(frozen=True)
class Return:
    value: Expr
    span: Span


Stmt = InputDecl | ParamDecl | Assign | Return

# ---- top-level items -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelParam:
    name: str
    default: Expr
    span: Span


@dataclass(frozen=True)
class ModelDef:
    name: str
    name_span: Span
    params: tuple[ModelParam, ...]
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True)
class LayerArg:
    name: str
    type: TensorType | None  # a tensor argument, possibly with a shape pattern
    scalar: str | None  # "int" or "float" for scalar arguments
    default: Expr | None
    span: Span


@dataclass(frozen=True)
class LayerDef:
    name: str
    name_span: Span
    args: tuple[LayerArg, ...]
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True)
class Setting:
    key: str
    key_span: Span
    values: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class TrainDef:
    model: str
    model_span: Span
    settings: tuple[Setting, ...]
    span: Span


Item = ModelDef | LayerDef | TrainDef


@dataclass(frozen=True)
class Module:
    source: Source
    items: tuple[Item, ...]

    @property
    def models(self) -> dict[str, ModelDef]:
        return {i.name: i for i in self.items if isinstance(i, ModelDef)}

    @property
    def layers(self) -> dict[str, LayerDef]:
        return {i.name: i for i in self.items if isinstance(i, LayerDef)}

    @property
    def trainings(self) -> dict[str, TrainDef]:
        return {i.model: i for i in self.items if isinstance(i, TrainDef)}
