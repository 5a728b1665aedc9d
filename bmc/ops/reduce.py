"""Reductions over axes: sum, mean, max."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bmc.ir.flops import Flops, Poly
from bmc.ir.types import TensorType, TypeError_, normalize_axes
from bmc.ops import emit as E
from bmc.ops.base import Op
from bmc.ops.elementwise import no_bool

__all__ = ["Max", "Mean", "Sum"]  # the ops, which bmc.ops re-exports


@dataclass(frozen=True)
class Reduce(Op):
    axes: tuple[int, ...] | None = None  # None: every axis
    keepdims: bool = False

    def infer(self, x: TensorType) -> TensorType:
        axes = normalize_axes(self.axes, x.rank)
        if self.keepdims:
            return x.with_shape(E.keepdims_shape(x.shape, axes))
        return x.with_shape(tuple(d for i, d in enumerate(x.shape) if i not in axes))

    def flops(self, inputs, outputs):  # one per input element
        return Flops(other=Poly.elements(inputs[0].shape))

    def _spread(self, b, g, x):
        """The output gradient broadcast back over the reduced axes."""
        axes = normalize_axes(self.axes, x.type.rank)
        if not self.keepdims:
            g = E.reshape(b, g, E.keepdims_shape(x.type.shape, axes))
        return E.broadcast_to(b, g, x.type.shape)


@dataclass(frozen=True)
class Sum(Reduce):
    name: ClassVar[str] = "sum"

    def infer(self, x: TensorType) -> TensorType:
        no_bool("sum", x)  # a count is sum(cast(x, f32)): NumPy would return an integer for this bool result
        return super().infer(x)

    def vjp(self, b, node, grads):
        return (self._spread(b, grads[0], node.inputs[0]),)


@dataclass(frozen=True)
class Mean(Reduce):
    name: ClassVar[str] = "mean"

    def infer(self, x: TensorType) -> TensorType:
        if not x.is_float:
            raise TypeError_(f"mean expects a floating-point tensor, got {x}")
        return super().infer(x)

    def vjp(self, b, node, grads):
        x = node.inputs[0]
        n = E.size_of(b, x, self.axes, x.type.dtype)
        return (self._spread(b, E.div(b, grads[0], n), x),)

    def decompose(self, b, x):
        return E.div(b, E.sum_(b, x, self.axes, self.keepdims), E.size_of(b, x, self.axes, x.type.dtype))


@dataclass(frozen=True)
class Max(Reduce):
    name: ClassVar[str] = "max"

    def vjp(self, b, node, grads):  # split the gradient evenly between tied maxima
        x, y = node.inputs[0], node.outputs[0]
        mask = E.cast(b, E.equal(b, x, self._spread(b, y, x)), x.type.dtype)
        count = E.sum_(b, mask, self.axes, keepdims=True)
        return (E.div(b, E.mul(b, mask, self._spread(b, grads[0], x)), count),)
