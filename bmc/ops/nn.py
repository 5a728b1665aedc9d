"""Composite neural-network ops kept whole in the IR (a backend may lower them as one kernel or decompose them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bmc.ir.types import FLOAT_DTYPES, INT_DTYPES, TensorType, TypeError_, normalize_axes
from bmc.ops import emit as E
from bmc.ops.base import Op

__all__ = ["Dense", "LogSoftmax", "OneHot", "Softmax"]  # the ops, which bmc.ops re-exports


@dataclass(frozen=True)
class Dense(Op):
    """x @ W + b over the last axis of x: [..., K] x [K, M] + [M] -> [..., M]."""

    name: ClassVar[str] = "dense"

    def infer(self, x: TensorType, w: TensorType, bias: TensorType) -> TensorType:
        if x.rank < 1 or w.rank != 2 or bias.rank != 1:
            raise TypeError_(f"dense expects x[..., K], W[K, M] and b[M], got {x}, {w} and {bias}")
        if x.shape[-1] != w.shape[0] or bias.shape[0] != w.shape[1]:
            raise TypeError_(f"dense: x {x}, W {w} and b {bias} do not fit together")
        if not (x.dtype == w.dtype == bias.dtype) or not x.is_float:
            raise TypeError_(f"dense expects floating-point tensors of one dtype, got {x}, {w} and {bias}")
        return x.with_shape((*x.shape[:-1], w.shape[1]))

    def vjp(self, b, node, grads):
        (x, w, _), g = node.inputs, grads[0]
        gx = E.matmul(b, g, w, transpose_b=True) if x.type.rank >= 2 else None
        if x.type.rank == 1:  # a single vector: [K] -> [1, K]
            gx = E.reshape(b, E.matmul(b, E.reshape(b, g, (1, -1)), w, transpose_b=True), x.type.shape)
        k, m = w.type.shape
        x2 = E.reshape(b, x, (-1, k))
        g2 = E.reshape(b, g, (-1, m))
        gw = E.matmul(b, x2, g2, transpose_a=True)
        gb = E.sum_(b, g2, (0,))
        return gx, gw, gb

    def decompose(self, b, x, w, bias):
        if x.type.rank == 1:
            return E.add(b, E.reshape(b, E.matmul(b, E.reshape(b, x, (1, -1)), w), w.type.shape[1:]), bias)
        return E.add(b, E.matmul(b, x, w), bias)


@dataclass(frozen=True)
class Softmax(Op):
    name: ClassVar[str] = "softmax"
    axis: int = -1

    def infer(self, x: TensorType) -> TensorType:
        if not x.is_float:
            raise TypeError_(f"softmax expects a floating-point tensor, got {x}")
        normalize_axes((self.axis,), x.rank)
        return x

    def vjp(self, b, node, grads):  # y * (g - sum(g * y))
        y, g = node.outputs[0], grads[0]
        dot = E.sum_(b, E.mul(b, g, y), (self.axis,), keepdims=True)
        return (E.mul(b, y, E.sub(b, g, dot)),)

    def decompose(self, b, x):  # exp(x - max) / sum(exp(x - max)): never overflows
        e = E.exp(b, E.sub(b, x, E.max_(b, x, (self.axis,), keepdims=True)))
        return E.div(b, e, E.sum_(b, e, (self.axis,), keepdims=True))


@dataclass(frozen=True)
class LogSoftmax(Op):
    name: ClassVar[str] = "log_softmax"
    axis: int = -1

    def infer(self, x: TensorType) -> TensorType:
        return Softmax(self.axis).infer(x)

    def vjp(self, b, node, grads):  # g - softmax(x) * sum(g)
        y, g = node.outputs[0], grads[0]
        return (E.sub(b, g, E.mul(b, E.exp(b, y), E.sum_(b, g, (self.axis,), keepdims=True))),)

    def decompose(self, b, x):  # (x - max) - log(sum(exp(x - max))): the log-sum-exp trick
        shifted = E.sub(b, x, E.max_(b, x, (self.axis,), keepdims=True))
        return E.sub(b, shifted, E.log(b, E.sum_(b, E.exp(b, shifted), (self.axis,), keepdims=True)))


@dataclass(frozen=True)
class OneHot(Op):
    """Integer class indices [...] -> [..., depth] with 1 at the index (0 everywhere for an out-of-range index)."""

    name: ClassVar[str] = "one_hot"
    differentiable: ClassVar[bool] = False
    depth: int
    dtype: str = "f32"

    def infer(self, labels: TensorType) -> TensorType:
        if labels.dtype not in INT_DTYPES:
            raise TypeError_(f"one_hot expects integer class indices, got {labels}")
        if self.dtype not in FLOAT_DTYPES:
            raise TypeError_(f"one_hot produces floats, not {self.dtype}")
        return TensorType(self.dtype, (*labels.shape, self.depth))

    def vjp(self, b, node, grads):
        return (None,)
