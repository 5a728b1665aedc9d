"""Rebuilding a graph node by node: the one mechanism every transforming pass uses."""

from __future__ import annotations

from collections.abc import Callable

from bmc.ir.graph import Builder, Graph, Node, Value

# A rule gets a builder positioned in the new graph, the old node and its inputs already mapped into the new graph.
# It returns the node's replacement outputs, or None to copy the node unchanged.
Rule = Callable[[Builder, Node, tuple[Value, ...]], tuple[Value, ...] | None]


def rewrite(graph: Graph, rule: Rule) -> Graph:
    new = graph.copy_frame()
    b = Builder(new)
    env: dict[Value, Value] = {v: v for v in graph.inputs}
    for node in graph.nodes:
        inputs = tuple(env[v] for v in node.inputs)
        b.span = node.span
        outs = rule(b, node, inputs)
        if outs is None:
            outs = copy_node(new, node, inputs)
        for old, out in zip(node.outputs, outs, strict=True):
            if not out.name:
                out.name = old.name
            env[old] = out
    new.outputs = {k: env[v] for k, v in graph.outputs.items()}
    return new


def copy_node(graph: Graph, node: Node, inputs: tuple[Value, ...]) -> tuple[Value, ...]:
    """Append a copy of `node` reading `inputs`, keeping the same value objects when nothing changed."""
    if inputs == node.inputs:
        graph.nodes.append(node)
        return node.outputs
    outs = tuple(Value(o.type, o.name, None, o.span) for o in node.outputs)
    copy = Node(node.op, inputs, outs, node.span)
    for o in outs:
        o.producer = copy
    graph.nodes.append(copy)
    return outs
