"""Reverse-mode autodiff that emits ordinary IR.

Each op's `vjp` rule returns new graph values; this driver walks the graph backwards, sums the gradients of values
used more than once, and reduces broadcast gradients back to their input's shape in exactly one place
(`unbroadcast`). The backward graph then goes through the same passes and backends as the forward one.
"""

from __future__ import annotations

from bmc.ir.graph import Builder, Node, Value
from bmc.ir.types import TensorType
from bmc.ops import emit as E
from bmc.ops.base import NotDifferentiable
from bmc.ops.scan import Scan
from bmc.passes import scan_grad


def unbroadcast(b: Builder, g: Value, target: TensorType) -> Value:
    """Sum `g` over the axes that broadcasting added or stretched, so it has `target`'s shape."""
    if g.type.shape != target.shape:
        lead = g.type.rank - target.rank
        axes = list(range(lead))
        axes += [lead + i for i, d in enumerate(target.shape) if d == 1 and g.type.shape[lead + i] != 1]
        if axes:
            g = E.sum_(b, g, tuple(axes), keepdims=True)
        g = E.reshape(b, g, target.shape)
    return E.cast(b, g, target.dtype)


def gradients(b: Builder, loss: Value, wrt: list[Value]) -> dict[Value, Value]:
    """Append the backward graph of scalar `loss` with respect to `wrt` to `b.graph`; return d loss / d w."""
    saved_span = b.span
    b.span = loss.span
    seed = E.broadcast_to(b, E.like(b, 1.0, loss), loss.type.shape)
    grads = backprop(b, list(b.graph.nodes), {loss: seed}, set(wrt))
    b.span = saved_span
    out = {}
    for w in wrt:
        if w in grads:
            out[w] = grads[w]
            if grads[w].producer is not None and not grads[w].name:
                grads[w].name = f"{w.name}.grad"
        else:  # the loss does not depend on w
            out[w] = E.broadcast_to(b, E.like(b, 0.0, w), w.type.shape)
    return out


def backprop(b: Builder, nodes: list[Node], seeds: dict[Value, Value], sources: set[Value]) -> dict[Value, Value]:
    """Propagate `seeds` (gradients of some values) back through `nodes` towards values depending on `sources`."""
    depends = set(sources)  # values that depend on something we differentiate with respect to
    for node in nodes:
        if any(v in depends for v in node.inputs):
            depends.update(node.outputs)
    grads = dict(seeds)
    for node in reversed(nodes):
        out_grads = tuple(grads.get(o) for o in node.outputs)
        if all(g is None for g in out_grads) or not any(v in depends for v in node.inputs):
            continue
        b.span = node.span
        in_grads = node_vjp(b, node, out_grads)
        for x, gx in zip(node.inputs, in_grads, strict=True):
            if gx is None or x not in depends:
                continue
            gx = unbroadcast(b, gx, x.type)
            grads[x] = E.add(b, grads[x], gx) if x in grads else gx
    return grads


def node_vjp(b: Builder, node: Node, out_grads: tuple[Value | None, ...]) -> tuple[Value | None, ...]:
    """The op's own gradient rule, or, for a composite without one, the gradient of its decomposition. A scan's
    gradient is a pass of its own (scan_grad.py): it differentiates the scan's body with this module's backprop."""
    if isinstance(node.op, Scan):
        return scan_grad.vjp(b, node, out_grads, backprop)
    try:
        return node.op.vjp(b, node, out_grads)
    except NotDifferentiable:
        if not node.op.has_decomposition():
            raise
    mark = len(b.graph.nodes)
    outs = node.op.decompose(b, *node.inputs)  # the forward recomputed in smaller ops
    outs = outs if isinstance(outs, tuple) else (outs,)
    inner = b.graph.nodes[mark:]
    seeds = {o: g for o, g in zip(outs, out_grads, strict=True) if g is not None}
    grads = backprop(b, inner, seeds, set(node.inputs))
    b.span = node.span
    # grads[x] is the whole gradient of x, through every operand it is: give it once (the caller sums per operand)
    return tuple(None if x in node.inputs[:i] else grads.get(x) for i, x in enumerate(node.inputs))
