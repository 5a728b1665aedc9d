"""Constant folding: scalar elementwise ops on constants, and sizes of static dims, become constants.

Folding evaluates through the reference semantics of every op (bmc/reference), so an op's meaning is written
once.
"""

from __future__ import annotations

import numpy as np

from bmc.ir import dims
from bmc.ir.graph import Builder, Graph, Node, Value
from bmc.ir.rewrite import rewrite
from bmc.ir.types import NUMPY_NAMES
from bmc.ops import emit as E
from bmc.ops.elementwise import Const
from bmc.ops.shape import SizeOf
from bmc.reference.interpret import evaluate_node

name = "fold"


def constant_of(v: Value) -> float | int | bool | None:
    if v.producer is not None and isinstance(v.producer.op, Const):
        return v.producer.op.value
    return None


def run(graph: Graph) -> Graph:
    def rule(b: Builder, node: Node, inputs: tuple[Value, ...]) -> tuple[Value, ...] | None:
        op = node.op
        if isinstance(op, SizeOf):
            n = dims.product(op.dims_of(inputs[0].type))
            return (E.const(b, n, op.dtype),) if isinstance(n, int) else None
        if isinstance(op, Const) or not op.elementwise or len(node.outputs) != 1:
            return None
        values = [constant_of(v) for v in inputs]
        out = node.outputs[0]
        if any(v is None for v in values) or out.type.rank != 0 or out.type.dtype == "bool":
            return None
        arrays = [np.asarray(v, dtype=NUMPY_NAMES[x.type.dtype]) for v, x in zip(values, inputs, strict=True)]
        with np.errstate(all="ignore"):  # a non-finite result is simply not folded
            (result,) = evaluate_node(op, arrays, [v.type for v in inputs])
        value = result.item()
        if not np.isfinite(value):
            return None
        return (E.const(b, value, out.type.dtype),)

    return rewrite(graph, rule)
