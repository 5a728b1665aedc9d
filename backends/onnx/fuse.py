"""Clean-ups on lowered ONNX nodes, so exported graphs are what a person would write (and no larger than
torch.onnx.export's):

* common subexpressions merged (a shape read twice; the forward MaxPool and the one whose indices its gradient
  needs become one MaxPool with both outputs);
* a Transpose of a Transpose becomes one Transpose;
* MatMul (or Gemm) of matrices followed by the Add of a bias becomes one Gemm;
* with constant parameters (the inference export): a BatchNormalization after a Conv whose output nothing else
  reads is folded into the Conv's weights and bias; constants nothing reads are dropped, and a constant derived
  from a parameter (an LSTM weight with ONNX's direction axis, a folded Conv weight) takes the parameter's name
  when the original is gone, with a doc string saying how it was derived; an input's preprocessing prologue
  ((x * scale - mean) / std) before a Gemm or a Conv is folded into its weights and bias.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from onnx import AttributeProto, NodeProto, helper

from .emitter import Emitter


def all_nodes(nodes: list[NodeProto]) -> Iterator[NodeProto]:
    """Nodes, and the nodes of their subgraphs (Scan bodies), recursively."""
    for n in nodes:
        yield n
        for attr in n.attribute:
            if attr.type == AttributeProto.GRAPH:
                yield from all_nodes(list(attr.g.node))


def _readers(nodes: list[NodeProto]) -> dict[str, int]:
    count: dict[str, int] = {}
    for n in all_nodes(nodes):
        for i in n.input:
            count[i] = count.get(i, 0) + 1
    return count


def _rename(nodes: list[NodeProto], mapping: dict[str, str]) -> None:
    if mapping:
        for n in all_nodes(nodes):
            n.input[:] = [mapping.get(i, i) for i in n.input]


def simplify(em: Emitter, protected: set[str]) -> None:
    """The clean-ups that hold for any graph; `protected` names (graph outputs) keep their producers."""
    merge_common(em.nodes, protected)
    merge_transposes(em.nodes, protected)
    fuse_gemm(em, protected)


def _attr_key(n: NodeProto) -> tuple | None:
    if any(a.type == AttributeProto.GRAPH for a in n.attribute):
        return None
    return tuple(sorted((a.name, a.SerializeToString()) for a in n.attribute))


def merge_common(nodes: list[NodeProto], protected: set[str]) -> None:
    """Drop a node that repeats an earlier one (same op, inputs and attributes); an extra optional output it has
    (MaxPool's indices) moves to the earlier node."""
    seen: dict[tuple, NodeProto] = {}
    mapping: dict[str, str] = {}
    for n in list(nodes):
        n.input[:] = [mapping.get(i, i) for i in n.input]
        attrs = _attr_key(n)
        if attrs is None:
            continue
        key = (n.domain, n.op_type, tuple(n.input), attrs)
        kept = seen.get(key)
        if kept is None or protected & set(n.output):
            seen.setdefault(key, n)
            continue
        outs = list(kept.output) + [""] * max(0, len(n.output) - len(kept.output))
        for i, o in enumerate(n.output):
            if not o:
                continue
            if outs[i]:
                mapping[o] = outs[i]
            else:
                outs[i] = o
        kept.output[:] = outs
        nodes.remove(n)
    _rename(nodes, mapping)


def merge_transposes(nodes: list[NodeProto], protected: set[str]) -> None:
    producers = {o: n for n in nodes for o in n.output}
    readers = _readers(nodes)
    for second in [n for n in nodes if n.op_type == "Transpose"]:
        first = producers.get(second.input[0])
        if first is None or first.op_type != "Transpose" or readers[first.output[0]] != 1 or \
                first.output[0] in protected:
            continue
        perm1, perm2 = _perm(first), _perm(second)
        perm = [perm1[p] for p in perm2]
        if perm == sorted(perm) and second.output[0] not in protected:  # they cancel out
            _rename(nodes, {second.output[0]: first.input[0]})
            nodes.remove(second)
        else:
            second.input[0] = first.input[0]
            second.attribute[0].ints[:] = perm
        nodes.remove(first)


def _perm(n: NodeProto) -> list[int]:
    return list(n.attribute[0].ints)


def fuse_gemm(em: Emitter, protected: set[str]) -> None:
    """MatMul(a, b) + c (a, b matrices, c a vector or scalar) -> Gemm(a, b, c)."""
    producers = {o: n for n in em.nodes for o in n.output}
    readers = _readers(em.nodes)
    for add in [n for n in em.nodes if n.op_type == "Add"]:
        for k in (0, 1):
            mm, bias = producers.get(add.input[k]), add.input[1 - k]
            # the op first: another producer (a Split, a Scan) may have a first output that nothing reads
            if mm is None or mm.op_type not in ("MatMul", "Gemm") or readers[mm.output[0]] != 1 or \
                    mm.output[0] in protected or em.ranks.get(bias, 9) > 1:
                continue
            plain_gemm = mm.op_type == "Gemm" and len(mm.input) == 2 and {a.name for a in mm.attribute} <= {
                "transA", "transB"}
            if not (plain_gemm or (mm.op_type == "MatMul" and em.ranks.get(mm.input[0]) == 2
                                   and em.ranks.get(mm.input[1]) == 2)):
                continue
            mm.op_type = "Gemm"
            mm.input.append(bias)
            mm.output[:] = list(add.output)
            mm.name = add.name
            # the Gemm stands where the Add stood: the bias may be computed after the product (x @ w + b ** 1)
            em.nodes.remove(mm)
            em.nodes[em.nodes.index(add)] = mm
            break


def fold_batch_norm(em: Emitter, protected: set[str]) -> None:
    producers = {o: n for n in em.nodes for o in n.output}
    readers = _readers(em.nodes)
    for bn in [n for n in em.nodes if n.op_type == "BatchNormalization" and len(n.output) == 1]:
        conv = producers.get(bn.input[0])
        if conv is None or conv.op_type != "Conv" or readers[conv.output[0]] != 1 or conv.output[0] in protected:
            continue
        w = em.constant_value(conv.input[1])
        has_bias = len(conv.input) > 2 and conv.input[2]
        b = em.constant_value(conv.input[2]) if has_bias else (None if w is None else np.zeros(len(w), w.dtype))
        stats = [em.constant_value(i) for i in bn.input[1:5]]
        if w is None or b is None or any(s is None for s in stats):
            continue
        gamma, beta, mean, var = (s.astype(np.float64) for s in stats)
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        scale = gamma / np.sqrt(var + eps)
        new_w = (w.astype(np.float64) * scale[:, None, None, None]).astype(w.dtype)
        new_b = ((b.astype(np.float64) - mean) * scale + beta).astype(w.dtype)
        how = f"with the batch norm after it folded in (scale {bn.input[1]}, shift {bn.input[2]}, running statistics)"
        bias_origin = conv.input[2] if has_bias else bn.input[2]
        conv.input[:] = [conv.input[0], em.derived_const(new_w, conv.input[1], how),
                         em.derived_const(new_b, bias_origin, how)]
        conv.output[:] = [bn.output[0]]
        conv.name = bn.name
        em.nodes.remove(bn)


def drop_unused_constants(em: Emitter) -> None:
    readers = _readers(em.nodes)
    for name in [k for k in em.initializers if k not in readers]:
        del em.initializers[name]
        del em.constants[name]
    em._const_keys = {k: v for k, v in em._const_keys.items() if v in em.initializers}
    renames = {new: origin for new, (origin, _) in em.derived.items()
               if new in em.initializers and origin not in em.initializers and origin not in readers}
    _rename(em.nodes, renames)
    for new, (origin, how) in em.derived.items():
        if new not in em.initializers:
            continue
        tensor = em.initializers.pop(new)
        tensor.doc_string = f"{origin} {how}"  # the values differ from the parameter's: say how
        name = renames.get(new, new)
        tensor.name = name
        em.initializers[name] = tensor
        em.constants[name] = em.constants.pop(new)


_AFFINE = ("Mul", "Div", "Add", "Sub")


def fold_input_affine(em: Emitter, protected: set[str]) -> None:
    """A chain of Mul, Div, Add and Sub by scalar constants on a graph input (a preprocessing prologue: the model
    computes (x * scale - mean) / std from its raw input) is x * a + b; where it feeds one Gemm or one Conv, perhaps
    through a Flatten or Reshape, it folds into that layer's weights and bias:
    (a x + b) W + c = x (a W) + (c + b sum(W)). A padded Conv takes a pure scale only (b = 0), since its padding
    adds zeros to a x + b, not to x. The model still takes raw inputs, with no extra node."""
    readers = _readers(em.nodes)
    for graph_input in em.inputs:
        chain, a, b, value = [], 1.0, 0.0, graph_input.name
        node = next((n for n in em.nodes if n.op_type in _AFFINE and value in n.input), None)  # others may read x
        while node is not None and node.op_type in _AFFINE and (step := _affine_step(em, node, value)) is not None:
            a, b = a * step[0], b * step[0] + step[1]
            chain.append(node)
            value = node.output[0]
            node = _sole_reader(em, value, readers, protected)
        reshapes = []
        while node is not None and node.op_type in ("Flatten", "Reshape") and node.input[0] == value:
            reshapes.append(node)
            value = node.output[0]
            node = _sole_reader(em, value, readers, protected)
        user = node
        if not chain or user is None or user.input[0] != value or (folded := _fold_affine(em, user, a, b)) is None:
            continue
        how = f"with the input's preprocessing x * {a!r} + {b!r} folded in"
        new_w, new_b = folded
        inputs = [user.input[0], em.derived_const(new_w, user.input[1], how)]
        if new_b is not None:
            inputs.append(em.derived_const(new_b, user.input[2], how))
        user.input[:] = inputs + list(user.input[len(inputs):])
        (reshapes[0] if reshapes else user).input[0] = graph_input.name
        for node in chain:
            em.nodes.remove(node)


def _sole_reader(em: Emitter, name: str, readers: dict[str, int], protected: set[str]) -> NodeProto | None:
    if readers.get(name) != 1 or name in protected:
        return None
    return next(n for n in em.nodes if name in n.input)


def _affine_step(em: Emitter, node: NodeProto, x: str) -> tuple[float, float] | None:
    """(p, q) with node(x) = p x + q, for a Mul, Div, Add or Sub of x and a scalar constant."""
    if len(node.input) != 2 or list(node.input).count(x) != 1:
        return None
    first = node.input[0] == x
    c = em.constant_value(node.input[1] if first else node.input[0])
    if c is None or c.size != 1 or c.dtype.kind != "f":
        return None
    c = float(c.reshape(()))
    if node.op_type == "Mul":
        return c, 0.0
    if node.op_type == "Add":
        return 1.0, c
    if node.op_type == "Sub":
        return (1.0, -c) if first else (-1.0, c)
    return (1.0 / c, 0.0) if first and c != 0 else None  # Div: x / c (c / x is not affine)


def _fold_affine(em: Emitter, user: NodeProto, a: float, b: float) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The weight and bias of a Gemm or Conv reading a x + b instead of x (bias None: unchanged); None when it
    cannot take them (non-constant weights, a shift but no bias to absorb it, a shift into padding)."""
    w = em.constant_value(user.input[1]) if len(user.input) > 1 else None
    bias = em.constant_value(user.input[2]) if len(user.input) > 2 and user.input[2] else None
    if w is None or (b != 0 and bias is None):
        return None
    attrs = {attr.name: helper.get_attribute_value(attr) for attr in user.attribute}
    if user.op_type == "Gemm" and attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0 \
            and not attrs.get("transA", 0):
        axis: int | tuple[int, ...] = 1 if attrs.get("transB", 0) else 0
    elif user.op_type == "Conv" and (b == 0 or _unpadded(attrs)):
        axis = (1, 2, 3)
    else:
        return None
    new_w = (w.astype(np.float64) * a).astype(w.dtype)
    if b == 0:
        return new_w, None
    return new_w, (bias.astype(np.float64) + b * w.astype(np.float64).sum(axis=axis)).astype(bias.dtype)


def _unpadded(conv_attrs: dict) -> bool:
    return not any(conv_attrs.get("pads", [])) and conv_attrs.get("auto_pad", b"NOTSET") in (
        b"NOTSET", "NOTSET", b"VALID", "VALID")
