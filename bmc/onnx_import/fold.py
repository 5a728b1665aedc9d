"""Folding at import: a node whose inputs are all known is computed here, so shape computations (`Shape`, `Gather`,
`Concat`, ...) become the dims they compute. Dims may be symbolic: a `Shape` of a tensor [N, 128] is the vector
[N, 128] (an object array), and the shape arithmetic below carries N through; anything else on symbols is not
folded. Numeric folding runs the node in onnx's reference evaluator, the standard's own semantics."""

from __future__ import annotations

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

from bmc.ir import dims
from bmc.onnx_import.context import Unsupported, attrs
from bmc.onnx_import.values import DTYPES, Filled, Known

SYMBOLIC = {"Shape", "Gather", "Concat", "Unsqueeze", "Squeeze", "Slice", "Cast", "Identity", "Mul", "Div",
            "Reshape", "Flatten", "ReduceProd", "Equal", "Where", "Expand", "Neg", "Abs", "Max", "Min"}


def fold(node: onnx.NodeProto, inputs: list[Known | None], opset: int) -> list[Known | Filled]:
    if node.op_type == "ConstantOfShape" and inputs and inputs[0] is not None and inputs[0].symbolic:
        return [_filled(node, inputs[0].value)]
    if node.op_type == "Expand" and inputs[1].symbolic and not inputs[0].symbolic and inputs[0].value.size and \
            np.all(inputs[0].value == inputs[0].value.reshape(-1)[0]):  # one value over a dynamic shape
        x = inputs[0].value
        dtype = DTYPES.get(onnx.helper.np_dtype_to_tensor_dtype(x.dtype))
        if dtype is None:
            raise Unsupported(f"it expands a tensor of {x.dtype}, a type the language does not have")
        target = list(inputs[1].value.reshape(-1))
        shape = [t if not (isinstance(t, int) and t == 1) else d for t, d in
                 zip(target, [1] * (len(target) - x.ndim) + list(x.shape), strict=True)]
        return [Filled(x.reshape(-1)[0].item(), dtype, tuple(shape))]
    if any(k is not None and k.symbolic for k in inputs):
        return [known_dims(v) for v in _symbolic(node, [None if k is None else k.value for k in inputs], opset)]
    feeds, names = {}, []
    for i, k in enumerate(inputs):
        name = f"i{i}"
        names.append(name if k is not None else "")
        if k is not None:
            feeds[name] = k.value
    inner = onnx.helper.make_node(node.op_type, names, [f"o{i}" for i in range(len(node.output))],
                                  domain=node.domain, **attrs(node))
    graph = onnx.helper.make_graph([inner], "fold", [onnx.helper.make_tensor_value_info(n, _elem(feeds[n]), None)
                                                     for n in names if n],
                                   [onnx.helper.make_tensor_value_info(o, 0, None) for o in inner.output])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    try:
        outs = ReferenceEvaluator(model).run(None, feeds)
    except Exception as e:
        raise Unsupported(f"folding it at import failed: {type(e).__name__}: {e}") from None
    return [Known(np.asarray(o)) for o in outs]


def known_dims(v) -> Known:
    """A shape computation's result: an int64 array once no symbol is left in it, else an object array."""
    a = np.asarray(v, dtype=object)
    if all(isinstance(d, int | np.integer) for d in a.reshape(-1)):
        return Known(a.astype(np.int64))
    if all(isinstance(d, bool | np.bool_) for d in a.reshape(-1)):
        return Known(a.astype(bool))
    return Known(a)


def _filled(node: onnx.NodeProto, shape: np.ndarray) -> Filled:
    """ConstantOfShape of a symbolic shape: one value, kept for the rules that take it (zero RNN states)."""
    a = attrs(node)
    fill = onnx.numpy_helper.to_array(a["value"]).reshape(-1) if "value" in a else np.zeros(1, np.float32)
    dtype = DTYPES.get(onnx.helper.np_dtype_to_tensor_dtype(fill.dtype))
    if dtype is None:
        raise Unsupported(f"it fills a tensor of {fill.dtype}, a type the language does not have")
    return Filled(fill[0].item(), dtype, tuple(shape.tolist()))


def _elem(a: np.ndarray) -> int:
    return onnx.helper.np_dtype_to_tensor_dtype(np.asarray(a).dtype)


def _obj(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def shape_of(shape: tuple) -> np.ndarray:
    return _obj(shape)


def _symbolic(node: onnx.NodeProto, xs: list, opset: int) -> list[np.ndarray]:
    """Shape arithmetic on vectors of dims (ints and symbolic products)."""
    op, a = node.op_type, attrs(node)
    if op not in SYMBOLIC:
        raise Unsupported(f"it computes {op} on symbolic dims ({_show(xs)}), which the language cannot express")
    x = xs[0]
    if op in ("Identity", "Cast"):
        return [x]
    if op == "Gather":
        idx = np.asarray(xs[1]).astype(np.int64)
        return [np.take(x, idx, axis=a.get("axis", 0))]
    if op == "Concat":
        return [np.concatenate([np.asarray(v, dtype=object).reshape(-1) if np.ndim(v) else _obj([v])
                                for v in xs if v is not None])]
    if op in ("Unsqueeze", "Squeeze", "Reshape", "Flatten", "Expand"):
        if op == "Unsqueeze":
            axes = a.get("axes") if opset < 13 else [int(i) for i in np.asarray(xs[1]).reshape(-1)]
            out = np.asarray(x, dtype=object)
            for ax in sorted(int(i) % (out.ndim + len(axes)) for i in axes):
                out = np.expand_dims(out, ax)
            return [out]
        if op == "Squeeze":
            return [np.asarray(x, dtype=object).reshape(-1) if np.ndim(x) else x]
        if op == "Reshape" and np.ndim(x) <= 1 and len(np.asarray(xs[1]).reshape(-1)) <= 1:
            return [np.asarray(x, dtype=object).reshape(-1) if np.asarray(xs[1]).size else np.asarray(x).reshape(())]
        if op == "Expand":
            return [np.broadcast_to(np.asarray(x, dtype=object), tuple(int(d) for d in xs[1])).copy()]
        raise Unsupported(f"it reshapes a symbolic shape vector ({_show(xs)})")
    if op == "Slice":
        bounds = [v for k in (1, 2) for v in np.asarray(xs[k]).reshape(-1)]
        if any(not isinstance(v, int | np.integer) for v in bounds):
            raise Unsupported(f"it slices at the symbolic position {[str(v) for v in bounds]} (as a table of "
                              "positions cut to a dynamic sequence length); the language has no slices of symbolic "
                              "length")
        if np.ndim(x) != 1:
            raise Unsupported(f"it slices a {np.ndim(x)}-D tensor by symbolic dims ({_show(xs)})")
        starts, ends = (int(v) for v in np.asarray(xs[1]).reshape(-1)), (int(v) for v in np.asarray(xs[2]).reshape(-1))
        steps = [int(v) for v in np.asarray(xs[4]).reshape(-1)] if len(xs) > 4 and xs[4] is not None else [1]
        s, e = next(starts), next(ends)
        return [np.asarray(x, dtype=object)[slice(s, e, steps[0])]]
    if op == "ReduceProd":
        return [np.asarray(dims.product(list(np.asarray(x).reshape(-1))), dtype=object)]
    if op in ("Mul", "Div", "Max", "Min", "Equal", "Neg", "Abs"):
        return [np.vectorize(lambda *v: _arith(op, v), otypes=[object])(*[np.asarray(v, dtype=object) for v in xs])]
    if op == "Where":
        return [np.where(np.asarray(xs[0]).astype(bool), xs[1], xs[2])]
    raise Unsupported(f"it computes {op} on symbolic dims ({_show(xs)})")


def _arith(op: str, v: tuple):
    if op == "Mul":
        return dims.product([v[0], v[1]])
    if op == "Div":
        q = dims.quotient(v[0], v[1])
        if q is None:
            raise Unsupported(f"it divides {v[0]} by {v[1]}, which is not exact")
        return q
    if op == "Equal":
        return v[0] == v[1]
    if all(isinstance(i, int) for i in v):
        return {"Max": max, "Min": min}.get(op, lambda a: -a if op == "Neg" else abs(a))(*v)
    if op in ("Max", "Min") and any(isinstance(i, int) and i <= 1 for i in v):  # max(N, 1) is N, min(N, 0) is 0
        sym = next(i for i in v if not isinstance(i, int))
        small = next(i for i in v if isinstance(i, int))
        return sym if op == "Max" else small
    raise Unsupported(f"it computes {op} of the symbolic dims {list(v)}")


def _show(xs: list) -> str:
    return ", ".join("?" if x is None else str(np.asarray(x).tolist()) for x in xs)
