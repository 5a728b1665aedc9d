"""Memory planning for the NumPy backend: reuse dead buffers through ufuncs' `out=`.

Fresh arrays of a few hundred kilobytes cost page faults on every allocation; the Adam update of a 784x128 weight
alone would allocate a dozen of them per step. The planner walks the graph once, tracks when each value is last
used, and lets an op that can write into a given array (`np.add(a, b, out=buf)`) take the buffer of a value that is
dead by then and has the same shape and dtype: first an input that dies at this very node (in place), otherwise any
free buffer.

Only buffers the function owns are reused: values it computed itself, and in the train step the parameters and
optimizer state that the step updates in place by contract. Batch inputs are the caller's and never reused. Views
(reshape, transpose, broadcast, slice) share memory with their source, so neither they nor their sources are
reused.
"""

from __future__ import annotations

from bmc import ops
from bmc.ir.graph import Graph, Node, Value
from bmc.ops.base import Op

# ops whose NumPy lowering is a ufunc that accepts out=, with whether out may alias an input
UFUNC_OPS: tuple[type[Op], ...] = (
    ops.Add, ops.Sub, ops.Mul, ops.Div, ops.Pow, ops.Maximum, ops.Minimum, ops.Neg, ops.Exp, ops.Log, ops.Sqrt,
    ops.Tanh, ops.Abs, ops.Sign, ops.Relu,
)
MATMUL_OPS: tuple[type[Op], ...] = (ops.MatMul,)  # out= must not alias an input
# outputs that may share memory with an input: views, and a scan's carries (a body may pass a carry through)
VIEW_OPS: tuple[type[Op], ...] = (ops.Reshape, ops.Transpose, ops.BroadcastTo, ops.Slice, ops.Split, ops.Scan)


def plan(graph: Graph, owned_inputs: set[Value]) -> dict[Node, Value]:
    """For each node that should write into an existing buffer: the value whose buffer it takes."""
    last_use: dict[Value, int] = {}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            last_use[v] = i
    keep = set(graph.outputs.values())
    pinned = set(keep)  # never reused: outputs, views and the sources of views
    for node in graph.nodes:
        if isinstance(node.op, VIEW_OPS):
            pinned.update(node.inputs)
            pinned.update(node.outputs)
    owned = set(owned_inputs)
    for node in graph.nodes:
        if not isinstance(node.op, VIEW_OPS):
            owned.update(node.outputs)

    def reusable(v: Value) -> bool:
        return v in owned and v not in pinned and v.type.rank > 0

    free: dict[tuple, list[Value]] = {}
    out: dict[Node, Value] = {}
    for i, node in enumerate(graph.nodes):
        dying = [v for v in dict.fromkeys(node.inputs) if last_use.get(v) == i and reusable(v)]
        if len(node.outputs) == 1 and node.outputs[0].type.rank > 0:
            result = node.outputs[0]
            key = (result.type.dtype, result.type.shape)
            chosen = None
            if isinstance(node.op, UFUNC_OPS):
                chosen = next((v for v in dying if (v.type.dtype, v.type.shape) == key), None)
            if chosen is None and isinstance(node.op, UFUNC_OPS + MATMUL_OPS) and free.get(key):
                chosen = free[key].pop()
            if chosen is not None:
                out[node] = chosen
                if chosen in dying:
                    dying.remove(chosen)
                # the result now lives in chosen's buffer: it is owned exactly when chosen was
                owned.add(result)
        for v in dying:
            free.setdefault((v.type.dtype, v.type.shape), []).append(v)
    return out
