"""The stable text form of the IR (`bmc ir FILE`).

    graph mlp(input %image: f32[N, 784], target %label: i64[N], param %h.W: f32[784, 128], ...) {
      %h: f32[N, 128] = dense(%image, %h.W, %h.b)  # mlp.bm:6
      ...
      return probs = %probs, loss = %loss
    }
"""

from __future__ import annotations

from bmc.ir.graph import Graph, Node
from bmc.ir.names import Namer
from bmc.ops.elementwise import Const


def format_attr(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_node(node: Node, namer: Namer, locations: bool = True) -> str:
    outs = ", ".join(f"%{namer.name(o)}: {o.type}" for o in node.outputs)
    attrs = node.op.attrs()
    if isinstance(node.op, Const):
        rhs = f"const({format_attr(node.op.value)})"
    else:
        args = [f"%{namer.name(v)}" for v in node.inputs]
        args += [f"{k}={format_attr(v)}" for k, v in attrs.items() if not isinstance(v, Graph)]
        rhs = f"{node.op.name}({', '.join(args)})"
    where = f"  # {node.span.location}" if node.span is not None and locations else ""
    text = f"{outs} = {rhs}{where}"
    for k, v in attrs.items():
        if isinstance(v, Graph):  # a body graph, printed nested below its node
            text += f"\n    {k}: " + print_graph(v, locations=locations).replace("\n", "\n    ")
    return text


def print_graph(graph: Graph, *, locations: bool = True) -> str:
    namer = Namer()
    namer.name_graph(graph)
    lines = [f"graph {graph.name}("]
    for v in graph.inputs:
        lines.append(f"    {graph.roles[v]} %{namer.name(v)}: {v.type},")
    lines.append(") {")
    for node in graph.nodes:
        lines.append("  " + format_node(node, namer, locations))
    outs = ", ".join(f"{k} = %{namer.name(v)}" for k, v in graph.outputs.items())
    lines.append(f"  return {outs}")
    lines.append("}")
    return "\n".join(lines)
