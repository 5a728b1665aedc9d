"""The model as its `.bm` statements: one box per statement (its functions, its output shape, its line), the user
layers and `repeat` copies it unrolled as nested clusters, and for the train step its backward and optimizer set
apart.

Every op's span names the unrolled statement that made it (`Span.origin`, bmc/frontend/origin.py), so a box is the
ops sharing an origin and an edge is a value one box makes and another reads. `depth` collapses clusters nested
deeper than that into one box each.
"""

from __future__ import annotations

from bmc.compiler import Compiled
from bmc.draw.picture import Box, Picture
from bmc.frontend.model_ir import ModelIR
from bmc.frontend.origin import Origin
from bmc.ir.graph import Graph, Node, Value

MAX_CALLS = 5  # functions listed in a box before "..."


def picture(compiled: Compiled, train: bool = False, depth: int | None = None) -> Picture:
    model = compiled.model if train else compiled.eval_model
    graph = compiled.train_step(optimized=False) if train else compiled.inference(optimized=False)
    kind = "train step" if train else "inference"
    pic = Picture(f"{model.name}: {kind} ({model.source.name})")
    _Drawer(pic, model, graph, depth, train).draw()
    return pic


class _Drawer:
    def __init__(self, pic: Picture, model: ModelIR, graph: Graph, depth: int | None, train: bool):
        self.pic, self.model, self.graph, self.depth, self.train = pic, model, graph, depth, train
        self.origins = model.origins
        self.outputs = {v: k for k, v in graph.outputs.items()}
        backward = graph.sections.get("backward", len(graph.nodes)) if train else len(graph.nodes)
        optimizer = graph.sections.get("optimizer", len(graph.nodes)) if train else len(graph.nodes)
        self.section = {n: ("forward" if i < backward else "backward" if i < optimizer else "optimizer")
                        for i, n in enumerate(graph.nodes)}
        self.box_of: dict[Node, str] = {}

    def draw(self) -> None:
        for v in self.graph.inputs:  # inputs, targets and `param` statements, in the file's order
            if self.graph.roles[v] in ("input", "target") or self._declared_param(v):
                self._input_box(v)
        members: dict[str, list[Node]] = {}
        for node in self.graph.nodes:
            key = self._place(node)
            self.box_of[node] = key
            members.setdefault(key, []).append(node)
        for key, nodes in members.items():
            self._label(key, nodes)
        for node in self.graph.nodes:
            for v in node.inputs:
                source = self._source(v)
                across = self.train and self._section_of(source) == "forward" != self.section[node]
                # what the backward pass reads from the forward one: drawn light, and not ranking the boxes
                style = {"style": "dashed", "color": "#94a3b8"} if across else {}
                self.pic.edge(source, self.box_of[node], **style)

    # ---- where a node goes ---------------------------------------------------------------------------------------

    def _path(self, node: Node) -> tuple[str, ...]:
        path = node.span.origin if node.span is not None else ()
        return path[: self.depth + 1] if self.depth is not None else path

    def _place(self, node: Node) -> str:
        section = self.section[node]
        path = self._path(node)
        if section == "optimizer":
            return self._box("optimizer", "optimizer", ("optimizer",))
        if not path:  # made by the train block (a penalty, the gradient's seed, clipping)
            where = node.span.location if node.span is not None else "train block"
            return self._box(f"{section}:train:{where}", "train", (section,) if section != "forward" else ())
        *clusters, key = path
        for c in clusters:
            self.pic.clusters.setdefault(c, self._cluster_label(self.origins[c]))
        if section == "backward":
            return self._box(f"grad:{key}", "backward", ("backward",))
        if self.depth is not None and len(node.span.origin) > len(path):
            return self._box(key, "collapsed", tuple(clusters))
        return self._box(key, "statement", tuple(clusters))

    def _box(self, key: str, kind: str, cluster: tuple[str, ...]) -> str:
        if self.train and cluster[:1] != ("backward",) and cluster[:1] != ("optimizer",):
            cluster = ("forward", *cluster)
        for name, label, fill in (("forward", "forward", "#ffffff"), ("backward", "backward (autodiff)", "#fffbf5"),
                                  ("optimizer", "optimizer update", "#fcfaff")):
            if cluster[:1] == (name,):
                self.pic.clusters.setdefault(name, label)
                self.pic.cluster_styles[name] = fill
        self.pic.box(Box(key, [], kind, cluster))
        return key

    def _section_of(self, key: str) -> str:
        box = self.pic.boxes.get(key)
        return box.cluster[0] if box is not None and box.cluster else "forward"

    def _source(self, v: Value) -> str:
        if v.producer is not None:
            return self.box_of.get(v.producer, "")
        return self._input_key(v)

    # ---- labels --------------------------------------------------------------------------------------------------

    def _declared_param(self, v: Value) -> bool:
        origin = self._origin_of(v)
        return self.graph.roles[v] == "param" and origin is not None and origin.kind == "param"

    def _origin_of(self, v: Value) -> Origin | None:
        path = v.span.origin if v.span is not None else ()
        return self.origins.get(path[-1]) if path else None

    def _input_key(self, v: Value) -> str:
        return f"input:{v.name}"

    def _input_box(self, v: Value) -> None:
        role = self.graph.roles[v]
        origin = self._origin_of(v)
        title = f"{role} {v.name}" if role != "param" else f"param {v.name}"
        line = f"line {origin.span.line}" if origin is not None and origin.span is not None else ""
        box = Box(self._input_key(v), [title, f"{v.type}" + (f"  ·  {line}" if line else "")], role,
                  ("forward",) if self.train else ())
        self.pic.box(box)

    def _label(self, key: str, nodes: list[Node]) -> None:
        box = self.pic.boxes[key]
        if box.kind == "optimizer":
            state = self.graph.inputs_with_role("state")
            params = [p for p in self.graph.params if self.graph.param_info[p].trainable]
            box.lines = [f"{_optimizer_name(nodes)} update",
                         f"{len(params)} parameter tensors, {_count(params):,} values",
                         f"{len(state)} state tensors, {_count(state):,} values", f"{len(nodes)} ops"]
            return
        if box.kind in ("train", "backward") and key.startswith(("forward:train:", "backward:train:")):
            box.lines = ["from the train block", ", ".join(_op_names(nodes)), key.split(":", 2)[2]]
            return
        name = key.removeprefix("grad:")
        origin = self.origins.get(name)
        if box.kind == "backward":
            line = f"  ·  line {origin.span.line}" if origin is not None and origin.span is not None else ""
            box.lines = [f"∂ {name}", f"{len(nodes)} ops{line}"]
            return
        assert origin is not None, key
        value = origin.value
        produced = {o for n in nodes for o in n.outputs}
        shown = value if value is not None and value in produced else nodes[-1].outputs[0]
        outputs = [k for v, k in self.outputs.items() if v in produced and "/" not in k]
        if outputs:
            box.kind = "loss" if outputs == ["loss"] else "output"
        title = origin.key if not outputs or outputs == [origin.label] else f"{origin.key} → {', '.join(outputs)}"
        box.lines = [title, self._what(origin), self._shape_line(origin, shown, box.kind == "collapsed")]

    def _what(self, origin: Origin) -> str:
        if origin.repeat:
            return f"repeat {origin.repeat} × {origin.layer}"
        names = list(origin.calls)
        if not names:
            return origin.kind
        shown = " → ".join(names[-MAX_CALLS:])
        return ("… → " if len(names) > MAX_CALLS else "") + shown

    def _shape_line(self, origin: Origin, value: Value, collapsed: bool) -> str:
        parts = [str(value.type)]
        params = sum(o.params for o in self.origins.values() if o.path[: len(origin.path)] == origin.path) \
            if collapsed else origin.params
        if params:
            parts.append(f"{params:,} params")
        if origin.span is not None:
            parts.append(f"line {origin.span.line}")
        return "  ·  ".join(parts)

    def _cluster_label(self, origin: Origin) -> str:
        line = f"  (line {origin.span.line})" if origin.span is not None else ""
        if origin.repeat:
            return f"{origin.key} = repeat({origin.repeat}, {origin.layer}){line}"
        if origin.layer:
            return f"{origin.key}: layer {origin.layer}{line}"
        return f"{origin.key}{line}"


def _op_names(nodes: list[Node]) -> list[str]:
    seen: list[str] = []
    for n in nodes:
        if n.op.name not in seen and n.op.name != "const":
            seen.append(n.op.name)
    return seen[:MAX_CALLS] + (["…"] if len(seen) > MAX_CALLS else [])


def _optimizer_name(nodes: list[Node]) -> str:
    span = next((n.span for n in nodes if n.span is not None), None)
    return span.text().split("=", 1)[-1].strip() if span is not None else "optimizer"


def _count(values: list[Value]) -> int:
    return sum(v.type.size or 0 for v in values)
