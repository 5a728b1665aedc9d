"""Normalization layers, kept whole (ONNX LayerNormalization, BatchNormalization) with decompositions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bmc.ir.types import TensorType, TypeError_
from bmc.ops import emit as E
from bmc.ops.base import Op
from bmc.ops.elementwise import Sqrt


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
