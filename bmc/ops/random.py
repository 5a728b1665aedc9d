"""Random numbers that are reproducible: counter-based, from a key the train step receives each step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bmc.ir.types import INT_DTYPES, TensorType, TypeError_
from bmc.ops.base import Op

__all__ = ["RandomUniformLike"]  # the ops, which bmc.ops re-exports


@dataclass(frozen=True)
class RandomUniformLike(Op):
    """Uniform [0, 1) numbers shaped like x, determined by (key, salt): each dropout site has its own salt, and the
    training loop passes a fresh key every step, so a run is reproducible from its seed.

    The numbers are defined exactly, so that every backend draws the same ones: for the element at flat index i,

        h = (i * 0x9E3779B1 + (((key mod 2^32) * 0x85EBCA77 + salt * 0xC2B2AE3D) mod 2^32)) mod 2^32
        h ^= h >> 16; h = h * 0x7FEB352D mod 2^32; h ^= h >> 15; h = h * 0x846CA68B mod 2^32; h ^= h >> 16
        u = (h >> 8) / 2^24

    (the "lowbias32" integer hash), which needs only 32-bit multiply, add, xor and shift.
    """

    name: ClassVar[str] = "random_uniform_like"
    pure: ClassVar[bool] = False
    differentiable: ClassVar[bool] = False
    salt: int

    def infer(self, x: TensorType, key: TensorType) -> TensorType:
        if key.dtype not in INT_DTYPES or key.rank != 0:
            raise TypeError_(f"the random key must be an integer scalar, got {key}")
        if not x.is_float:
            raise TypeError_(f"random numbers are shaped like a float tensor, got {x}")
        return x

    def vjp(self, b, node, grads):
        return None, None
