"""Row lookups (embeddings) and their gradient, a scatter-add."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bmc.ir.flops import elementwise
from bmc.ir.types import INT_DTYPES, TensorType, TypeError_
from bmc.ops.base import Op

__all__ = ["Gather", "ScatterAdd"]  # the ops, which bmc.ops re-exports


@dataclass(frozen=True)
class Gather(Op):
    """table[ids]: table [V, ...], integer ids [...] -> [..., ...] (ONNX Gather on axis 0)."""

    name: ClassVar[str] = "gather"

    def infer(self, table: TensorType, ids: TensorType) -> TensorType:
        if ids.dtype not in INT_DTYPES:
            raise TypeError_(f"lookup indices must be integers, got {ids}")
        if table.rank < 1:
            raise TypeError_(f"cannot look up rows of a scalar {table}")
        return table.with_shape((*ids.shape, *table.shape[1:]))

    def vjp(self, b, node, grads):
        table, ids = node.inputs
        return b.emit(ScatterAdd(table.type.shape[0]), ids, grads[0]), None


@dataclass(frozen=True)
class ScatterAdd(Op):
    """zeros[rows, ...] with updates[i] added at row ids[i] (repeated ids accumulate)."""

    name: ClassVar[str] = "scatter_add"
    differentiable: ClassVar[bool] = False
    rows: int

    def infer(self, ids: TensorType, updates: TensorType) -> TensorType:
        if updates.shape[: ids.rank] != ids.shape:
            raise TypeError_(f"scatter_add: updates {updates} do not start with the ids' shape {ids}")
        return updates.with_shape((self.rows, *updates.shape[ids.rank:]))

    def flops(self, inputs, outputs):  # an add per update
        return elementwise(inputs[1:])
