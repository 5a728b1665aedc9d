"""Short helpers that emit ops through a builder; gradient rules and decompositions read like math with them.

Op classes are looked up by name in the registry at call time: the op modules import this one, so it imports none
of them.
"""

from __future__ import annotations

from bmc.ir.graph import Builder, Value
from bmc.ir.types import Dim
from bmc.ops.base import REGISTRY as OPS


def const(b: Builder, value: float | int, dtype: str) -> Value:
    return b.emit(OPS["const"](float(value) if dtype in ("f32", "f64") else int(value), dtype))


def like(b: Builder, value: float, x: Value) -> Value:
    """A scalar constant of x's dtype."""
    return const(b, value, x.type.dtype)


def add(b: Builder, x: Value, y: Value) -> Value:
    return b.emit(OPS["add"](), x, y)


def sub(b: Builder, x: Value, y: Value) -> Value:
    return b.emit(OPS["sub"](), x, y)


def mul(b: Builder, x: Value, y: Value) -> Value:
    return b.emit(OPS["mul"](), x, y)


def div(b: Builder, x: Value, y: Value) -> Value:
    return b.emit(OPS["div"](), x, y)


def neg(b: Builder, x: Value) -> Value:
    return b.emit(OPS["neg"](), x)


def exp(b: Builder, x: Value) -> Value:
    return b.emit(OPS["exp"](), x)


def log(b: Builder, x: Value) -> Value:
    return b.emit(OPS["log"](), x)


def where(b: Builder, cond: Value, x: Value, y: Value) -> Value:
    return b.emit(OPS["where"](), cond, x, y)


def greater(b: Builder, x: Value, y: Value) -> Value:
    return b.emit(OPS["compare"](">"), x, y)


def equal(b: Builder, x: Value, y: Value) -> Value:
    return b.emit(OPS["compare"]("=="), x, y)


def cast(b: Builder, x: Value, dtype: str) -> Value:
    return x if x.type.dtype == dtype else b.emit(OPS["cast"](dtype), x)


def sum_(b: Builder, x: Value, axes: tuple[int, ...] | None = None, keepdims: bool = False) -> Value:
    return b.emit(OPS["sum"](axes, keepdims), x)


def max_(b: Builder, x: Value, axes: tuple[int, ...] | None = None, keepdims: bool = False) -> Value:
    return b.emit(OPS["max"](axes, keepdims), x)


def size_of(b: Builder, x: Value, axes: tuple[int, ...] | None, dtype: str) -> Value:
    """The number of elements of x along `axes` (all if None) as a scalar; a constant when those dims are static."""
    return b.emit(OPS["size_of"](axes, dtype), x)


def broadcast_to(b: Builder, x: Value, shape_: tuple[Dim, ...]) -> Value:
    return x if x.type.shape == tuple(shape_) else b.emit(OPS["broadcast_to"](tuple(shape_)), x)


def reshape(b: Builder, x: Value, shape_: tuple[Dim, ...]) -> Value:
    return x if x.type.shape == tuple(shape_) else b.emit(OPS["reshape"](tuple(shape_)), x)


def transpose(b: Builder, x: Value, perm: tuple[int, ...]) -> Value:
    return x if tuple(perm) == tuple(range(len(perm))) else b.emit(OPS["transpose"](tuple(perm)), x)


def matmul(b: Builder, x: Value, y: Value, transpose_a: bool = False, transpose_b: bool = False) -> Value:
    return b.emit(OPS["matmul"](transpose_a, transpose_b), x, y)


def keepdims_shape(shape_: tuple[Dim, ...], axes: tuple[int, ...]) -> tuple[Dim, ...]:
    return tuple(1 if i in axes else d for i, d in enumerate(shape_))
