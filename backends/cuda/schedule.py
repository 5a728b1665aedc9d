"""Fusion: the graph's nodes grouped into the kernels that will run, in order.

Every node is one of
* inline: a constant, or a scalar computed only from constants, sizes and hyper inputs (`lr`): its expression is
  written into each kernel that reads it, and it is never stored;
* alias: a reshape, which shares its input's buffer;
* pointwise: its element i reads its inputs at i (after broadcasting): every elementwise op, and causal masks,
  dropout's random numbers, broadcasts;
* indexed: an element reads stored inputs at computed positions (transpose, slice, concat, one-hot, gather, pooling);
* kernel: everything else (matrix products, reductions, convolutions, scans) has its own kernel rule.

Pointwise and indexed nodes form fused groups: a pointwise node joins (and so merges) the groups that produced its
inputs when they have its shape (so it reads those inputs from registers at the same index) and merging creates no
cycle between kernels; an indexed node reads memory at other positions, so it only starts a group. Each maximal
chain (bias add and activation, a parameter's whole Adam update) becomes one kernel that reads its inputs once and
writes only the values used outside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bmc.ir.graph import Graph, Node, Value
from bmc.ir.types import Dim

INLINE, ALIAS, POINTWISE, INDEXED, KERNEL = "inline", "alias", "pointwise", "indexed", "kernel"


@dataclass(eq=False)
class Item:
    """One kernel (or, for a scan, one host loop of kernels) of the schedule."""

    kind: str  # "group" (fused pointwise/indexed nodes) or "kernel" (one node with a kernel rule)
    nodes: list[Node]
    shape: tuple[Dim, ...] | None = None  # a group's iteration shape
    index: int = 0  # creation order; after ordering, the position in the schedule
    outputs: list[Value] = field(default_factory=list)  # values it writes to memory
    inputs: list[Value] = field(default_factory=list)  # stored values it reads

    @property
    def node(self) -> Node:
        return self.nodes[0]


@dataclass
class Schedule:
    graph: Graph
    items: list[Item]
    inline: set[Value]  # values whose expression is inlined where used
    alias: dict[Value, Value]  # reshape output -> the value whose buffer it shares
    kinds: dict[Node, str]

    def root(self, v: Value) -> Value:
        """The value that owns v's buffer (through reshapes)."""
        while v in self.alias:
            v = self.alias[v]
        return v


def data_inputs(node: Node, shape_only: Callable[[Node, int], bool]) -> list[Value]:
    """The inputs a node reads values of (not those it only takes the shape of, like dropout's random numbers)."""
    return [v for i, v in enumerate(node.inputs) if not shape_only(node, i)]


def build(graph: Graph, classify: Callable[[Node], str], shape_only: Callable[[Node, int], bool]) -> Schedule:
    fuser = _Fuser(graph, classify, shape_only)
    for node in graph.nodes:
        fuser.add(node)
    for v in graph.outputs.values():
        root = fuser.root(v)
        if root in fuser.inline and root.producer is not None:
            fuser.materialize(root)
    live = [item for item in fuser.items if item.index not in fuser.dead]
    schedule = Schedule(graph, _order(live, fuser.ancestors), fuser.inline, fuser.alias, fuser.kinds)
    _connect(schedule, shape_only)
    return schedule


class _Fuser:
    """Greedy fusion in graph order. Each item keeps a bitset of the items it depends on (transitively), so a merge
    that would create a cycle between kernels (a member feeding an outside kernel that feeds another member) is
    refused."""

    def __init__(self, graph: Graph, classify: Callable[[Node], str], shape_only: Callable[[Node, int], bool]):
        self.graph, self.classify, self.shape_only = graph, classify, shape_only
        self.hyper = set(graph.inputs_with_role("hyper"))
        self.inline: set[Value] = set()
        self.alias: dict[Value, Value] = {}
        self.kinds: dict[Node, str] = {}
        self.item_of: dict[Value, Item] = {}  # the item that writes a value (through aliases)
        self.items: list[Item] = []
        self.ancestors: list[int] = []
        self.dead: set[int] = set()  # items merged into others
        self.position = {n: k for k, n in enumerate(graph.nodes)}

    def root(self, v: Value) -> Value:
        while v in self.alias:
            v = self.alias[v]
        return v

    def _bits(self, deps) -> int:
        bits = 0
        for d in deps:
            bits |= self.ancestors[d.index] | (1 << d.index)
        return bits

    def new_item(self, kind: str, node: Node, shape, deps: set[Item]) -> Item:
        item = Item(kind, [node], shape, len(self.items))
        self.items.append(item)
        self.ancestors.append(self._bits(deps))
        return item

    def materialize(self, v: Value) -> None:
        """An inline value that a kernel reads from memory (or a graph output): a one-node group stores it.
        Fused kernels still compute it inline."""
        if v not in self.item_of:
            self.item_of[v] = self.new_item("group", v.producer, v.type.shape, set())
            for a in self.alias:
                if self.root(a) is v:
                    self.item_of[a] = self.item_of[v]

    def indexed_reads_stored(self, members: list[Item]) -> bool:
        """Whether every indexed node of the merged groups still reads values made outside them: it reads memory
        at other positions, so a value computed in the same kernel (held in registers) cannot be its input (a max
        pool of b2 merged with b2's group when a product read both)."""
        made = {self.root(o) for g in members for n in g.nodes for o in n.outputs}
        indexed = [n for g in members for n in g.nodes if self.kinds.get(n) == INDEXED]
        return not any(self.root(v) in made for n in indexed for v in data_inputs(n, self.shape_only))

    def acyclic(self, members: list[Item], deps: set[Item]) -> bool:
        """Whether merging `members` (and a node that also reads `deps`) keeps the kernels acyclic: no item outside
        the merge may both depend on a member and be needed by one."""
        mask = 0
        for g in members:
            mask |= 1 << g.index
        needed = self._bits(d for d in deps if d not in members)
        for g in members:
            needed |= self.ancestors[g.index]
        needed &= ~mask
        while needed:
            low = needed & -needed
            if self.ancestors[low.bit_length() - 1] & mask:
                return False
            needed ^= low
        return True

    def merge(self, members: list[Item], node: Node, deps: set[Item]) -> Item:
        target, mask = members[0], 0
        for g in members:
            mask |= 1 << g.index
        new = self._bits(d for d in deps if d not in members)
        for g in members:
            new |= self.ancestors[g.index]
        new &= ~mask
        for g in members[1:]:
            target.nodes += g.nodes
            self.dead.add(g.index)
            for v, owner in self.item_of.items():
                if owner is g:
                    self.item_of[v] = target
        target.nodes.append(node)
        target.nodes.sort(key=self.position.__getitem__)
        self.ancestors[target.index] = new
        for j, a in enumerate(self.ancestors):  # whoever depended on a member depends on the merged group
            if j != target.index and j not in self.dead and a & mask:
                self.ancestors[j] = (a & ~mask) | (1 << target.index) | new
        return target

    def add(self, node: Node) -> None:
        kind = self.classify(node)
        reads = data_inputs(node, self.shape_only)
        if kind in (KERNEL, INDEXED):
            for v in reads:
                if self.root(v) in self.inline:
                    self.materialize(self.root(v))
        if kind == POINTWISE and node.outputs[0].type.rank == 0 and \
                all(self.root(v) in self.inline or v in self.hyper for v in reads):
            kind = INLINE
        self.kinds[node] = kind
        if kind == INLINE:
            self.inline.update(node.outputs)
            return
        if kind == ALIAS:
            (src,) = node.inputs
            self.alias[node.outputs[0]] = src
            if src in self.item_of:
                self.item_of[node.outputs[0]] = self.item_of[src]
            return
        deps = {self.item_of[v] for v in reads
                if v in self.item_of and not (kind == POINTWISE and self.root(v) in self.inline)}
        if kind == KERNEL:
            item = self.new_item("kernel", node, None, deps)
        else:
            shape = node.outputs[0].type.shape
            chosen: list[Item] = []
            if kind == POINTWISE:  # an indexed node reads memory at other positions: it only starts a group
                for v in reads:
                    group = self.item_of.get(v)
                    if group is None or group in chosen or group.kind != "group" or group.shape != shape or \
                            v not in _members(group):
                        continue
                    if self.acyclic([*chosen, group], deps) and self.indexed_reads_stored([*chosen, group]):
                        chosen.append(group)
            item = self.merge(chosen, node, deps) if chosen else self.new_item("group", node, shape, deps)
        for o in node.outputs:
            self.item_of[o] = item


def _members(group: Item) -> set[Value]:
    return {o for n in group.nodes for o in n.outputs}


def _order(items: list[Item], ancestors: list[int]) -> list[Item]:
    """Items in an order that respects dependencies, otherwise in creation order (deterministic)."""
    done = 0
    ordered: list[Item] = []
    remaining = list(items)
    while remaining:
        for k, item in enumerate(remaining):
            if ancestors[item.index] & ~done == 0:
                ordered.append(remaining.pop(k))
                done |= 1 << item.index
                break
        else:  # pragma: no cover - the fusion never creates cycles
            raise AssertionError("cycle between fused kernels")
    for position, item in enumerate(ordered):
        item.index = position
    return ordered


def _connect(schedule: Schedule, shape_only: Callable[[Node, int], bool]) -> None:
    """Each item's stored inputs and outputs: a value is stored when something outside its item reads it."""
    graph = schedule.graph
    readers: dict[Value, set[Item]] = {}
    node_item = {n: item for item in schedule.items for n in item.nodes}
    for node in graph.nodes:
        if node not in node_item:
            continue
        for v in data_inputs(node, shape_only):
            readers.setdefault(schedule.root(v), set()).add(node_item[node])
    outputs = {schedule.root(v) for v in graph.outputs.values()}
    for item in schedule.items:
        seen: list[Value] = []
        for node in item.nodes:
            for v in data_inputs(node, shape_only):
                r = schedule.root(v)
                if r in seen or (item.kind == "group" and (r in schedule.inline or r in _members(item))):
                    continue
                seen.append(r)
        item.inputs = seen
        if item.kind == "group":
            item.outputs = [o for n in item.nodes for o in n.outputs
                            if o in outputs or any(r is not item for r in readers.get(o, ()))]
        else:
            item.outputs = list(item.node.outputs)
