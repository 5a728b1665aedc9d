"""Patterns turned back into the layer they decompose, before import: a layer norm written out as ReduceMean, Sub,
Pow, ReduceMean, Add, Sqrt, Div, Mul and Add (what exporters emit before opset 17) becomes one LayerNormalization
node, which imports as `layer_norm(x)`; a causal mask written as Where(Less(Unsqueeze(Range(0, T)), Range(0, T)),
-inf, scores) (as bmc exports attention(causal = true)) becomes `causal_mask(scores)`. A pattern is replaced only
when it is exactly that computation: for the layer norm the same input and axis throughout, an exponent of 2, a
scalar epsilon, and no intermediate result used elsewhere. Then only the nodes the graph's outputs need are kept."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def rewrite(graph: onnx.GraphProto, opset: int) -> list[onnx.NodeProto]:
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    users: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    replaced: dict[int, onnx.NodeProto | None] = {}  # a node's replacement: the fused node, or None (dropped)
    patterns = (("ReduceMean", lambda n: _layer_norm(n, users, consts, outputs, opset)),
                ("Erf", lambda n: _exact_gelu(n, users, consts, outputs)),
                ("Where", lambda n: _causal_mask(n, users, consts)))
    for op_type, match in patterns:  # each pattern is matched from one of its nodes, its last node replaced
        for n in graph.node:
            found = match(n) if n.op_type == op_type and id(n) not in replaced else None
            if found is not None:
                fused, parts = found
                for p in parts:
                    replaced[id(p)] = None
                replaced[id(parts[-1])] = fused
    nodes = [replaced.get(id(n), n) for n in graph.node if replaced.get(id(n), n) is not None]
    return _needed(nodes, outputs)


def _needed(nodes: list[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    """The nodes the outputs depend on, in their order (a node nothing reads is not imported, nor reported)."""
    wanted, keep = set(outputs), []
    for n in reversed(nodes):
        if any(o in wanted for o in n.output):
            keep.append(n)
            wanted.update(i for i in n.input if i)
    return keep[::-1]


CAUSAL = "bmc.CausalMask"  # the node a causal-mask pattern becomes (rules_math.py imports it)


def _causal_mask(where: onnx.NodeProto, users, consts) -> tuple[onnx.NodeProto, list] | None:
    """Where(i < j, -inf, scores) with i and j the rows and columns of Range(0, T): causal_mask(scores)."""
    by_output = {o: u for us in users.values() for u in us for o in u.output}
    cond, fill, scores = where.input
    less = by_output.get(cond)
    if less is None or less.op_type != "Less" or _scalar(consts, fill) != float("-inf"):
        return None
    rows, cols = (by_output.get(i) for i in less.input)
    if rows is None or cols is None or rows.op_type != "Unsqueeze" or cols.op_type != "Range":
        return None
    axes = {a.name: onnx.helper.get_attribute_value(a) for a in rows.attribute}.get("axes")
    if axes is None and len(rows.input) > 1:
        axes = consts.get(rows.input[1])
        axes = None if axes is None else axes.reshape(-1).tolist()
    if rows.input[0] != cols.output[0] or list(axes or []) not in ([1], [-1]):
        return None
    start, limit, delta = cols.input
    if _scalar(consts, start) != 0.0 or _scalar(consts, delta) != 1.0:
        return None
    fused = onnx.helper.make_node(CAUSAL, [scores, limit], list(where.output),
                                  name=", ".join(n.name or n.op_type for n in (cols, rows, less, where)))
    return fused, [where]  # the Range, Unsqueeze and Less only it reads go as the outputs' needs say


def _only(users, name: str, outputs: set[str], op: str | tuple[str, ...]) -> list[onnx.NodeProto] | None:
    us = users.get(name, [])
    ops = (op,) if isinstance(op, str) else op
    if name in outputs or not us or any(u.op_type not in ops for u in us):
        return None
    return us


def _last_axis(node: onnx.NodeProto, consts, opset: int) -> bool:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1:
        axes = consts.get(node.input[1])
        axes = None if axes is None else axes.reshape(-1).tolist()
    return axes is not None and list(axes) == [-1] and attrs.get("keepdims", 1) == 1


def _scalar(consts, name: str) -> float | None:
    v = consts.get(name)
    return None if v is None or v.size != 1 else float(v.reshape(()))


def _other(node: onnx.NodeProto, name: str) -> str | None:
    rest = [i for i in node.input if i != name]
    return rest[0] if len(rest) == 1 and len(node.input) == 2 else None


def _layer_norm(mean1, users, consts, outputs, opset):
    x = mean1.input[0]
    if not _last_axis(mean1, consts, opset):
        return None
    subs = _only(users, mean1.output[0], outputs, "Sub")
    if not subs or len(subs) != 1 or list(subs[0].input) != [x, mean1.output[0]]:
        return None
    sub = subs[0]
    dev = sub.output[0]
    us = users.get(dev, [])
    if dev in outputs or len(us) != 2:
        return None
    square = next((u for u in us if (u.op_type == "Pow" and u.input[0] == dev and _scalar(consts, u.input[1]) == 2.0)
                   or (u.op_type == "Mul" and list(u.input) == [dev, dev])), None)
    div = next((u for u in us if u.op_type == "Div" and u.input[0] == dev), None)
    if square is None or div is None or square is div:
        return None
    chain = [mean1, sub, square]
    mean2 = _only(users, square.output[0], outputs, "ReduceMean")
    if not mean2 or len(mean2) != 1 or not _last_axis(mean2[0], consts, opset):
        return None
    add = _only(users, mean2[0].output[0], outputs, "Add")
    if not add or len(add) != 1:
        return None
    eps = _scalar(consts, _other(add[0], mean2[0].output[0]) or "")
    sqrt = _only(users, add[0].output[0], outputs, "Sqrt")
    if eps is None or eps <= 0 or not sqrt or len(sqrt) != 1 or div.input[1] != sqrt[0].output[0]:
        return None
    chain += [mean2[0], add[0], sqrt[0], div]
    mul = _only(users, div.output[0], outputs, "Mul")
    if not mul or len(mul) != 1:
        return None
    gamma = _other(mul[0], div.output[0])
    bias = _only(users, mul[0].output[0], outputs, "Add")
    if gamma not in consts or not bias or len(bias) != 1:
        return None
    beta = _other(bias[0], mul[0].output[0])
    if beta not in consts or consts[gamma].ndim != 1 or consts[beta].ndim != 1:
        return None
    chain += [mul[0], bias[0]]
    fused = onnx.helper.make_node("LayerNormalization", [x, gamma, beta], [bias[0].output[0]],
                                  name=", ".join(n.name or n.op_type for n in chain), axis=-1,
                                  epsilon=float(np.float32(eps)))
    return fused, chain


def _exact_gelu(erf: onnx.NodeProto, users, consts, outputs) -> tuple[onnx.NodeProto, list] | None:
    """x * 0.5 * (1 + erf(x / √2)) in the orders exporters write it (Div by √2 or Mul by 1/√2; the halving first or
    last): one Gelu, which imports as gelu(x, approximate = "none"). The constants may be √2 rounded to f32."""
    by_output = {o: u for us in users.values() for u in us for o in u.output}
    scale = by_output.get(erf.input[0])
    if scale is None or scale.op_type not in ("Div", "Mul") or _single(users, scale.output[0], outputs) is None:
        return None
    x = scale.input[0]
    c = _scalar(consts, scale.input[1])
    if c is None or abs(c - (2 ** 0.5 if scale.op_type == "Div" else 2 ** -0.5)) > 1e-6:
        return None
    add = _single(users, erf.output[0], outputs)
    if add is None or add.op_type != "Add" or _scalar(consts, _other(add, erf.output[0]) or "") != 1.0:
        return None
    chain = [scale, erf, add]
    first = _single(users, add.output[0], outputs)
    if first is None or first.op_type != "Mul":
        return None
    other = _other(first, add.output[0])
    if other == x:  # (1 + erf) * x, then * 0.5
        last = _single(users, first.output[0], outputs)
        if last is None or last.op_type != "Mul" or _scalar(consts, _other(last, first.output[0]) or "") != 0.5:
            return None
    else:  # (1 + erf) * (x * 0.5)
        half = by_output.get(other)
        if half is None or half.op_type != "Mul" or x not in half.input or \
                _scalar(consts, _other(half, x) or "") != 0.5 or _single(users, half.output[0], outputs) is None:
            return None
        chain.insert(0, half)
        last = first
    if last is not first:
        chain.append(first)
    chain.append(last)
    fused = onnx.helper.make_node("Gelu", [x], list(last.output), name=", ".join(n.name or n.op_type for n in chain))
    return fused, chain


def _single(users, name: str, outputs: set[str]) -> onnx.NodeProto | None:
    """The one node that reads `name`, if exactly one does and it is not a graph output."""
    us = users.get(name, [])
    return us[0] if len(us) == 1 and name not in outputs else None
