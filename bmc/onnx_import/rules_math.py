"""Import rules for arithmetic: elementwise ops and activations, comparisons, softmax, reductions, casts."""

from __future__ import annotations

import numpy as np
import onnx

from bmc.onnx_import import expr as X
from bmc.onnx_import.broadcast import axis, broadcast
from bmc.onnx_import.context import Context, Unsupported, attrs, keep_rank, rule, shortest_f32
from bmc.onnx_import.context import shortest_f32 as _f32
from bmc.onnx_import.patterns import CAUSAL
from bmc.onnx_import.values import DTYPES, Known, Tensor

INFIX = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/", "Pow": "**", "MatMul": "@"}
COMPARE = {"Equal": "==", "Less": "<", "LessOrEqual": "<=", "Greater": ">", "GreaterOrEqual": ">="}
UNARY = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp", "Log": "log", "Sqrt": "sqrt",
         "Abs": "abs", "Erf": "erf", "Sign": "sign", "HardSwish": "hard_swish"}


def _type_of(vs) -> tuple[str, tuple]:
    ts = [v for v in vs if isinstance(v, Tensor)]
    dtype = ts[0].dtype if ts else "f32"
    shapes = [v.shape if isinstance(v, Tensor) else tuple(np.shape(v.value)) for v in vs if v is not None]
    return dtype, broadcast(*shapes)


@rule(*(op for op in INFIX if op != "MatMul"))
def _infix(ctx: Context, node, ins):
    a, b = ins
    dtype, shape = _type_of(ins)
    if node.op_type == "Div" and dtype in ("i32", "i64"):
        raise Unsupported("integer division of computed tensors is not in the language")
    if node.op_type == "Pow":
        if dtype not in ("f32", "f64"):
            raise Unsupported("it raises integers to a power; the language's ** takes a float base")
        if isinstance(b, Tensor) and b.dtype != dtype:  # ONNX takes any exponent type; ** takes the base's
            e = X.Bin("**", ctx.tensor(a, "base", number=True),
                      X.Call("cast", (ctx.tensor(b, "exponent"), X.Ref(dtype))))
            return [ctx.result(keep_rank(e, ins, shape), dtype, shape, inputs=ins)]
    if node.op_type == "Add":
        fused = _dense_bias(ctx, a, b) or _dense_bias(ctx, b, a)
        if fused is not None:
            return [fused]
    e = X.Bin(INFIX[node.op_type], ctx.tensor(a, "first operand", number=True),
              ctx.tensor(b, "second operand", number=True))
    return [ctx.result(keep_rank(e, ins, shape), dtype, shape, inputs=ins)]


def _dense_bias(ctx: Context, t, bias) -> Tensor | None:
    """MatMul(x, W) + b, with W and b initializers: dense(x, units) owning both."""
    if not (isinstance(t, Tensor) and t.tag == "matmul" and isinstance(bias, Known) and not bias.symbolic
            and not isinstance(t.expr, X.Ref) and ctx.uses.get(t.onnx, 0) <= 1 and t.onnx not in ctx.outputs):
        return None
    call = t.expr
    units = call.owned.arrays["W"].shape[1]
    if bias.value.dtype.kind != "f" or bias.value.size not in (1, units) or bias.value.ndim > 1:
        return None
    call.owned.arrays["b"] = np.broadcast_to(bias.value.reshape(-1), (units,)).astype(call.owned.arrays["W"].dtype)
    fused = X.Call("dense", call.args[:2], (), call.owned)
    return ctx.result(fused, t.dtype, t.shape, inputs=[t])


@rule(*COMPARE)
def _compare(ctx: Context, node, ins):
    _, shape = _type_of(ins)
    e = X.Bin(COMPARE[node.op_type], ctx.tensor(ins[0], number=True), ctx.tensor(ins[1], number=True))
    return [ctx.result(keep_rank(e, ins, shape), "bool", shape, inputs=ins)]


@rule("Not")
def _not(ctx: Context, node, ins):
    (x,) = ins
    return [ctx.result(X.Bin("==", X.Call("cast", (ctx.tensor(x), X.Ref("f32"))), X.Lit(0)), "bool", x.shape,
                       inputs=ins)]


@rule(*UNARY)
def _unary(ctx: Context, node, ins):
    x = ins[0]
    return [ctx.result(X.Call(UNARY[node.op_type], (ctx.tensor(x),)), x.dtype, x.shape, inputs=ins)]


@rule("Neg")
def _neg(ctx: Context, node, ins):
    return [ctx.result(X.Neg(ctx.tensor(ins[0])), ins[0].dtype, ins[0].shape, inputs=ins)]


@rule("Reciprocal")
def _reciprocal(ctx: Context, node, ins):
    return [ctx.result(X.Bin("/", X.Lit(1.0), ctx.tensor(ins[0])), ins[0].dtype, ins[0].shape, inputs=ins)]


@rule("LeakyRelu")
def _leaky_relu(ctx: Context, node, ins):
    alpha = attrs(node).get("alpha", 0.01)
    return [ctx.result(X.Call("leaky_relu", (ctx.tensor(ins[0]),), (("alpha", X.lit(_f32(alpha))),)), ins[0].dtype,
                       ins[0].shape, inputs=ins)]


@rule("HardSigmoid")
def _hard_sigmoid(ctx: Context, node, ins):
    a = attrs(node)
    kw = (("alpha", X.lit(_f32(a.get("alpha", 0.2)))), ("beta", X.lit(_f32(a.get("beta", 0.5)))))
    return [ctx.result(X.Call("hard_sigmoid", (ctx.tensor(ins[0]),), kw), ins[0].dtype, ins[0].shape, inputs=ins)]


@rule("Gelu")
def _gelu(ctx: Context, node, ins):
    (x,) = ins
    approximate = attrs(node).get("approximate", b"none")  # a STRING attribute: bytes
    if (approximate.decode() if isinstance(approximate, bytes) else approximate) == "tanh":
        return [ctx.result(X.Call("gelu", (ctx.tensor(x),)), x.dtype, x.shape, inputs=ins)]
    e = X.Call("gelu", (ctx.tensor(x),), (("approximate", X.Lit("none")),))  # exactly: 0.5 x (1 + erf(x / √2))
    return [ctx.result(e, x.dtype, x.shape, inputs=ins)]


@rule("Clip")
def _clip(ctx: Context, node, ins):
    x = ins[0]
    if ctx.opset < 11:
        a = attrs(node)
        lo, hi = a.get("min"), a.get("max")
    else:
        lo = _scalar(ctx, ins[1], "min") if len(ins) > 1 and ins[1] is not None else None
        hi = _scalar(ctx, ins[2], "max") if len(ins) > 2 and ins[2] is not None else None
    if lo is None and hi is None:
        return [x]
    if x.dtype not in ("f32", "f64"):
        raise Unsupported(f"it clips {x.dtype} values; the language's clip takes floats")
    if lo is not None and hi is not None and lo > hi:  # ONNX: min(max(x, lo), hi), which is hi everywhere
        lo = hi
    lo, hi = (None if v is None else (shortest_f32(v) if x.dtype == "f32" else float(v)) for v in (lo, hi))
    kw = tuple((k, X.lit(v)) for k, v in (("min", lo), ("max", hi)) if v is not None)
    return [ctx.result(X.Call("clip", (ctx.tensor(x),), kw), x.dtype, x.shape, inputs=ins)]


def _scalar(ctx: Context, v, what: str) -> float:
    a = ctx.known(v, what)
    if a.size != 1:
        raise Unsupported(f"its {what} is not a scalar")
    return a.reshape(()).item()




@rule("Where")
def _where(ctx: Context, node, ins):
    c, a, b = ins
    dtype, shape = _type_of([a, b])
    shape = broadcast(shape, c.shape if isinstance(c, Tensor) else np.shape(c.value))
    e = X.Call("where", (ctx.tensor(c, "condition"), ctx.tensor(a, number=True), ctx.tensor(b, number=True)))
    return [ctx.result(keep_rank(e, ins, shape), dtype, shape, inputs=ins)]


@rule("Max", "Min")
def _max_min(ctx: Context, node, ins):
    func = {"Max": "maximum", "Min": "minimum"}[node.op_type]
    dtype, shape = _type_of(ins)
    ordered = sorted(ins, key=lambda v: not isinstance(v, Tensor))  # a tensor first: maximum(c1, c2) takes none
    e = ctx.tensor(ordered[0], number=True)
    for v in ordered[1:]:
        e = X.Call(func, (e, ctx.tensor(v, number=True)))
    return [ctx.result(keep_rank(e, ins, shape), dtype, shape, inputs=ins)]


@rule("Sum")
def _sum(ctx: Context, node, ins):
    dtype, shape = _type_of(ins)
    e = ctx.tensor(ins[0], number=True)
    for v in ins[1:]:
        e = X.Bin("+", e, ctx.tensor(v, number=True))
    return [ctx.result(keep_rank(e, ins, shape), dtype, shape, inputs=ins)]


@rule("Softmax", "LogSoftmax")
def _softmax(ctx: Context, node, ins):
    (x,) = ins
    default = -1 if ctx.opset >= 13 else 1
    ax = axis(attrs(node).get("axis", default), x.rank)
    if ctx.opset < 13 and ax != x.rank - 1:  # before opset 13 the axis flattens the tensor into 2-D
        raise Unsupported(f"{node.op_type} before opset 13 over axis {ax} of a rank-{x.rank} tensor normalizes "
                          "over all later axes together, which the language's softmax does not")
    func = "softmax" if node.op_type == "Softmax" else "log_softmax"
    kw = () if ax == x.rank - 1 else (("axis", X.lit(ax)),)
    return [ctx.result(X.Call(func, (ctx.tensor(x),), kw), x.dtype, x.shape, inputs=ins)]


REDUCE = {"ReduceMean": "mean", "ReduceSum": "sum", "ReduceMax": "max"}


@rule(*REDUCE)
def _reduce(ctx: Context, node, ins):
    x, a = ins[0], attrs(node)
    from_input = (node.op_type == "ReduceSum" and ctx.opset >= 13) or ctx.opset >= 18
    if from_input:
        axes = None if len(ins) < 2 or ins[1] is None else [int(i) for i in ctx.known(ins[1], "axes").reshape(-1)]
    else:
        axes = a.get("axes")
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            return [x]
        axes = list(range(x.rank))
    axes = sorted(axis(i, x.rank) for i in axes)
    keep = bool(a.get("keepdims", 1))
    shape = tuple((1 if keep else None) if i in axes else d for i, d in enumerate(x.shape))
    kw = [("axis", X.lit(axes[0]) if len(axes) == 1 else X.lit(axes))] if axes != list(range(x.rank)) else []
    if keep:
        kw.append(("keepdims", X.Lit(True)))
    e = X.Call(REDUCE[node.op_type], (ctx.tensor(x),), tuple(kw))
    return [ctx.result(e, x.dtype, tuple(d for d in shape if d is not None), inputs=ins)]


@rule("Cast")
def _cast(ctx: Context, node, ins):
    (x,) = ins
    to = DTYPES.get(attrs(node)["to"])
    if to is None:
        raise Unsupported(f"it casts to {onnx.helper.tensor_dtype_to_string(attrs(node)['to'])}, which the "
                          "language lacks (it has f32, f64, i32, i64 and bool)")
    if to == x.dtype:
        return [x]
    return [ctx.result(X.Call("cast", (ctx.tensor(x), X.Ref(to))), to, x.shape, inputs=ins)]


@rule(CAUSAL)
def _causal_mask(ctx: Context, node, ins):
    """The causal-mask pattern (patterns.py): the Range's length must be the scores' T."""
    scores, limit = ins
    t = ctx.known(limit, "length").reshape(-1)[0]
    if scores.rank < 2 or not (scores.shape[-1] == scores.shape[-2] == t):
        raise Unsupported(f"it masks scores {list(scores.shape)} with a causal mask of length {t}")
    return [ctx.result(X.Call("causal_mask", (ctx.tensor(scores),)), scores.dtype, scores.shape, inputs=ins)]
