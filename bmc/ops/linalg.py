"""Matrix products."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bmc.ir.flops import Flops, Poly
from bmc.ir.types import TensorType, TypeError_, broadcast_shapes, promote
from bmc.ops import emit as E
from bmc.ops.base import Op

__all__ = ["MatMul"]  # the ops, which bmc.ops re-exports


@dataclass(frozen=True)
class MatMul(Op):
    """op(a) @ op(b) over the last two axes, batch axes broadcast; op transposes the last two axes when asked.

    The transposed forms are attributes, not separate transposes, so the backward pass (g @ b^T, a^T @ g) needs no
    materialized transpose on any backend.
    """

    name: ClassVar[str] = "matmul"
    transpose_a: bool = False
    transpose_b: bool = False

    def infer(self, a: TensorType, b: TensorType) -> TensorType:
        if a.rank < 2 or b.rank < 2:
            raise TypeError_(f"@ expects tensors of rank 2 or more, got {a} and {b}")
        m, ka = (a.shape[-1], a.shape[-2]) if self.transpose_a else (a.shape[-2], a.shape[-1])
        kb, n = (b.shape[-1], b.shape[-2]) if self.transpose_b else (b.shape[-2], b.shape[-1])
        if ka != kb:
            raise TypeError_(f"@ contracts {a} with {b}: inner dims {ka} and {kb} differ")
        batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
        return TensorType(promote(a.dtype, b.dtype), (*batch, m, n))

    def flops(self, inputs, outputs):  # a multiply-add per output element and contracted index
        a, (out,) = inputs[0], outputs
        k = a.shape[-2] if self.transpose_a else a.shape[-1]
        return Flops(matmul=2 * Poly.elements(out.shape) * Poly.dim(k))

    def vjp(self, b, node, grads):
        (x, y), g = node.inputs, grads[0]
        ta, tb = self.transpose_a, self.transpose_b
        if not ta and not tb:  # C = X Y
            return E.matmul(b, g, y, transpose_b=True), E.matmul(b, x, g, transpose_a=True)
        if ta and not tb:  # C = X^T Y
            return E.matmul(b, y, g, transpose_b=True), E.matmul(b, x, g)
        if not ta and tb:  # C = X Y^T
            return E.matmul(b, g, y), E.matmul(b, g, x, transpose_a=True)
        return E.matmul(b, y, g, True, True), E.matmul(b, g, x, True, True)  # C = X^T Y^T
