"""Retype a graph's floating-point values to another float dtype (float64 for gradient checks)."""

from __future__ import annotations

import dataclasses

from bmc.ir.graph import Builder, Graph, Value
from bmc.ir.types import TensorType
from bmc.ops.scan import Scan

name = "precision"


def run(graph: Graph, dtype: str = "f64") -> Graph:
    def retype(t: TensorType) -> TensorType:
        return t.with_dtype(dtype) if t.is_float else t

    new = Graph(graph.name, doc=dict(graph.doc))
    env: dict[Value, Value] = {}
    for v in graph.inputs:
        nv = new.add_input(retype(v.type), v.name, graph.roles[v], v.span)
        if v in graph.param_info:
            new.param_info[nv] = graph.param_info[v]
        env[v] = nv
    b = Builder(new)
    for node in graph.nodes:
        op = node.op
        changes = {f.name: dtype for f in dataclasses.fields(op) if f.name == "dtype" and op.dtype in ("f32", "f64")}
        if changes:
            op = dataclasses.replace(op, **changes)
        if isinstance(op, Scan):
            op = dataclasses.replace(op, body=run(op.body, dtype))
        outs = b.emit(op, *(env[v] for v in node.inputs), span=node.span)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for old, out in zip(node.outputs, outs, strict=True):
            out.name = old.name
            env[old] = out
    new.outputs = {k: env[v] for k, v in graph.outputs.items()}
    return new
