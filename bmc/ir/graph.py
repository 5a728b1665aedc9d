"""The SSA graph: values, nodes and graphs, and the builder that creates nodes with inferred types.

A `Graph` is a list of nodes in topological order. Its inputs are values with a role:
`input` and `target` (data), `param` (trainable weights), `state` (optimizer and other run state), `hyper`
(scalars such as the learning rate, fed each step so schedules need no recompilation) and `grad` (the gradients
the second half of a split train step takes, bmc/train/step.py).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bmc.diagnostics import Span
from bmc.ir.types import TensorType

if TYPE_CHECKING:
    from bmc.ops.base import Op

_ids = itertools.count()

ROLES = ("input", "target", "param", "state", "hyper", "grad")


class Value:
    """One SSA value. `name` is a hint from the `.bm` file used for printing and generated code."""

    __slots__ = ("id", "name", "producer", "span", "type")

    def __init__(self, type: TensorType, name: str = "", producer: Node | None = None, span: Span | None = None):
        self.id = next(_ids)
        self.type = type
        self.name = name
        self.producer = producer
        self.span = span

    def __repr__(self) -> str:
        return f"Value({self.name or self.id}: {self.type})"


class Node:
    __slots__ = ("inputs", "op", "outputs", "span")

    def __init__(self, op: Op, inputs: tuple[Value, ...], outputs: tuple[Value, ...], span: Span | None):
        self.op = op
        self.inputs = inputs
        self.outputs = outputs
        self.span = span

    def __repr__(self) -> str:
        return f"Node({self.op}, {self.inputs}) -> {self.outputs}"


@dataclass
class ParamInfo:
    """How a parameter or state value is initialized, and how training treats it."""

    init: Any  # a bmc.init.Init
    trainable: bool = True
    decay: bool = True  # eligible for L1/L2 penalties and weight decay (weights, not biases)
    span: Span | None = None
    # (fan_in, fan_out) for Glorot and He initializers, given by layers whose weight layout is not [in, out]
    # (a recurrent W is [gates * hidden, features]); None: from the shape (bmc.init.fans)
    fans: tuple[int, int] | None = None


@dataclass(frozen=True)
class DimLimit:
    """A symbolic dim the graph needs to be at most `limit` (see `Graph.dim_limits`)."""

    symbol: str
    limit: int
    span: Span | None

    def message_parts(self) -> tuple[str, str]:
        """The error for a value v is `head + str(v) + tail` (generated code fills in v at run time)."""
        where = f"{self.span.location}: {self.span.text()}: " if self.span is not None else ""
        tail = f", but this model takes at most {self.symbol} = {self.limit}"
        return f"{where}the inputs have {self.symbol} = ", tail

    def message(self, value: int) -> str:
        head, tail = self.message_parts()
        return f"{head}{value}{tail}"


@dataclass
class Graph:
    name: str
    inputs: list[Value] = field(default_factory=list)
    roles: dict[Value, str] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    outputs: dict[str, Value] = field(default_factory=dict)
    param_info: dict[Value, ParamInfo] = field(default_factory=dict)
    doc: dict[str, str] = field(default_factory=dict)  # output name -> one-line description
    # where the parts of a graph built in pieces begin, as node indices (the unoptimized train step's "backward" and
    # "optimizer"): what `bmc graph --train` sets apart; a pass that rebuilds the graph starts a new one without them
    sections: dict[str, int] = field(default_factory=dict)

    def add_input(self, type: TensorType, name: str, role: str, span: Span | None = None) -> Value:
        assert role in ROLES, role
        v = Value(type, name, None, span)
        self.inputs.append(v)
        self.roles[v] = role
        return v

    def inputs_with_role(self, *roles: str) -> list[Value]:
        return [v for v in self.inputs if self.roles[v] in roles]

    @property
    def params(self) -> list[Value]:
        return self.inputs_with_role("param")

    def symbols(self) -> list[str]:
        """Symbolic dims in input order, each with its first binding (input value, axis)."""
        seen: list[str] = []
        for v in self.inputs:
            for d in v.type.shape:
                if isinstance(d, str) and d not in seen:
                    seen.append(d)
        return seen

    def dim_limits(self) -> list[DimLimit]:
        """Upper bounds the graph puts on its symbolic dims: a slice from 0 to a symbolic dim (the first T rows of
        a table of learned positions) needs the dim to be at most the sliced axis's size. Generated code checks them
        when it binds the dims, so a longer input is a clear error, never an out-of-bounds read or a broadcast
        error deep inside."""
        limits: dict[str, DimLimit] = {}
        for node in self.nodes:
            found = node.op.dim_limit(*(v.type for v in node.inputs))
            if found is not None and (found[0] not in limits or found[1] < limits[found[0]].limit):
                limits[found[0]] = DimLimit(found[0], found[1], node.span)
        return list(limits.values())

    def users(self) -> dict[Value, list[Node]]:
        out: dict[Value, list[Node]] = {}
        for n in self.nodes:
            for v in n.inputs:
                out.setdefault(v, []).append(n)
        return out

    def copy_frame(self, name: str | None = None) -> Graph:
        """A new graph with the same inputs, roles and parameter info, and no nodes or outputs."""
        return Graph(
            name or self.name,
            list(self.inputs),
            dict(self.roles),
            [],
            {},
            dict(self.param_info),
            dict(self.doc),
        )


class Builder:
    """Appends nodes to a graph, inferring result types through each op's shape rule."""

    def __init__(self, graph: Graph, span: Span | None = None):
        self.graph = graph
        self.span = span  # default span for nodes built without one (autodiff uses the forward node's)

    def emit(self, op: Op, *inputs: Value, span: Span | None = None, name: str = "") -> Any:
        """Add `op(inputs)`; return its value, or a tuple of values for multi-output ops."""
        types = op.infer(*(v.type for v in inputs))
        multi = isinstance(types, tuple)
        types_t = types if multi else (types,)
        span = span or self.span
        outs = tuple(Value(t, name, None, span) for t in types_t)
        node = Node(op, tuple(inputs), outs, span)
        for o in outs:
            o.producer = node
        self.graph.nodes.append(node)
        return outs if multi else outs[0]

    def __call__(self, op: Op, *inputs: Value, **kw: Any) -> Any:
        return self.emit(op, *inputs, **kw)
