"""The IR's scan as an ONNX Scan.

    carries_T, ys, history = scan(body, carries_0, xs, consts)

maps to a Scan node over axis 0 between Transposes (the IR's sequences are batch-first [N, T, ...]; a Scan over axis 1
is standard too, but not every runtime implements it), backwards when the scan is reversed (inputs read from the
end, outputs stacked in step order). The body reads the constants from the outer scope, so they are not Scan
inputs; `history` (the carries entering each step, which a scan's gradient reads) becomes extra scan outputs of the
body, made only when something uses them.
"""

from __future__ import annotations

from onnx import helper

from bmc import ops
from bmc.passes import decompose

from . import fuse
from .emitter import Emitter, value_info
from .table import RULES, lower, supports


@lower(ops.Scan)
def _scan(node, a, ctx: Emitter):
    op = node.op
    k, m = op.num_carries, op.num_xs
    body = decompose.run(op.body, supports)
    history = node.outputs[k + op.num_ys:]
    kept = [i for i, h in enumerate(history) if h in ctx.used]

    sub = Emitter(ctx.names, parent=ctx)
    carries = [sub.add_input(v) for v in body.inputs[:k]]
    for v in body.inputs[k:k + m]:
        sub.add_input(v)
    for v, outer in zip(body.inputs[k + m:], a[k + m:], strict=True):
        sub.values[v] = outer  # outer-scope value
    results = list(body.outputs.values())
    outputs = [(sub.names.fresh(f"{key}_out"), v, "") for key, v in body.outputs.items()]
    for key, v, _ in outputs:
        if v not in sub.preferred and v not in body.inputs:
            sub.preferred[v] = key
    sub.used.update(results)
    sub.lower(body.nodes, RULES)
    infos = sub.output_infos(outputs)
    for i in kept:  # the carry entering each step, stacked
        name = sub.names.fresh(f"{body.inputs[i].name or 'carry'}_history")
        sub.nodes.append(helper.make_node("Identity", [carries[i]], [name], name=name))
        infos.append(value_info(name, body.inputs[i].type))
    fuse.simplify(sub, {i.name for i in infos})
    graph = sub.graph(f"{op.body.name}_body", infos)

    # ONNX Scan over axis 0 (the axis every runtime supports): time-major sequences in and out
    directions = [int(op.reverse)]
    scanned_out = op.num_ys + len(kept)
    xs = [_swap01(ctx, x, v.type.rank) for x, v in zip(a[k:k + m], node.inputs[k:k + m], strict=True)]
    outs = ctx.op("Scan", *a[:k], *xs, outputs=k + scanned_out, hint="scan", body=graph, num_scan_inputs=m,
                  scan_input_directions=directions * m, scan_output_directions=directions * scanned_out)
    outs = [outs] if isinstance(outs, str) else outs
    stacked = [_swap01(ctx, y, v.type.rank) for y, v in zip(outs[k:], [*node.outputs[k:k + op.num_ys],
                                                                      *(history[i] for i in kept)], strict=True)]
    by_history = dict(zip(kept, stacked[op.num_ys:], strict=True))
    return [*outs[:k], *stacked[:op.num_ys], *(by_history.get(i) for i in range(k))]


def _swap01(ctx: Emitter, x: str, rank: int) -> str:
    """[N, T, ...] <-> [T, N, ...]"""
    return ctx.op("Transpose", x, perm=[1, 0, *range(2, rank)])

