"""Generate model.cu: the kernels of every function (forward, train step, ...) and the host code that plans memory and
launches them, inside the Jinja2 skeleton templates/model.cu.j2.

Per function (`FunctionWriter`): decompose the ops without a CUDA rule, fuse (schedule.py), plan memory (memory.py),
then write one kernel per schedule item (fused groups: fused.py; other ops: their rule in rules.py) and the host lines
that launch it, each group of lines under a `// bmc: FILE:LINE` marker; host.py writes the function around them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import jinja2
from bmc.backends.cuda import fused, pointwise, rules
from bmc.backends.cuda.ctext import C_TYPES, c_identifier, c_string, c_word, comment, dim
from bmc.backends.cuda.fused import shape_only
from bmc.backends.cuda.kernel import KernelBuilder, where
from bmc.backends.cuda.memory import Plan, Request, Storage
from bmc.backends.cuda.memory import plan as plan_memory
from bmc.backends.cuda.schedule import ALIAS, INDEXED, INLINE, KERNEL, POINTWISE, Item, Schedule
from bmc.backends.cuda.schedule import build as build_schedule

from bmc import ops
from bmc.ir.graph import Builder, Graph, Node, Value
from bmc.ir.names import Namer
from bmc.ir.rewrite import rewrite
from bmc.ir.types import Dim
from bmc.ops import Const, Reshape
from bmc.ops.base import Op
from bmc.passes import decompose


def classify(node: Node) -> str:
    t = type(node.op)
    if t is Const:
        return INLINE
    if t is Reshape:
        return ALIAS
    if t in pointwise.POINTWISE:
        return POINTWISE
    if t in pointwise.INDEXED:
        return INDEXED
    return KERNEL


# ops the writer handles itself, with how (`bmc ops` shows it)
BUILT_IN: dict[type[Op], str] = {
    Reshape: "backends/cuda/codegen.py: an alias of its input's memory",
    ops.Split: "backends/cuda/codegen.py:_split_as_slices (slices)",
}


def has_rule(op_type: type[Op]) -> bool:
    """The CUDA backend lowers this op class itself (an element rule, a kernel rule, or a rewrite)."""
    return op_type in BUILT_IN or op_type in pointwise.POINTWISE or op_type in pointwise.INDEXED or \
        op_type in rules.KERNELS


def supports(op: Op) -> bool:
    return has_rule(type(op))


def _split_as_slices(b: Builder, node: Node, inputs: tuple[Value, ...]) -> tuple[Value, ...] | None:
    """A split is one slice per piece, each fused into the kernel that reads it."""
    if not isinstance(node.op, ops.Split):
        return None
    outs, start = [], 0
    for size in node.op.sizes:
        outs.append(b.emit(ops.Slice(node.op.axis, start, start + size), inputs[0]))
        start += size
    return tuple(outs)


def prepare(graph: Graph) -> Graph:
    """Decompose the ops this backend has no rule for; splits become slices."""
    graph = decompose.run(graph, supports)
    if any(isinstance(n.op, ops.Split) for n in graph.nodes):
        graph = rewrite(graph, _split_as_slices)
    return graph


@dataclass
class ModuleWriter:
    """What all functions of one model.cu share: the kernels and the table that names them in errors."""

    precision: str = "fp32"  # of the GEMMs' f32 products: fp32, or tf32 / bf16 on the tensor cores (gemm.py)
    kernels: list[str] = field(default_factory=list)
    kernel_info: list[tuple[str, str]] = field(default_factory=list)
    counter: int = 0
    by_body: dict[tuple, tuple[str, int]] = field(default_factory=dict)  # a kernel's text -> (name, index in kernels)

    def kernel_name(self, hint: str) -> str:
        name = c_word(f"k{self.counter}_{hint}")
        self.counter += 1
        return name

    def register_kernel(self, name: str, where_text: str) -> int:
        self.kernel_info.append((c_string(name), c_string(where_text)))
        return len(self.kernel_info)


class FunctionWriter:
    """Writes one graph as host code and kernels. A scan's body gets a nested writer that shares the names, the
    symbols and the offset table, and writes its lines inside the scan's loop."""

    def __init__(self, module: ModuleWriter, graph: Graph, tensors: dict[Value, int],
                 parent: FunctionWriter | None = None, external: dict[Value, str] | None = None,
                 sinks: dict[str, int] | None = None):
        self.module = module
        self.parent = parent
        self.graph = prepare(graph)
        if parent is None:
            self.symbol_list = [s for s in self.graph.symbols() if "*" not in s]
            # user names (`v_h_W`, `v_N`) cannot meet the generated code's own (`ctx`, `acc`, `t3`): see ctext.py
            self.namer = Namer(c_identifier, temp="t")
            self.symbols = {s: self.namer.fresh(s) for s in self.symbol_list}
            self.counter = [0]
        else:
            self.symbol_list, self.symbols = parent.symbol_list, parent.symbols
            self.namer, self.counter = parent.namer, parent.counter
        self.namer.name_graph(self.graph)
        self.schedule: Schedule = build_schedule(self.graph, classify, shape_only)
        self.nested: dict[Item, FunctionWriter] = {}
        self.lines: list[str] = []
        self.indent = 1 if parent is None else parent.indent + 2
        self.plan: Plan = plan_memory(self.schedule, self.symbols, self.counter, tensors, external or {},
                                      self._workspace, self.used_outputs, keep_inputs=parent is not None,
                                      sinks=sinks)

    # ---- what rules use ------------------------------------------------------------------------------------------

    def name(self, v: Value) -> str:
        return self.namer.name(v)

    def pointer(self, v: Value) -> str:
        """The host variable holding v's device pointer (a reshape shares its source's)."""
        return self.name(self.schedule.root(v))

    def storage(self, v: Value) -> Storage:
        return self.plan.storage[self.schedule.root(v)]

    def storage_key(self, v: Value) -> tuple:
        s = self.storage(v)
        return (s.kind, s.slot.index if s.slot else s.tensor, s.pointer)

    def hdim(self, d: Dim) -> str:
        return dim(d, self.symbols)

    def emit(self, line: str) -> None:
        self.lines.append("  " * self.indent + line)

    def kernel(self, node: Node, hint: str) -> KernelBuilder:
        return KernelBuilder(self, node, hint)

    def workspace(self, item: Item, k: int = 0) -> str:
        """The host expression of a kernel's k-th workspace (char*)."""
        return f"(arena + off[{self.plan.workspaces[item][k].index}])"

    def used(self, v: Value) -> bool:
        return any(self.schedule.root(u) is v for n in self.graph.nodes for u in n.inputs) or \
            any(self.schedule.root(u) is v for u in self.graph.outputs.values())

    def used_outputs(self, item: Item) -> list[Value]:
        if item.kind == "kernel" and rules.KERNELS.option(item.node.op, "skip_unused"):
            return [o for o in item.outputs if self.used(o)]
        return item.outputs

    def _workspace(self, item: Item) -> list[Request]:
        if item.kind != "kernel":
            return []
        workspace = rules.KERNELS.option(item.node.op, "workspace")
        return workspace(item, self) if workspace else []

    # ---- writing ---------------------------------------------------------------------------------------------------

    def declare(self) -> None:
        """Host pointer variables for every stored value of this graph."""
        for v, s in self.plan.storage.items():
            if s.kind == "hyper" or (v in self.plan.pinned and self.parent is None):  # batch inputs: run_source
                continue
            t = C_TYPES[v.type.dtype]
            if s.kind == "tensor":
                self.emit(f"{t}* {self.name(v)} = ({t}*)ctx->tensors[{s.tensor}];")
            elif s.kind == "external":
                self.emit(f"{t}* {self.name(v)} = {s.pointer};")
            else:
                self.emit(f"{t}* {self.name(v)} = ({t}*)(arena + off[{s.slot.index}]);")

    def body(self) -> None:
        last = None
        for item in self.schedule.items:
            marker = where(item.node)
            if marker != last:
                self.lines.append("")
                self.emit(f"// bmc: {comment(marker)}")
                if item.node.span is not None:
                    self.emit(f"//   {comment(item.node.span.source.line(item.node.span.line).strip())}")
                last = marker
            if item.kind == "group":
                fused.write_group(self, item)
            else:
                rules.KERNELS[item.node.op](item, self)


def render(**fields: object) -> str:
    text = resources.files("bmc.backends.cuda").joinpath("templates/model.cu.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["comment"] = comment
    return env.from_string(text).render(**fields)
