"""ONNX lowering rules: one per op class, each adding standard ONNX nodes through an `Emitter` (emitter.py) and
returning the names of the op's results (None for a result nobody reads); `@lower(Op)` registers one in the table
(table.py). Composite ops map to the ONNX op that runtimes fuse (Gemm, Softmax, Conv, LayerNormalization, LSTM, ...).
"""

from __future__ import annotations

import numpy as np

from bmc import ops
from bmc.ir import dims
from bmc.ir.graph import Builder, Graph, Node
from bmc.ir.types import NUMPY_NAMES, normalize_axes
from bmc.ops.elementwise import GELU_C, GELU_K
from bmc.reference.kernels import _resize_matrix

from .emitter import ONNX_DTYPES, Emitter
from .table import RULES, lower, supports


def _out(node: Node, i: int = 0):
    return node.outputs[i].type


def _in(node: Node, i: int = 0):
    return node.inputs[i].type


# ---- elementwise -------------------------------------------------------------------------------------------------


@lower(ops.Const)
def _const(node, a, ctx):
    return ctx.const(node.op.value, node.op.dtype)


UNARY = {ops.Neg: "Neg", ops.Exp: "Exp", ops.Log: "Log", ops.Sqrt: "Sqrt", ops.Abs: "Abs", ops.Sign: "Sign",
         ops.Tanh: "Tanh", ops.Sigmoid: "Sigmoid", ops.Relu: "Relu"}
BINARY = {ops.Add: "Add", ops.Sub: "Sub", ops.Mul: "Mul", ops.Div: "Div", ops.Pow: "Pow", ops.Maximum: "Max",
          ops.Minimum: "Min"}
COMPARE = {"==": "Equal", "<": "Less", "<=": "LessOrEqual", ">": "Greater", ">=": "GreaterOrEqual"}


@lower(*UNARY, *BINARY)
def _elementwise(node, a, ctx):
    return ctx.op({**UNARY, **BINARY}[type(node.op)], *a)


@lower(ops.Gelu)
def _gelu(node, a, ctx):
    dtype = _in(node).dtype
    if dtype != "f64":
        return ctx.op("Gelu", a[0], approximate="tanh")
    # ONNX defines Gelu by a function whose constants are float32 (sqrt(2 / pi) rounded): an f64 model writes the
    # formula out, 0.5 x (1 + tanh(k (x + c x^3))), with f64 constants
    x = a[0]
    cube = ctx.op("Mul", x, ctx.op("Mul", x, x))
    inner = ctx.op("Mul", ctx.const(GELU_K, dtype), ctx.op("Add", x, ctx.op("Mul", ctx.const(GELU_C, dtype), cube)))
    half_x = ctx.op("Mul", ctx.const(0.5, dtype), x)
    return ctx.op("Mul", half_x, ctx.op("Add", ctx.const(1.0, dtype), ctx.op("Tanh", inner)))


def decomposed(node: Node, a: list[str], ctx: Emitter):
    """The op's decomposition, each of its ops lowered by its own rule (or decomposed in turn): for a dtype that
    onnxruntime has no kernel of."""
    g = Graph(node.op.name)
    xs = [g.add_input(v.type, f"x{i}", "input") for i, v in enumerate(node.inputs)]
    outs = node.op.decompose(Builder(g), *xs)
    names = dict(zip(xs, a, strict=True))
    for n in g.nodes:
        got = (RULES[type(n.op)] if supports(n.op) else decomposed)(n, [names[v] for v in n.inputs], ctx)
        names.update(zip(n.outputs, [got] if isinstance(got, str) else got, strict=True))
    return [names[o] for o in outs] if isinstance(outs, tuple) else names[outs]


# Elementwise ops that are one ONNX node with the op's attributes, where onnxruntime (1.18 to 1.23 at least) has
# float kernels only: an f64 model computes the op's decomposition instead. The attributes are float32, as the
# model's arithmetic is.
FLOAT_ONLY = {ops.LeakyRelu: "LeakyRelu", ops.HardSigmoid: "HardSigmoid", ops.HardSwish: "HardSwish", ops.Erf: "Erf"}


@lower(*FLOAT_ONLY)
def _float_only(node, a, ctx):
    if _in(node).dtype != "f32":
        return decomposed(node, a, ctx)
    return ctx.op(FLOAT_ONLY[type(node.op)], a[0], **{k: float(v) for k, v in node.op.attrs().items()})


@lower(ops.Clip)
def _clip(node, a, ctx):  # the bounds are inputs (from opset 11), a missing one an empty name
    dtype = _in(node).dtype
    bounds = [None if v is None else ctx.const(v, dtype) for v in (node.op.min, node.op.max)]
    return ctx.op("Clip", a[0], *bounds[:2 if bounds[1] is not None else 1])


@lower(ops.Compare)
def _compare(node, a, ctx):
    if node.op.op == "!=":
        return ctx.op("Not", ctx.op("Equal", *a))
    return ctx.op(COMPARE[node.op.op], *a)


@lower(ops.Where)
def _where(node, a, ctx):
    return ctx.op("Where", *a)


@lower(ops.Cast)
def _cast(node, a, ctx):
    return ctx.op("Cast", a[0], to=ONNX_DTYPES[node.op.dtype])


# ---- shapes ------------------------------------------------------------------------------------------------------


@lower(ops.Reshape)
def _reshape(node, a, ctx):
    src, dst = _in(node).shape, _out(node).shape
    if len(dst) == 2 and len(src) >= 2:  # [a, b, c, d] -> [a, b*c*d]: Flatten
        for k in range(1, len(src)):
            if (dims.product(src[:k]), dims.product(src[k:])) == dst:
                return ctx.op("Flatten", a[0], axis=k)
    spec: list[int | None] = [d if isinstance(d, int) else 0 if i < len(src) and src[i] == d else None
                              for i, d in enumerate(dst)]
    unknown = [i for i, d in enumerate(spec) if d is None]
    if len(unknown) > 1:
        return ctx.op("Reshape", a[0], ctx.shape(dst))
    return ctx.op("Reshape", a[0], ctx.ints([-1 if d is None else d for d in spec]))


@lower(ops.Transpose)
def _transpose(node, a, ctx):
    if not node.op.perm:  # a scalar is its own transpose (and onnx.helper cannot type an empty perm)
        return a[0]
    return ctx.op("Transpose", a[0], perm=list(node.op.perm))


@lower(ops.BroadcastTo)
def _broadcast_to(node, a, ctx):
    src, dst = _in(node).shape, _out(node).shape
    pad = len(dst) - len(src)
    # Expand broadcasts x against the shape, so a dim x already has may be given as 1 (no size read needed)
    shape = [1 if isinstance(d, str) and i >= pad and src[i - pad] == d else d for i, d in enumerate(dst)]
    return ctx.op("Expand", a[0], ctx.shape(shape))


@lower(ops.Concat)
def _concat(node, a, ctx):
    return ctx.op("Concat", *a, axis=node.op.axis)


@lower(ops.Slice)
def _slice(node, a, ctx):
    op = node.op
    if op.step == 1:
        return ctx.op("Slice", a[0], ctx.ints([op.start]), ctx.dim(op.stop), ctx.ints([op.axis]))
    # a stop of -1 (through element 0 with a negative step) is given as INT64_MIN: ONNX reads -1 as the last element
    stop = op.stop if op.stop >= 0 else np.iinfo(np.int64).min
    return ctx.op("Slice", a[0], ctx.ints([op.start]), ctx.ints([stop]), ctx.ints([op.axis]), ctx.ints([op.step]))


@lower(ops.Split)
def _split(node, a, ctx):
    return ctx.op("Split", a[0], ctx.ints(node.op.sizes), outputs=len(node.op.sizes), axis=node.op.axis)


@lower(ops.PadEnd)
def _pad_end(node, a, ctx):
    # pads for every axis, without Pad's `axes` input: onnxruntime's transpose optimizer miscomputes a Pad with axes
    # after a Transpose (an out-of-range Gather at run time)
    rank = _in(node).rank
    (axis,) = normalize_axes((node.op.axis,), rank)
    have = _in(node).shape[axis]
    before, after = [0] * (rank + axis), [0] * (rank - axis - 1)
    if isinstance(have, int):
        return ctx.op("Pad", a[0], ctx.ints([*before, node.op.size - have, *after]))
    extra = ctx.op("Sub", ctx.ints([node.op.size]), ctx.dim(have))
    pads = ctx.op("Concat", ctx.ints(before), extra, *([ctx.ints(after)] if after else []), axis=0)
    return ctx.op("Pad", a[0], pads)


@lower(ops.SizeOf)
def _size_of(node, a, ctx):
    return count(ctx, a[0], _in(node), node.op.axes, node.op.dtype)


def count(ctx: Emitter, x: str, t, axes: tuple[int, ...] | None, dtype: str) -> str:
    """The number of elements of x (of type t) along `axes`, as a scalar: a constant unless a dim is symbolic."""
    axes = normalize_axes(axes, t.rank)
    total = dims.product([t.shape[i] for i in axes])
    if isinstance(total, int):
        return ctx.const(total, dtype)
    if len(axes) == t.rank:
        size = ctx.op("Size", x)
    elif list(axes) == list(range(axes[0], axes[-1] + 1)):  # contiguous: one slice of the shape
        size = ctx.op("ReduceProd", ctx.op("Shape", x, start=axes[0], end=axes[-1] + 1), keepdims=0)
    else:
        size = ctx.op("ReduceProd", ctx.op("Gather", ctx.op("Shape", x), ctx.ints(axes)), keepdims=0)
    return ctx.op("Cast", size, to=ONNX_DTYPES[dtype])


# ---- reductions and products ---------------------------------------------------------------------------------------

REDUCE = {ops.Sum: "ReduceSum", ops.Mean: "ReduceMean", ops.Max: "ReduceMax"}


@lower(*REDUCE)
def _reduce(node, a, ctx):
    if node.op.axes == ():  # a reduction over no axis is x itself (ONNX reads empty axes as "every axis")
        return a[0]
    axes = None if node.op.axes is None else ctx.ints(node.op.axes)
    return ctx.op(REDUCE[type(node.op)], a[0], axes, keepdims=int(node.op.keepdims))


def _swap_last(ctx, x: str, rank: int) -> str:
    return ctx.op("Transpose", x, perm=[*range(rank - 2), rank - 1, rank - 2])


@lower(ops.MatMul)
def _matmul(node, a, ctx):
    ta, tb = node.op.transpose_a, node.op.transpose_b
    if not ta and not tb:
        return ctx.op("MatMul", *a)
    if _in(node, 0).rank == 2 and _in(node, 1).rank == 2:
        return ctx.op("Gemm", *a, transA=int(ta), transB=int(tb))
    x = _swap_last(ctx, a[0], _in(node, 0).rank) if ta else a[0]
    y = _swap_last(ctx, a[1], _in(node, 1).rank) if tb else a[1]
    return ctx.op("MatMul", x, y)


@lower(ops.Dense)
def _dense(node, a, ctx):
    if _in(node).rank == 2:
        return ctx.op("Gemm", *a)
    return ctx.op("Add", ctx.op("MatMul", a[0], a[1]), a[2])


# ---- neural-network composites and losses ---------------------------------------------------------------------


@lower(ops.Softmax, ops.LogSoftmax)
def _softmax(node, a, ctx):
    return ctx.op("Softmax" if isinstance(node.op, ops.Softmax) else "LogSoftmax", a[0], axis=node.op.axis)


@lower(ops.OneHot)
def _one_hot(node, a, ctx):
    # labels[..., None] == arange(depth): out-of-range labels (negative ones too) give a row of zeros
    hot = ctx.op("Equal", ctx.unsqueeze(a[0], [-1]), ctx.const(np.arange(node.op.depth), _in(node).dtype))
    return ctx.op("Cast", hot, to=ONNX_DTYPES[node.op.dtype])


@lower(ops.CrossEntropy)
def _cross_entropy(node, a, ctx):
    logits, target = node.inputs
    rank = logits.type.rank
    if target.type.is_float:  # -sum(p log softmax(z)) / count
        total = ctx.op("ReduceSum", ctx.op("Mul", a[1], ctx.op("LogSoftmax", a[0], axis=-1)), keepdims=0)
        n = count(ctx, a[0], logits.type, tuple(range(rank - 1)), logits.type.dtype)
        return ctx.op("Neg", ctx.op("Div", total, n))
    scores, labels = a
    if rank == 1:
        scores, labels = ctx.unsqueeze(scores, [0]), ctx.unsqueeze(labels, [0])
    elif rank > 2:  # SoftmaxCrossEntropyLoss wants the classes on axis 1
        scores = ctx.op("Transpose", scores, perm=[0, rank - 1, *range(1, rank - 1)])
    if target.type.dtype != "i64":
        labels = ctx.op("Cast", labels, to=ONNX_DTYPES["i64"])
    return ctx.op("SoftmaxCrossEntropyLoss", scores, labels, reduction="mean")


# ---- images --------------------------------------------------------------------------------------------------------


def _groups(op) -> dict:
    return {"group": op.groups} if op.groups > 1 else {}


def _window(op, kernel) -> dict:
    return {"kernel_shape": list(kernel), "strides": list(op.stride), "pads": list(op.padding)}


@lower(ops.Conv2d)
def _conv2d(node, a, ctx):
    w = _in(node, 1).shape
    return ctx.op("Conv", *a, dilations=list(node.op.dilation), **_groups(node.op), **_window(node.op, w[2:]))


@lower(ops.Conv2dGradInput)
def _conv2d_grad_input(node, a, ctx):
    # the transposed convolution of g with the same weights, padded at the end to the input's size
    op, w = node.op, _in(node, 1).shape
    out_pad = [_grad_input_padding(op.input_size[i], _in(node).shape[2 + i], w[2 + i], op.stride[i],
                                   op.padding[i], op.padding[i + 2], op.dilation[i]) for i in range(2)]
    return ctx.op("ConvTranspose", *a, dilations=list(op.dilation), output_padding=out_pad, **_groups(op),
                  **_window(op, w[2:]))


def _grad_input_padding(size, out, kernel, stride, before, after, dilation) -> int:
    return size - (stride * (out - 1) + dilation * (kernel - 1) + 1 - before - after)


@lower(ops.Conv2dGradWeight)
def _conv2d_grad_weight(node, a, ctx):
    # dW[o, c] = sum over n of x[n, c] correlated with g[n, o]: a convolution with the batch as the channel axis,
    # g as the kernel, strides and dilations swapped. With G groups, the input's channels are (group, n) with the
    # group's channel c' as the batch, and the convolution has G groups: block j of g's channels reads group j.
    op = node.op
    (_, c, h, w), groups = _in(node).shape, op.groups
    if groups == 1:
        x_t = ctx.op("Transpose", a[0], perm=[1, 0, 2, 3])  # [C, N, H, W]
    else:  # [N, C, H, W] -> [N, G, C/G, H, W] -> [C/G, G, N, H, W] -> [C/G, G*N, H, W]
        split = ctx.op("Reshape", a[0], ctx.ints([0, groups, c // groups, h, w]))
        x_t = ctx.op("Reshape", ctx.op("Transpose", split, perm=[2, 1, 0, 3, 4]), ctx.ints([c // groups, -1, h, w]))
    g_t = ctx.op("Transpose", a[1], perm=[1, 0, 2, 3])  # [O, N, H', W']
    dw = ctx.op("Conv", x_t, g_t, strides=list(op.dilation), dilations=list(op.stride), pads=list(op.padding),
                kernel_shape=list(_in(node, 1).shape[2:]), **_groups(op))  # [C/G, O, >= kh, >= kw]
    reach = [(size + op.padding[i] + op.padding[i + 2] - op.stride[i] * (_in(node, 1).shape[2 + i] - 1) - 1)
             // op.dilation[i] + 1 for i, size in enumerate((h, w))]
    if reach != list(op.kernel):  # the stride did not divide the input: drop the rows no weight reads
        dw = ctx.op("Slice", dw, ctx.ints([0, 0]), ctx.ints(list(op.kernel)), ctx.ints([2, 3]))
    return ctx.op("Transpose", dw, perm=[1, 0, 2, 3])


@lower(ops.MaxPool2d)
def _max_pool(node, a, ctx):
    return ctx.op("MaxPool", a[0], **_window(node.op, node.op.kernel))


@lower(ops.MaxPool2dGrad)
def _max_pool_grad(node, a, ctx):
    # MaxPool's indices (flat, into x) of each window's first maximum; g added there
    _, indices = ctx.op("MaxPool", a[0], outputs=2, hint="argmax", **_window(node.op, node.op.kernel))
    flat = ctx.ints([-1])
    zeros = ctx.op("ConstantOfShape", ctx.unsqueeze(ctx.op("Size", a[0]), [0]),
                   value=_scalar_tensor(0, _in(node).dtype))
    dx = ctx.op("ScatterElements", zeros, ctx.op("Reshape", indices, flat), ctx.op("Reshape", a[1], flat), axis=0,
                reduction="add")
    return ctx.op("Reshape", dx, ctx.op("Shape", a[0]))


@lower(ops.AvgPool2d)
def _avg_pool(node, a, ctx):
    return ctx.op("AveragePool", a[0], count_include_pad=0, **_window(node.op, node.op.kernel))


@lower(ops.AvgPool2dGrad)
def _avg_pool_grad(node, a, ctx):
    # each window's share g / count sent back to its pixels: a transposed convolution with a kernel of ones, each
    # channel on its own (the channels folded into the batch, so their count may be symbolic)
    op, g = node.op, _in(node)
    counts = _pool_counts(op.input_size, op.kernel, op.stride, op.padding, NUMPY_NAMES[g.dtype])
    ones = np.ones((1, 1, *op.kernel), dtype=NUMPY_NAMES[g.dtype])
    out_pad = [_grad_input_padding(op.input_size[i], g.shape[2 + i], op.kernel[i], op.stride[i], op.padding[i],
                                   op.padding[i + 2], 1) for i in range(2)]
    share = ctx.op("Div", a[0], ctx.const(counts))
    planes = ctx.op("Reshape", share, ctx.ints([-1, 1, *g.shape[2:]]))
    dx = ctx.op("ConvTranspose", planes, ctx.const(ones), output_padding=out_pad, **_window(op, op.kernel))
    return ctx.op("Reshape", dx, ctx.shape(_out(node).shape))


def _pool_counts(size, kernel, stride, padding, dtype) -> np.ndarray:
    """How many real (unpadded) pixels each window covers: [1, 1, H', W']."""
    top, left, bottom, right = padding
    grid = np.pad(np.ones(size, dtype=dtype), ((top, bottom), (left, right)))
    view = np.lib.stride_tricks.sliding_window_view(grid, kernel)[:: stride[0], :: stride[1]]
    return view.sum(axis=(2, 3))[None, None]


def _scalar_tensor(value, dtype: str):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray([value], dtype=NUMPY_NAMES[dtype]))


# ---- lookups, randomness, attention, normalization -------------------------------------------------------------------


@lower(ops.Gather)
def _gather(node, a, ctx):
    return ctx.op("Gather", *a, axis=0)


@lower(ops.ScatterAdd)
def _scatter_add(node, a, ctx):
    out = _out(node)
    zeros = ctx.op("ConstantOfShape", ctx.shape(out.shape), value=_scalar_tensor(0, out.dtype))
    ids = a[0] if _in(node).dtype == "i64" else ctx.op("Cast", a[0], to=ONNX_DTYPES["i64"])  # ScatterND: int64 only
    return ctx.op("ScatterND", zeros, ctx.unsqueeze(ids, [-1]), a[1], reduction="add")


@lower(ops.CausalMask)
def _causal_mask(node, a, ctx):
    t = _in(node).shape[-1]
    later = ctx.memo(("causal", t), lambda: _later_than(ctx, t))
    return ctx.op("Where", later, ctx.const(node.op.fill, _in(node).dtype), a[0])


def _later_than(ctx, t) -> str:
    """bool [T, T]: key j comes after query i."""
    if isinstance(t, int):
        return ctx.const(np.triu(np.ones((t, t), dtype=bool), k=1), hint="later")
    positions = ctx.op("Range", ctx.const(0, "i64"), ctx.op("Squeeze", ctx.dim(t)), ctx.const(1, "i64"))
    return ctx.op("Less", ctx.unsqueeze(positions, [1]), positions, hint="later")


def _exact_epsilon(node: Node) -> bool:
    """ONNX's epsilon attributes are float32: exact for float32 models, not for an f64 model's 1e-5."""
    return _in(node).dtype != "f64" or float(np.float32(node.op.eps)) == node.op.eps


def _normalized(ctx, centered: str, var: str, eps: float, dtype: str) -> str:
    """centered / sqrt(var + eps), with eps a tensor of the model's precision."""
    return ctx.op("Div", centered, ctx.op("Sqrt", ctx.op("Add", var, ctx.const(eps, dtype))))


@lower(ops.LayerNorm)
def _layer_norm(node, a, ctx):
    if _exact_epsilon(node):
        return ctx.op("LayerNormalization", *a, axis=-1, epsilon=node.op.eps)
    x, gamma, beta = a
    dtype = _in(node).dtype
    centered = ctx.op("Sub", x, ctx.op("ReduceMean", x, ctx.ints([-1]), keepdims=1))
    var = ctx.op("ReduceMean", ctx.op("Mul", centered, centered), ctx.ints([-1]), keepdims=1)
    return ctx.op("Add", ctx.op("Mul", _normalized(ctx, centered, var, node.op.eps, dtype), gamma), beta)


@lower(ops.BatchNormInference)
def _batch_norm(node, a, ctx):
    if _exact_epsilon(node):
        return ctx.op("BatchNormalization", *a, epsilon=node.op.eps)
    x, scale, bias, mean, var = a
    shape = [_in(node).shape[1], *([1] * (_in(node).rank - 2))]
    scale, bias, mean, var = (ctx.op("Reshape", t, ctx.ints(shape)) for t in (scale, bias, mean, var))
    y = _normalized(ctx, ctx.op("Sub", x, mean), var, node.op.eps, _in(node).dtype)
    return ctx.op("Add", ctx.op("Mul", y, scale), bias)


# BatchNormTrain is decomposed (ReduceMean and elementwise ops): BatchNormalization's training mode is not
# implemented by onnxruntime's CUDA provider (and cuDNN's running variance is the unbiased one), so the decomposition
# is what gives the same numbers on every execution provider.


# ---- recurrences ---------------------------------------------------------------------------------------------------


@lower(ops.RNN, ops.LSTM, ops.GRU)
def _recurrent(node, a, ctx):
    # ONNX's layout: time-major X [T, N, F], a direction axis on the weights and results
    op, (seq, last) = node.op, node.outputs
    if seq not in ctx.used and last not in ctx.used:  # a layer nothing reads: no node (ONNX needs an output)
        return [None, None]
    x = ctx.op("Transpose", a[0], perm=[1, 0, 2])
    w, r, b = (ctx.unsqueeze(name, [0]) for name in a[1:])
    extra = {"linear_before_reset": int(op.linear_before_reset)} if isinstance(op, ops.GRU) else {}
    y, y_h = ctx.op(type(op).__name__, x, w, r, b, outputs=[seq in ctx.used, last in ctx.used],
                    hidden_size=op.hidden, direction="reverse" if op.reverse else "forward", **extra)
    if y is not None:  # [T, 1, N, H] -> [N, T, H]
        y = ctx.op("Squeeze", ctx.op("Transpose", y, perm=[2, 0, 1, 3]), ctx.ints([2]))
    return [y, None if y_h is None else ctx.op("Squeeze", y_h, ctx.ints([0]))]



# ---- resizing --------------------------------------------------------------------------------------------------------


def _resize_matrices(op, input_size, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    return tuple(_resize_matrix(input_size[i], op.size[i], op.scale[i], op.mode, op.coordinates, op.nearest,
                                NUMPY_NAMES[dtype]) for i in range(2))


@lower(ops.Resize)
def _resize(node, a, ctx):
    op, x = node.op, _in(node)
    if x.dtype != "f32":  # onnxruntime's Resize is float32 only: the interpolation matrices, A_h x A_w^T
        a_h, a_w = _resize_matrices(op, x.shape[2:], x.dtype)
        return ctx.op("MatMul", ctx.op("MatMul", ctx.const(a_h), a[0]), ctx.const(np.ascontiguousarray(a_w.T)))
    attrs = {"mode": op.mode, "coordinate_transformation_mode": op.coordinates}
    if op.mode == "nearest":
        attrs["nearest_mode"] = op.nearest
    if all(op.size[i] / x.shape[2 + i] == op.scale[i] for i in range(2)):  # the sizes imply the scales exactly
        return ctx.op("Resize", a[0], "", "", ctx.ints([*x.shape[:2], *op.size])
                      if all(isinstance(d, int) for d in x.shape[:2]) else _sizes(ctx, a[0], op.size), **attrs)
    return ctx.op("Resize", a[0], "", ctx.const(np.asarray([1, 1, *op.scale], np.float32)), **attrs)


def _sizes(ctx, x: str, size) -> str:
    """[N, C, *size] with N (and C) read from x's shape."""
    head = ctx.op("Slice", ctx.op("Shape", x), ctx.ints([0]), ctx.ints([2]), ctx.ints([0]))
    return ctx.op("Concat", head, ctx.ints(list(size)), axis=0)


@lower(ops.ResizeGrad)
def _resize_grad(node, a, ctx):
    # the transposed interpolation, A_h^T g A_w, as two products with constant matrices
    op, g = node.op, _in(node)
    a_h, a_w = _resize_matrices(op, op.input_size, g.dtype)
    return ctx.op("MatMul", ctx.op("MatMul", ctx.const(np.ascontiguousarray(a_h.T)), a[0]), ctx.const(a_w))
