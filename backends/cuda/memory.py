"""Memory planning: every stored value gets a place, and the transient ones share one device arena.

* Parameters, optimizer state and gradient buffers (`param`, `state` and `grad` inputs: ROLE_STORAGE) live in the
  context's persistent tensors for the whole run. A train step's new value of a parameter or state is written
  straight into its tensor when nothing reads the old value later (or only the same fused kernel reads it, at the
  same index: the Adam update runs in place); otherwise it is copied there at the end. The split step's `gradients`
  writes each `grad/<param>` output into the gradient buffer of that name, which `apply` then reads as its `grad`
  input (the host reads and writes those buffers between the two calls: an all-reduce).
* Data inputs get slots of their own for the whole call (the batch is copied in once).
* Other values take a slot when their kernel writes them and give it back after their last reader. A fused kernel
  may write its result into the slot of an input that dies there and is read at the same index. Workspaces of
  kernels (a reduction's per-row partials, a scan's body) are slots that live for that kernel only.

Sizes depend on symbolic dims, so a slot's size is a C expression (the largest of its values' sizes); the host
computes the offsets once per batch size (`plan_*` in model.cu) and the arena grows only when a bigger batch comes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bmc.backends.cuda.ctext import SIZES
from bmc.backends.cuda.kernel import where
from bmc.backends.cuda.schedule import POINTWISE, Item, Schedule

from bmc.ir import dims
from bmc.ir.graph import Graph, Value
from bmc.ir.types import TensorType

# where each role of a graph input lives: "tensor" (the context's persistent tensors, by name), "slot" (the arena, a
# data input copied in once per call) or "hyper" (a scalar passed by value)
ROLE_STORAGE = {"param": "tensor", "state": "tensor", "grad": "tensor", "input": "slot", "target": "slot",
                "hyper": "hyper"}
PERSISTENT_ROLES = tuple(role for role, kind in ROLE_STORAGE.items() if kind == "tensor")


def persistent_output(key: str) -> tuple[str, str] | None:
    """(role, name) of the input whose tensor an output `params/<param>` or `state/<state>` is written back into;
    None for other outputs."""
    prefix, _, name = key.partition("/")
    role = {"params": "param", "state": "state"}.get(prefix)
    return (role, name) if role and name else None


def gradient_buffers(graph: Graph) -> dict[str, Value]:
    """The outputs `grad/<param>` that are the gradient of a parameter of the graph (an input of that name and
    type), by key: each is written into the persistent tensor of that name, where `apply` reads it as an input of
    role `grad`. (Other graphs' outputs called `grad/x`, such as a gradient check's, are ordinary outputs.)"""
    params = {v.name: v for v in graph.inputs_with_role("param")}
    return {key: v for key, v in graph.outputs.items()
            if key.startswith("grad/") and (p := params.get(key[len("grad/"):])) is not None and p.type == v.type}


def byte_size(t: TensorType, symbols: dict[str, str]) -> str:
    """A value's size in bytes as a C expression of type size_t: `(size_t)3136 * N`."""
    static, syms = dims.factors(dims.product(list(t.shape)))
    static *= SIZES[t.dtype]
    if not syms:
        return str(static)
    return " * ".join([f"(size_t){static}", *(symbols[s] for s in syms)])


@dataclass(eq=False)
class Slot:
    index: int  # its position in the function's offset table
    sizes: list[str] = field(default_factory=list)  # C expressions; the slot is as large as the largest
    holds: list[str] = field(default_factory=list)  # what lives there in turn (the layout's comment)
    nested: Plan | None = None  # a scan's workspace: the body's own plan lives inside it


@dataclass
class Storage:
    kind: str  # "slot", "tensor" (persistent: ROLE_STORAGE), "external" (a pointer given by the caller), "hyper"
    slot: Slot | None = None
    tensor: int = -1
    pointer: str = ""


@dataclass
class Plan:
    slots: list[Slot] = field(default_factory=list)
    storage: dict[Value, Storage] = field(default_factory=dict)
    workspaces: dict[Item, list[Slot]] = field(default_factory=dict)
    copies: list[tuple[int, Value]] = field(default_factory=list)  # (tensor, value) copied at the end
    pinned: list[Value] = field(default_factory=list)  # data inputs, in graph order


@dataclass
class Request:
    """A kernel's workspace: its size in bytes, or a nested plan (a scan's body) laid out inside it."""

    size: str = ""
    nested: Plan | None = None
    why: str = ""  # what the kernel keeps there, for the layout's comment


class Planner:
    def __init__(self, schedule: Schedule, symbols: dict[str, str], counter: list[int],
                 tensors: dict[Value, int], external: dict[Value, str],
                 workspace: Callable[[Item], list[Request]], used_outputs: Callable[[Item], list[Value]],
                 keep_inputs: bool = False, sinks: dict[str, int] | None = None):
        self.s = schedule
        self.sinks = sinks or {}  # output key -> persistent tensor that no input holds (gradients' grad buffers)
        self.keep_inputs = keep_inputs  # a scan body: every input is a buffer the loop fills
        self.symbols = symbols
        self.counter = counter  # shared with nested plans: offset indices are unique per function
        self.tensors = tensors
        self.external = external
        self.workspace = workspace
        self.used_outputs = used_outputs
        self.plan = Plan()
        self.free: list[Slot] = []
        self.live: dict[Value, Slot] = {}  # values in slots that someone still reads

    def new_slot(self) -> Slot:
        slot = Slot(self.counter[0])
        self.counter[0] += 1
        self.plan.slots.append(slot)
        return slot

    def take(self, size: str) -> Slot:
        for k in range(len(self.free) - 1, -1, -1):  # a free slot of exactly this size, else the last freed one
            if self.free[k].sizes and self.free[k].sizes[-1] == size:
                return self.free.pop(k)
        return self.free.pop() if self.free else self.new_slot()

    def place(self, v: Value, slot: Slot) -> None:
        slot.sizes.append(byte_size(v.type, self.symbols))
        slot.holds.append(f"{v.name} {v.type}" if v.name else
                          f"{v.type} of {where(v.producer)}" if v.producer is not None else str(v.type))
        self.plan.storage[v] = Storage("slot", slot)

    def run(self) -> Plan:
        s, plan = self.s, self.plan
        graph = s.graph
        end = len(s.items)
        last: dict[Value, int] = {}
        for item in s.items:
            for v in item.inputs:
                last[v] = item.index
        for v in graph.outputs.values():
            last[s.root(v)] = end
        for v in graph.inputs:
            role = graph.roles[v]
            if v in self.tensors:
                plan.storage[v] = Storage("tensor", tensor=self.tensors[v])
            elif v in self.external:
                plan.storage[v] = Storage("external", pointer=self.external[v])
            elif role == "hyper":
                plan.storage[v] = Storage("hyper")
            elif v in last or self.keep_inputs:
                self.place(v, self.new_slot())
                plan.pinned.append(v)
        self._persistent_outputs(last)

        producer = {o: item for item in s.items for o in item.outputs}
        for item in s.items:
            t = item.index
            for v, slot in list(self.live.items()):
                if last.get(v, producer[v].index if v in producer else -1) < t:
                    del self.live[v]
                    self.free.append(slot)
            for o in self.used_outputs(item):
                if o in plan.storage:
                    continue
                slot = self._in_place(item, o, last)
                if slot is None:
                    slot = self.take(byte_size(o.type, self.symbols))
                self.place(o, slot)
                self.live[o] = slot
            scratch = []
            for request in self.workspace(item):  # a nested plan's slot is its own (its layout lives in it)
                slot = self.new_slot() if request.nested else self.take(request.size)
                slot.sizes.append(request.size)
                slot.nested = request.nested
                slot.holds.append(f"{request.why or 'workspace'} of {where(item.node)}")
                scratch.append(slot)
            plan.workspaces[item] = scratch
            self.free.extend(x for x in scratch if x.nested is None)
        return plan

    def _persistent_outputs(self, last: dict[Value, int]) -> None:
        """params/x and state/x outputs: into their tensor in place when safe, else copied at the end. grad/x
        outputs (sinks: gradient buffers that no input of this graph holds): the value, or the one it is a reshape
        of, computed in its buffer, else copied there at the end."""
        s, plan = self.s, self.plan
        by_name = {(s.graph.roles[v], v.name): v for v in self.tensors}
        producer = {o: item for item in s.items for o in item.outputs}
        claimed: set[Value] = set()
        for key, v in s.graph.outputs.items():
            if key in self.sinks:
                root = s.root(v)
                if root in producer and root not in plan.storage:
                    plan.storage[root] = Storage("tensor", tensor=self.sinks[key])
                else:  # an input, a constant, or a value another buffer already holds
                    plan.copies.append((self.sinks[key], v))
                continue
            target = by_name.get(persistent_output(key) or ("", ""))
            if target is None or v is target:
                continue
            item = producer.get(v)
            ok = (item is not None and s.root(v) is v and target not in claimed and v not in plan.storage
                  and v.type == target.type and last.get(target, -1) <= item.index)
            if ok and last.get(target, -1) == item.index:
                ok = item.kind == "group" and self._same_index_only(item, target)
            if ok:
                plan.storage[v] = Storage("tensor", tensor=self.tensors[target])
                claimed.add(target)
            else:
                plan.copies.append((self.tensors[target], v))

    def _same_index_only(self, item: Item, root: Value) -> bool:
        """Every read of `root` in this group is by a pointwise node at the group's own index."""
        for node in item.nodes:
            for v in node.inputs:
                if self.s.root(v) is root and (self.s.kinds[node] != POINTWISE or v.type.shape != item.shape):
                    return False
        return True

    def _in_place(self, item: Item, out: Value, last: dict[Value, int]) -> Slot | None:
        if item.kind != "group" or out.type.shape != item.shape:
            return None
        size = byte_size(out.type, self.symbols)
        for r in item.inputs:
            slot = self.live.get(r)
            if slot is None or last.get(r) != item.index or byte_size(r.type, self.symbols) != size:
                continue
            if r.type.dtype == out.type.dtype and self._same_index_only(item, r):
                del self.live[r]
                return slot
        return None


def plan(schedule: Schedule, symbols: dict[str, str], counter: list[int], tensors: dict[Value, int],
         external: dict[Value, str], workspace: Callable[[Item], list[Request]],
         used_outputs: Callable[[Item], list[Value]], keep_inputs: bool = False,
         sinks: dict[str, int] | None = None) -> Plan:
    return Planner(schedule, symbols, counter, tensors, external, workspace, used_outputs, keep_inputs, sinks).run()
