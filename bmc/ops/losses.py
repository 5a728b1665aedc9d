"""Losses, each a scalar mean, computed stably from logits and kept whole so backends can fuse them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bmc.ir.types import INT_DTYPES, TensorType, TypeError_, scalar
from bmc.ops import emit as E
from bmc.ops.base import Op
from bmc.ops.elementwise import Abs, Maximum, Sigmoid
from bmc.ops.nn import LogSoftmax, OneHot, Softmax

__all__ = ["BinaryCrossEntropy", "CrossEntropy", "MeanSquaredError"]  # the ops, which bmc.ops re-exports


@dataclass(frozen=True)
class CrossEntropy(Op):
    """Mean cross-entropy of logits [..., C] against class indices [...] or probabilities [..., C].

    Computed through log-softmax (log-sum-exp), so a confident wrong prediction costs a large finite loss, never
    log(0) = -inf.
    """

    name: ClassVar[str] = "cross_entropy"

    def infer(self, logits: TensorType, target: TensorType) -> TensorType:
        if not logits.is_float or logits.rank < 1:
            raise TypeError_(f"cross_entropy expects floating-point logits [..., classes], got {logits}")
        if target.dtype in INT_DTYPES:
            if target.shape != logits.shape[:-1]:
                raise TypeError_(
                    f"cross_entropy: class indices {target} must have the logits' shape without the class axis "
                    f"({TensorType(target.dtype, logits.shape[:-1])}); logits are {logits}"
                )
        elif target.shape != logits.shape or target.dtype != logits.dtype:
            raise TypeError_(f"cross_entropy: target probabilities {target} must match logits {logits}")
        return scalar(logits.dtype)

    def _probabilities(self, b, logits, target):
        if target.type.dtype in INT_DTYPES:
            return b.emit(OneHot(logits.type.shape[-1], logits.type.dtype), target)
        return target

    def _count(self, b, logits):
        return E.size_of(b, logits, tuple(range(logits.type.rank - 1)), logits.type.dtype)

    def vjp(self, b, node, grads):
        # logits: (softmax(z) sum(p) - p) g / count, where sum(p) is 1 for class indices (and for targets that are
        # exact distributions, which float targets rarely are); probabilities: -log_softmax(z) g / count
        (z, t), g = node.inputs, grads[0]
        p = self._probabilities(b, z, t)
        scale = E.div(b, g, self._count(b, z))
        softmax = b.emit(Softmax(-1), z)
        if t.type.dtype not in INT_DTYPES:
            softmax = E.mul(b, softmax, E.sum_(b, p, (z.type.rank - 1,), keepdims=True))
        gz = E.mul(b, E.sub(b, softmax, p), scale)
        if t.type.dtype in INT_DTYPES:
            return gz, None
        return gz, E.neg(b, E.mul(b, b.emit(LogSoftmax(-1), z), scale))

    def decompose(self, b, z, t):
        p = self._probabilities(b, z, t)
        total = E.sum_(b, E.mul(b, p, b.emit(LogSoftmax(-1), z)))
        return E.neg(b, E.div(b, total, self._count(b, z)))


@dataclass(frozen=True)
class BinaryCrossEntropy(Op):
    """Mean binary cross-entropy of logits against 0/1 targets of the same shape, in the stable form
    max(z, 0) - z y + log(1 + exp(-|z|))."""

    name: ClassVar[str] = "binary_cross_entropy"

    def infer(self, logits: TensorType, target: TensorType) -> TensorType:
        if not logits.is_float:
            raise TypeError_(f"binary_cross_entropy expects floating-point logits, got {logits}")
        if target.shape != logits.shape:
            raise TypeError_(f"binary_cross_entropy: target {target} must have the shape of logits {logits}")
        return scalar(logits.dtype)

    def vjp(self, b, node, grads):  # logits: (sigmoid(z) - y) g / count; targets: -z g / count
        (z, y), g = node.inputs, grads[0]
        scale = E.div(b, g, E.size_of(b, z, None, z.type.dtype))
        # sigmoid(z) - y as where(z > 0, (1 - y) - s, s - y) with s = sigmoid(-|z|): for a confident right logit
        # (z = 10.6, y = 1) sigmoid(z) - y cancels to a float32 error of 0.25%, while -s is exact
        yz = E.cast(b, y, z.type.dtype)
        s = b.emit(Sigmoid(), E.neg(b, b.emit(Abs(), z)))
        positive = E.greater(b, z, E.like(b, 0.0, z))
        diff = E.where(b, positive, E.sub(b, E.sub(b, E.like(b, 1.0, z), yz), s), E.sub(b, s, yz))
        return E.mul(b, diff, scale), (E.neg(b, E.mul(b, z, scale)) if y.type.is_float else None)

    def decompose(self, b, z, y):
        y = E.cast(b, y, z.type.dtype)
        zero, one = E.like(b, 0.0, z), E.like(b, 1.0, z)
        softplus = E.log(b, E.add(b, one, E.exp(b, E.neg(b, b.emit(Abs(), z)))))
        per = E.add(b, E.sub(b, b.emit(Maximum(), z, zero), E.mul(b, z, y)), softplus)
        return E.div(b, E.sum_(b, per), E.size_of(b, z, None, z.type.dtype))


@dataclass(frozen=True)
class MeanSquaredError(Op):
    name: ClassVar[str] = "mse"

    def infer(self, pred: TensorType, target: TensorType) -> TensorType:
        if not pred.is_float or pred.shape != target.shape or pred.dtype != target.dtype:
            raise TypeError_(
                f"mse expects a prediction and a target of one float type and shape, got {pred} and {target}")
        return scalar(pred.dtype)

    def vjp(self, b, node, grads):  # 2 (p - t) g / count
        (p, t), g = node.inputs, grads[0]
        scale = E.div(b, E.mul(b, E.like(b, 2.0, p), g), E.size_of(b, p, None, p.type.dtype))
        d = E.mul(b, E.sub(b, p, t), scale)
        return d, E.neg(b, d)

    def decompose(self, b, p, t):
        d = E.sub(b, p, t)
        return E.div(b, E.sum_(b, E.mul(b, d, d)), E.size_of(b, p, None, p.type.dtype))
