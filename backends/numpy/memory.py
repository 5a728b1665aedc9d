"""Memory planning for the NumPy backend: reuse dead buffers through ufuncs' `out=`.

Fresh arrays of a few hundred kilobytes cost page faults on every allocation; the Adam update of a 784x128 weight
alone would allocate a dozen of them per step. The planner walks the graph once, tracks when each value is last
used, and lets an op that can write into a given array (`np.add(a, b, out=buf)`) take the buffer of a value that is
dead by then and has the same shape and dtype: first an input that dies at this very node (in place), otherwise any
free buffer.

The arrays a caller passes in are the caller's. The only ones a function may write into are those it updates by
contract: a train step's parameters and optimizer state, each of which must end the call holding exactly its own
new value (the Adam update then runs in place). Everything else a caller passes (the batch, the learning rate,
non-trainable tables such as sinusoidal positions, parameters that are not updated) is never written. `verify`
checks these invariants, and that no value is overwritten while something still reads it, on every plan.

Views (reshape, transpose, broadcast, slice) share memory with their source, so neither they nor their sources are
reused.
"""

from __future__ import annotations

from bmc import ops
from bmc.ir.graph import Graph, Node, Value
from bmc.ops.base import Op
from bmc.reference.rules import UFUNCS

UFUNC_OPS: tuple[type[Op], ...] = tuple(UFUNCS)  # out= may alias an input
MATMUL_OPS: tuple[type[Op], ...] = (ops.MatMul,)  # out= must not alias an input
# outputs that may share memory with an input: views, and a scan's carries (a body may pass a carry through)
VIEW_OPS: tuple[type[Op], ...] = (ops.Reshape, ops.Transpose, ops.BroadcastTo, ops.Slice, ops.Split, ops.Scan)


class PlanError(AssertionError):
    """A memory plan broke an invariant: a bug in the planner, never the user's."""


def plan(graph: Graph, updates: dict[Value, Value] | None = None) -> dict[Node, Value]:
    """For each node that should write into an existing buffer: the value whose buffer it takes.

    `updates` maps each graph input the function updates in place (a train step's parameters and state) to the
    value stored back into it; only those inputs' buffers may be reused, and each must end up holding its own new
    value. An input whose buffer a greedy plan would leave holding something else is planned again without reuse.
    """
    updates = dict(updates or {})
    owned = set(updates)
    while True:
        buffers = _greedy(graph, owned)
        wrong = {x for x in owned if _final_resident(graph, buffers, x) not in (x, updates[x])}
        if not wrong:
            break
        owned -= wrong
    verify(graph, buffers, updates)
    return buffers


def _greedy(graph: Graph, owned_inputs: set[Value]) -> dict[Node, Value]:
    last_use: dict[Value, int] = {}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            last_use[v] = i
    pinned = _pinned(graph)
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


def _pinned(graph: Graph) -> set[Value]:
    """Values whose buffers are never reused: outputs, views and the sources of views."""
    pinned = set(graph.outputs.values())
    for node in graph.nodes:
        if isinstance(node.op, VIEW_OPS):
            pinned.update(node.inputs)
            pinned.update(node.outputs)
    return pinned


def _roots(graph: Graph, buffers: dict[Node, Value]) -> dict[Value, Value]:
    """Each value that lives in a reused buffer -> the value that first owned that buffer (a graph input or the
    first result written there)."""
    root: dict[Value, Value] = {}
    for node in graph.nodes:
        if node in buffers:
            taken = buffers[node]
            root[node.outputs[0]] = root.get(taken, taken)
    return root


def _final_resident(graph: Graph, buffers: dict[Node, Value], x: Value) -> Value:
    """The value input x's buffer holds when the function returns."""
    resident = x
    root = _roots(graph, buffers)
    for node in graph.nodes:
        if node in buffers and root[node.outputs[0]] is x:
            resident = node.outputs[0]
    return resident


def verify(graph: Graph, buffers: dict[Node, Value], updates: dict[Value, Value]) -> None:
    """Check a plan: no buffer is overwritten while its value is still read, returned or viewed; matmul never
    writes into its own operand; the caller's arrays are never written except the updated parameters and state,
    which end holding exactly their new values."""
    last_use: dict[Value, int] = {}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            last_use[v] = i
    pinned = _pinned(graph)
    inputs = set(graph.inputs)
    root = _roots(graph, buffers)
    resident: dict[Value, Value] = {}  # buffer root -> the value it holds now
    for i, node in enumerate(graph.nodes):
        if node not in buffers:
            continue
        taken, result = buffers[node], node.outputs[0]
        if taken.type != result.type:
            raise PlanError(f"{result} written into the buffer of {taken}, of another type")
        r = root[result]
        old = resident.get(r, r)
        if old is not taken:
            raise PlanError(f"{result} takes the buffer of {taken}, which by then holds {old}")
        if old in pinned or last_use.get(old, -1) > i:
            raise PlanError(f"{result} overwrites {old}, which is still read, returned or viewed")
        if isinstance(node.op, MATMUL_OPS) and old in node.inputs:
            raise PlanError(f"matmul {result} writes into its own operand {old}")
        if r in inputs and r not in updates:
            raise PlanError(f"{result} is written into the caller's array {r.name!r}, which this function must not "
                            "change")
        resident[r] = result
    for x, new in updates.items():
        if resident.get(x, new) is not new:
            raise PlanError(f"the array of {x.name!r} ends holding {resident[x]}, not its new value")
