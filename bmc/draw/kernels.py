"""What a backend runs: the optimized graph's ops, grouped as the backend groups them: the CUDA backend's fused
kernels, or the NumPy backend's reused buffers (each target's `groups`, see bmc/targets.py).

The groups come from the backends' own passes (the CUDA schedule, the NumPy memory planner) on the graph they
prepare, so the picture shows what a build runs, not a second opinion of it.
"""

from __future__ import annotations

from bmc import targets
from bmc.compiler import Compiled
from bmc.diagnostics import UsageError
from bmc.draw.picture import Box, Picture
from bmc.ir.graph import Node, Value

PALETTE = ("#dbeafe", "#dcfce7", "#fef3c7", "#fce7f3", "#e0e7ff", "#ccfbf1", "#fee2e2", "#f3e8ff", "#ecfccb")
BACKENDS = ("cuda", "numpy")


def picture(compiled: Compiled, backend: str = "cuda", train: bool = False) -> Picture:
    module = targets.target(backend)
    if not hasattr(module, "groups"):
        raise UsageError(f"the {backend} target does not group ops; --kernels draws: {', '.join(BACKENDS)}")
    graph, groups, summary = module.groups(compiled.train_step() if train else compiled.inference())
    kind = "train step" if train else "inference"
    pic = Picture(f"{compiled.name}: {kind} on {backend} ({compiled.model.source.name}): {summary}")
    key_of: dict[Value, str] = {}
    for v in graph.inputs_with_role("input", "target"):
        key_of[v] = f"input:{v.name}"
        pic.box(Box(key_of[v], [f"{graph.roles[v]} {v.name}", str(v.type)], graph.roles[v]))
    cluster_of: dict[Node, tuple[str, ...]] = {}  # a group without a label is ops drawn outside any cluster
    for i, (label, nodes) in enumerate(groups):
        if label is not None:
            pic.clusters[f"group:{i}"] = label
            pic.cluster_styles[f"group:{i}"] = PALETTE[len(pic.cluster_styles) % len(PALETTE)]
        cluster_of.update({n: (f"group:{i}",) if label is not None else () for n in nodes})
    for i, node in enumerate(graph.nodes):
        if node in cluster_of:  # an op in no group (a constant inlined into kernels, a view) is not drawn
            pic.box(_op_box(node, f"op{i}", cluster_of[node]))
            key_of.update({o: f"op{i}" for o in node.outputs})
    for node in graph.nodes:
        for o in node.outputs:
            if o not in key_of and node.inputs and node.inputs[0] in key_of:  # a reshape shares its input's buffer
                key_of[o] = key_of[node.inputs[0]]
    for node in graph.nodes:
        target = next((key_of[o] for o in node.outputs if o in key_of), None)
        for v in node.inputs:
            if target is not None and v in key_of:
                pic.edge(key_of[v], target)
    return pic


def _op_box(node: Node, key: str, cluster: tuple[str, ...]) -> Box:
    out = node.outputs[0]
    where = node.span.origin[-1] if node.span is not None and node.span.origin else ""
    line = f"line {node.span.line}" if node.span is not None else ""
    lines = [f"{node.op.name}  {out.name}" if out.name else node.op.name, str(out.type),
             "  ·  ".join(p for p in (where, line) if p)]
    return Box(key, [ln for ln in lines if ln], "op", cluster)
