"""Short helpers that emit ops through a builder; gradient rules and decompositions read like math with them.

Op classes are looked up at call time (modules import this one while they are being defined).
"""

from __future__ import annotations

from bmc.ir.graph import Builder, Value
from bmc.ir.types import Dim
from bmc.ops import elementwise as ew
from bmc.ops import linalg, reduce, shape


def const(b: Builder, value: float | int, dtype: str) -> Value:
    return b.emit(ew.Const(float(value) if dtype in ("f32", "f64") else int(value), dtype))


def like(b: Builder, value: float, x: Value) -> Value:
    """A scalar constant of x's dtype."""
    return const(b, value, x.type.dtype)


def add(b: Builder, x: Value, y: Value) -> Value:
    return b.emit(ew.Add(), x, y)


def sub(b: Builder, x: Value, y: Value) -> Value:
    return b.emit(ew.Sub(), x, y)


def mul(b: Builder, x: Value, y: Value) -> Value:
    return b.emit(ew.Mul(), x, y)


def div(b: Builder, x: Value, y: Value) -> Value:
    return b.emit(ew.Div(), x, y)


def neg(b: Builder, x: Value) -> Value:
    return b.emit(ew.Neg(), x)


def exp(b: Builder, x: Value) -> Value:
    return b.emit(ew.Exp(), x)


def log(b: Builder, x: Value) -> Value:
    return b.emit(ew.Log(), x)


def where(b: Builder, cond: Value, x: Value, y: Value) -> Value:
    return b.emit(ew.Where(), cond, x, y)


def greater(b: Builder, x: Value, y: Value) -> Value:
    return b.emit(ew.Compare(">"), x, y)


def equal(b: Builder, x: Value, y: Value) -> Value:
    return b.emit(ew.Compare("=="), x, y)


def cast(b: Builder, x: Value, dtype: str) -> Value:
    return x if x.type.dtype == dtype else b.emit(ew.Cast(dtype), x)


def sum_(b: Builder, x: Value, axes: tuple[int, ...] | None = None, keepdims: bool = False) -> Value:
    return b.emit(reduce.Sum(axes, keepdims), x)


def max_(b: Builder, x: Value, axes: tuple[int, ...] | None = None, keepdims: bool = False) -> Value:
    return b.emit(reduce.Max(axes, keepdims), x)


def size_of(b: Builder, x: Value, axes: tuple[int, ...] | None, dtype: str) -> Value:
    """The number of elements of x along `axes` (all if None) as a scalar; a constant when those dims are static."""
    return b.emit(shape.SizeOf(axes, dtype), x)


def broadcast_to(b: Builder, x: Value, shape_: tuple[Dim, ...]) -> Value:
    return x if x.type.shape == tuple(shape_) else b.emit(shape.BroadcastTo(tuple(shape_)), x)


def reshape(b: Builder, x: Value, shape_: tuple[Dim, ...]) -> Value:
    return x if x.type.shape == tuple(shape_) else b.emit(shape.Reshape(tuple(shape_)), x)


def transpose(b: Builder, x: Value, perm: tuple[int, ...]) -> Value:
    return x if tuple(perm) == tuple(range(len(perm))) else b.emit(shape.Transpose(tuple(perm)), x)


def matmul(b: Builder, x: Value, y: Value, transpose_a: bool = False, transpose_b: bool = False) -> Value:
    return b.emit(linalg.MatMul(transpose_a, transpose_b), x, y)


def keepdims_shape(shape_: tuple[Dim, ...], axes: tuple[int, ...]) -> tuple[Dim, ...]:
    return tuple(1 if i in axes else d for i, d in enumerate(shape_))
