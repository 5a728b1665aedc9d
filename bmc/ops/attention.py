"""The causal mask of decoder self-attention."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bmc.ir.flops import elementwise
from bmc.ir.types import TensorType, TypeError_
from bmc.ops.base import Op

__all__ = ["CausalMask"]  # the ops, which bmc.ops re-exports


@dataclass(frozen=True)
class CausalMask(Op):
    """Scores [..., T, T] with every entry above the diagonal (a query seeing a later key) set to `fill`."""

    name: ClassVar[str] = "causal_mask"
    fill: float = float("-inf")

    def infer(self, scores: TensorType) -> TensorType:
        if scores.rank < 2 or scores.shape[-1] != scores.shape[-2] or not scores.is_float:
            raise TypeError_(f"a causal mask needs float scores [..., T, T], got {scores}")
        return scores

    def flops(self, inputs, outputs):  # a select per score
        return elementwise(outputs)

    def vjp(self, b, node, grads):  # masked entries get no gradient
        return (b.emit(CausalMask(fill=0.0), grads[0]),)
