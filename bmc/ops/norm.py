"""Normalization layers, kept whole (ONNX LayerNormalization, BatchNormalization) with decompositions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bmc.ir.types import TensorType, TypeError_
from bmc.ops import emit as E
from bmc.ops.base import Op
from bmc.ops.elementwise import Sqrt

__all__ = [  # the ops, which bmc.ops re-exports
    "BatchNormInference", "BatchNormTrain", "BatchNormTrainGrad", "LayerNorm",
]


def _normalize(b, x, mean, var, eps):
    return E.div(b, E.sub(b, x, mean), b.emit(Sqrt(), E.add(b, var, E.like(b, eps, x))))


@dataclass(frozen=True)
class LayerNorm(Op):
    """(x - mean) / sqrt(var + eps) * gamma + beta over the last axis (biased variance, as PyTorch and ONNX)."""

    name: ClassVar[str] = "layer_norm"
    eps: float = 1e-5

    def infer(self, x: TensorType, gamma: TensorType, beta: TensorType) -> TensorType:
        if not x.is_float or gamma.shape != x.shape[-1:] or beta.shape != x.shape[-1:]:
            raise TypeError_(f"layer_norm: scale {gamma} and shift {beta} must be [{x.shape[-1]}] for input {x}")
        return x

    def decompose(self, b, x, gamma, beta):
        mean = b.emit(_mean(-1), x)
        centered = E.sub(b, x, mean)
        var = b.emit(_mean(-1), E.mul(b, centered, centered))
        return E.add(b, E.mul(b, _normalize(b, x, mean, var, self.eps), gamma), beta)


@dataclass(frozen=True)
class BatchNormInference(Op):
    """Batch normalization with running statistics (evaluation): x [N, C, ...], per-channel scale, bias, mean, var."""

    name: ClassVar[str] = "batch_norm"
    eps: float = 1e-5

    def infer(self, x, scale, bias, mean, var) -> TensorType:
        c = x.shape[1] if x.rank >= 2 else None
        if any(t.shape != (c,) for t in (scale, bias, mean, var)):
            raise TypeError_(f"batch_norm: per-channel tensors must be [{c}] for input {x}")
        return x

    def decompose(self, b, x, scale, bias, mean, var):
        shape = (x.type.shape[1], *([1] * (x.type.rank - 2)))
        r = [E.reshape(b, t, shape) for t in (scale, bias, mean, var)]
        return E.add(b, E.mul(b, _normalize(b, x, r[2], r[3], self.eps), r[0]), r[1])


def _mean(axis: int):
    from bmc.ops.reduce import Mean

    return Mean((axis,), True)


def _channel_axes(x: TensorType) -> tuple[int, ...]:
    return (0, *range(2, x.rank))


def _per_channel(b, t, x):
    """A per-channel vector [C] shaped to broadcast against x [N, C, ...]."""
    return E.reshape(b, t, (x.type.shape[1], *([1] * (x.type.rank - 2))))


@dataclass(frozen=True)
class BatchNormTrain(Op):
    """Batch normalization with the batch's statistics (training): x [N, C, ...] -> (y, batch mean [C], batch
    variance [C], biased). Kept whole so its gradient is one fused op; both decompose for other backends."""

    name: ClassVar[str] = "batch_norm_train"
    eps: float = 1e-5

    def infer(self, x: TensorType, gamma: TensorType, beta: TensorType) -> tuple[TensorType, ...]:
        c = x.shape[1] if x.rank >= 2 else None
        if gamma.shape != (c,) or beta.shape != (c,) or not x.is_float:
            raise TypeError_(f"batch_norm: scale {gamma} and shift {beta} must be [{c}] for input {x}")
        channel = x.with_shape((c,))
        return x, channel, channel

    def vjp(self, b, node, grads):
        (x, gamma, _), (_, mean, var) = node.inputs, node.outputs
        g = grads[0] if grads[0] is not None else E.broadcast_to(b, E.like(b, 0.0, x), x.type.shape)
        dx, dgamma, dbeta = b.emit(BatchNormTrainGrad(self.eps), x, g, gamma, mean, var)
        # the statistics usually feed only the running averages, but when a loss reads them:
        # d mean / dx = 1 / count, d var / dx = 2 (x - mean) / count
        count = E.size_of(b, x, _channel_axes(x.type), x.type.dtype)
        if grads[1] is not None:
            dx = E.add(b, dx, _per_channel(b, E.div(b, grads[1], count), x))
        if grads[2] is not None:
            centered = E.sub(b, x, _per_channel(b, mean, x))
            scale = E.div(b, E.mul(b, E.like(b, 2.0, x), grads[2]), count)
            dx = E.add(b, dx, E.mul(b, centered, _per_channel(b, scale, x)))
        return dx, dgamma, dbeta

    def decompose(self, b, x, gamma, beta):
        axes = _channel_axes(x.type)
        from bmc.ops.reduce import Mean

        mean = b.emit(Mean(axes, True), x)
        centered = E.sub(b, x, mean)
        var = b.emit(Mean(axes, True), E.mul(b, centered, centered))
        y = E.add(b, E.mul(b, _normalize(b, x, mean, var, self.eps), _per_channel(b, gamma, x)),
                  _per_channel(b, beta, x))
        c = (x.type.shape[1],)
        return y, E.reshape(b, mean, c), E.reshape(b, var, c)


@dataclass(frozen=True)
class BatchNormTrainGrad(Op):
    """The gradients (dx, dgamma, dbeta) of batch normalization with batch statistics:
    dx = gamma / sigma * (g - mean(g) - xhat * mean(g * xhat)), dgamma = sum(g * xhat), dbeta = sum(g)."""

    name: ClassVar[str] = "batch_norm_train_grad"
    differentiable: ClassVar[bool] = False
    eps: float = 1e-5

    def infer(self, x, g, gamma, mean, var) -> tuple[TensorType, ...]:
        return x, gamma, gamma

    def decompose(self, b, x, g, gamma, mean, var):
        from bmc.ops.reduce import Mean, Sum

        axes = _channel_axes(x.type)
        inv = E.div(b, E.like(b, 1.0, x), b.emit(Sqrt(), E.add(b, var, E.like(b, self.eps, x))))
        xhat = E.mul(b, E.sub(b, x, _per_channel(b, mean, x)), _per_channel(b, inv, x))
        dbeta = b.emit(Sum(axes, False), g)
        dgamma = b.emit(Sum(axes, False), E.mul(b, g, xhat))
        mean_g = b.emit(Mean(axes, True), g)
        mean_gx = b.emit(Mean(axes, True), E.mul(b, g, xhat))
        inner = E.sub(b, E.sub(b, g, mean_g), E.mul(b, xhat, mean_gx))
        dx = E.mul(b, inner, _per_channel(b, E.mul(b, gamma, inv), x))
        return dx, dgamma, dbeta
