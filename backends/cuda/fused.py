"""Fused kernels: one grid-stride loop over a group's shape that computes every member's element in registers,
loads each stored input once (broadcasting by index arithmetic) and stores only the values used outside the group."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bmc.backends.cuda import pointwise
from bmc.backends.cuda.ctext import C_TYPES, flat_offset, product, strides
from bmc.backends.cuda.kernel import KernelBuilder
from bmc.backends.cuda.schedule import INDEXED, Item

from bmc.ir.graph import Graph, Node, Value
from bmc.ir.types import Dim

if TYPE_CHECKING:
    from bmc.backends.cuda.codegen import FunctionWriter


def shape_only(node: Node, index: int) -> bool:
    """Whether the node only takes the shape of input `index` (sizes, dropout's random numbers)."""
    return index in pointwise.SHAPE_ONLY.get(type(node.op), ())


def write_group(fn: FunctionWriter, item: Item) -> None:
    """One fused kernel: a grid-stride loop over the group's shape; each member's element computed in registers,
    inputs loaded once, and only the values used outside the group stored."""
    named = [o for o in item.outputs if o.name]  # e.g. k29_h_W_new: the Adam update of h.W
    last = named[-1].producer if named else item.nodes[-1]
    k = fn.kernel(last, named[-1].name if named else last.op.name)
    ctx = GroupContext(fn, item, k)
    for node in item.nodes:
        kind = fn.schedule.kinds[node]
        if kind == INDEXED:
            expr = pointwise.INDEXED[type(node.op)](node, ctx)
        else:
            args = ["" if shape_only(node, j) else ctx.value(v) for j, v in enumerate(node.inputs)]
            expr = pointwise.POINTWISE[type(node.op)](node, args, ctx)
        for o in node.outputs:
            var = ctx.fresh("v")
            ctx.statement(f"const {C_TYPES[o.type.dtype]} {var} = {expr};")
            ctx.values[o] = var
    for o in item.outputs:
        ctx.statement(f"{ctx.param(o)}[i] = {ctx.values[o]};")
    count = k.dim(product(item.shape))
    body = [f"const int n = {count};", *ctx.pre,
            "for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {",
            *("  " + line for line in ctx.lines), "}"]
    notes = [_ir_line(fn, node) for node in item.nodes]
    k.launch(body, f"bmc_blocks({fn.hdim(product(item.shape))}, 256)", "256", 256, notes=notes)


def _ir_line(fn: FunctionWriter, node: Node) -> str:
    outs = ", ".join(fn.name(o) for o in node.outputs)
    args = ", ".join(fn.name(v) for v in node.inputs)
    attrs = ", ".join(f"{a}={v}" for a, v in node.op.attrs().items() if not isinstance(v, Graph))
    return f"{outs} = {node.op.name}({', '.join(x for x in (args, attrs) if x)})"


class GroupContext:
    """The pointwise.Context of one fused kernel."""

    flat = "i"

    def __init__(self, fn: FunctionWriter, item: Item, k: KernelBuilder):
        self.fn, self.item, self.k = fn, item, k
        self.shape = item.shape
        self.pre: list[str] = []  # before the loop: inline scalars
        self.lines: list[str] = []  # per element
        self.values: dict[Value, str] = {}
        self.coords: dict[int, str] = {}
        self.loads: dict[tuple, str] = {}
        self.count = 0
        self.written = {fn.storage_key(o) for o in item.outputs}
        self.read = {fn.storage_key(v) for v in item.inputs if fn.storage(v).kind != "hyper"}

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"v{self.count - 1}"

    def statement(self, line: str) -> None:
        self.lines.append(line)

    def dim(self, d: Dim) -> str:
        return self.k.dim(d)

    def bad_index(self) -> str:
        return f"bmc_bad_index({self.k.status()}, BMC_KERNEL_ID)"

    def param(self, v: Value) -> str:
        key = self.fn.storage_key(v)
        t = C_TYPES[v.type.dtype]
        if key in self.written and key in self.read:
            ctype = f"{t}*"
        elif key in self.written:
            ctype = f"{t}* __restrict__"
        else:
            ctype = f"const {t}* __restrict__"
        return self.k.pointer(ctype, self.fn.pointer(v), self.fn.pointer(v))

    def load(self, v: Value, offset: str) -> str:
        return f"{self.param(v)}[{offset}]"

    def value(self, v: Value) -> str:
        """v's element at the group's index: a register, an inline expression, or a load (broadcasting)."""
        if v in self.values:
            return self.values[v]
        root = self.fn.schedule.root(v)
        if root in self.fn.schedule.inline or self.fn.graph.roles.get(root) == "hyper":
            var = self.fresh("s")
            self.pre.append(f"const {C_TYPES[v.type.dtype]} {var} = {self.inline(root)};")
            self.values[v] = var
            return var
        key = (self.fn.storage_key(v), self.broadcast_offset(v))
        if key not in self.loads:
            var = self.fresh("v")
            line = f"const {C_TYPES[v.type.dtype]} {var} = {self.load(v, key[1])};"
            (self.pre if key[1] == "0" else self.lines).append(line)  # one element for all: loaded once
            self.loads[key] = var
        return self.loads[key]

    def inline(self, v: Value) -> str:
        if self.fn.graph.roles.get(v) == "hyper":
            # read from its device word (host.py), so that a replayed CUDA graph sees each call's value
            t = C_TYPES[v.type.dtype]
            return f"{self.k.pointer(f'const {t}* __restrict__', self.fn.name(v), self.fn.name(v))}[0]"
        node = v.producer
        args = ["" if shape_only(node, j) else self.inline(self.fn.schedule.root(u))
                for j, u in enumerate(node.inputs)]
        return pointwise.POINTWISE[type(node.op)](node, args, self)

    def broadcast_offset(self, v: Value) -> str:
        shape, vshape = self.shape, v.type.shape
        vstrides = strides(vshape)
        per_axis: list[Dim] = []
        for k in range(len(shape)):
            j = k - (len(shape) - len(vshape))
            per_axis.append(0 if j < 0 or (vshape[j] == 1 and shape[k] != 1) else vstrides[j])
        return self.offset(per_axis)

    def offset(self, axis_strides: list[Dim]) -> str:
        """sum over the group's axes of coordinate * stride, from the flat index."""
        return flat_offset("i", self.shape, axis_strides, self.dim)

    def coord(self, axis: int) -> str:
        if axis not in self.coords:
            name = f"ax{axis}"
            inner = product(self.shape[axis + 1:])
            e = "i" if inner == 1 else f"i / {self.dim(inner)}"
            if axis > 0:
                e = f"({e}) % {self.dim(self.shape[axis])}" if inner != 1 else f"i % {self.dim(self.shape[axis])}"
            self.statement(f"const int {name} = {e};")
            self.coords[axis] = name
        return self.coords[axis]

    def split(self, axis: int) -> tuple[str, str, str, str]:
        """(outer index, coordinate along axis, index within the inner block, inner block size) of element i."""
        inner = product(self.shape[axis + 1:])
        inner_c = self.dim(inner)
        outer = "0" if axis == 0 else f"i / {self.dim(product(self.shape[axis:]))}"
        rest = "0" if inner == 1 else f"i % {inner_c}"
        return outer, self.coord(axis), rest, inner_c
