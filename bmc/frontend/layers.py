"""The neural-network layers of the language: convolution, pooling, normalization, dropout, embeddings,
recurrences, attention and positions. Each creates its parameters (named after the calling statement) and emits
ops; layers that behave differently in training and inference (dropout, batch norm) ask the lowerer its mode.
"""

from __future__ import annotations

import math

from bmc import ops
from bmc.diagnostics import BmcError
from bmc.frontend.builtins import PARAM_OWNERS, builtin
from bmc.frontend.domains import FRACTION, MAX_SIZE, POSITIVE, SIZE, Choice, Flag, Initializer, Number, Padding, Pair
from bmc.frontend.signature import Param
from bmc.init import Init
from bmc.ir.graph import Value
from bmc.ir.types import INT_DTYPES, TensorType
from bmc.ops import emit as E
from bmc.ops import resize
from bmc.ops.conv import same_padding

PARAM_OWNERS.update({"conv2d", "conv_transpose2d", "batch_norm", "layer_norm", "embedding", "rnn", "lstm", "gru",
                     "attention", "learned_positions"})


def _padding(mode: str | int | tuple, x: Value, kernel, stride, dilation) -> tuple[int, int, int, int]:
    """"valid" (none), "same" (output size ceil(input / stride)), a number of pixels on every side or the four
    sides (top, left, bottom, right)."""
    if isinstance(mode, tuple):
        return mode
    if mode == "valid":
        return (0, 0, 0, 0)
    if mode == "same":
        (top, bottom), (left, right) = (same_padding(x.type.shape[2 + i], kernel[i], stride[i], dilation[i])
                                        for i in range(2))
        return (top, left, bottom, right)
    return (mode, mode, mode, mode)


def _image(x: Value, call, what: str) -> None:
    if x.type.rank != 4 or not all(isinstance(d, int) for d in x.type.shape[1:]):
        raise BmcError(f"{what} expects an image batch [N, channels, height, width] with static sizes, got "
                       f"{x.type} (reshape it, e.g. reshape(x, [N, 1, 28, 28]))", call.span)


# ---- convolution and pooling ----------------------------------------------------------------------------------------


WEIGHTS = (Param("init", Init("glorot_uniform"), Initializer()), Param("bias_init", Init("zeros"), Initializer()))


def _check_groups(call, a, channels: int, filters: int, filters_name: str) -> int:
    """`groups` must divide the input channels and the filters (a located error at the argument otherwise)."""
    groups = a["groups"]
    for n, what in ((channels, "input channels"), (filters, filters_name)):
        if n % groups:
            raise BmcError(f"{call.func}'s groups {groups} does not divide the {n} {what}", a.span("groups"),
                           notes=("each group convolves channels / groups inputs into filters / groups outputs; "
                                  "groups = channels is a depthwise convolution",))
    return groups


def _bias(lw, call, a, prefix: str, x: Value, filters: int) -> Value:
    if a["bias"]:
        return lw.add_param(f"{prefix}.b", TensorType(x.type.dtype, (filters,)), a["bias_init"], decay=False,
                            span=call.span)
    return E.broadcast_to(lw.at(call), E.like(lw.b, 0.0, x), (filters,))


@builtin("conv2d", "x", Param("filters", domain=SIZE), Param("kernel", domain=Pair()), Param("stride", 1, Pair()),
         Param("padding", "valid", Padding()), Param("dilation", 1, Pair()), Param("bias", True, Flag()), *WEIGHTS,
         Param("groups", 1, SIZE))
def _conv2d(lw, call, a):
    """A 2-D convolution over NCHW images owning W [filters, channels / groups, kh, kw] and b [filters]."""
    x, filters, kernel, stride, dilation = a["x"], a["filters"], a["kernel"], a["stride"], a["dilation"]
    _image(x, call, "conv2d")
    groups = _check_groups(call, a, x.type.shape[1], filters, "filters")
    padding = _padding(a["padding"], x, kernel, stride, dilation)
    prefix = lw.owner_prefix("conv2d")
    dt = x.type.dtype
    w = lw.add_param(f"{prefix}.W", TensorType(dt, (filters, x.type.shape[1] // groups, *kernel)), a["init"],
                     decay=True, span=call.span)
    b = _bias(lw, call, a, prefix, x, filters)
    return lw.emit(ops.Conv2d(stride, padding, dilation, groups), x, w, b, span=call.span)


@builtin("conv_transpose2d", "x", Param("filters", domain=SIZE), Param("kernel", domain=Pair()),
         Param("stride", 1, Pair()), Param("padding", 0, Padding(modes=("valid",))),
         Param("output_padding", 0, Pair(Number(0, MAX_SIZE, integer=True))), Param("dilation", 1, Pair()),
         Param("groups", 1, SIZE), Param("bias", True, Flag()), *WEIGHTS)
def _conv_transpose2d(lw, call, a):
    """A transposed convolution (ONNX ConvTranspose, PyTorch ConvTranspose2d) owning W [channels, filters / groups,
    kh, kw] and b [filters]: the gradient of a convolution with respect to its input, so each output size is
    stride (H - 1) + output_padding + dilation (kh - 1) + 1 - top - bottom."""
    x, filters, kernel, stride, dilation = a["x"], a["filters"], a["kernel"], a["stride"], a["dilation"]
    _image(x, call, "conv_transpose2d")
    groups = _check_groups(call, a, x.type.shape[1], filters, "filters")
    pads = _padding(a["padding"], x, kernel, stride, dilation)
    extra = a["output_padding"]
    for i in range(2):
        if extra[i] >= stride[i]:
            raise BmcError(f"conv_transpose2d's output_padding {extra[i]} must be smaller than its stride "
                           f"{stride[i]}", a.span("output_padding"),
                           notes=("output padding adds rows that a stride skips; larger values would add rows no "
                                  "input reaches",))
    size = tuple(stride[i] * (x.type.shape[2 + i] - 1) + extra[i] + dilation[i] * (kernel[i] - 1) + 1 - pads[i]
                 - pads[i + 2] for i in range(2))
    if min(size) < 1:
        raise BmcError(f"conv_transpose2d's padding {list(pads)} leaves no output pixels of {x.type}",
                       a.span("padding"))
    prefix = lw.owner_prefix("conv_transpose2d")
    dt = x.type.dtype
    w = lw.add_param(f"{prefix}.W", TensorType(dt, (x.type.shape[1], filters // groups, *kernel)), a["init"],
                     decay=True, span=call.span)
    y = lw.emit(ops.Conv2dGradInput(stride, pads, dilation, size, groups), x, w, span=call.span)
    if not a["bias"]:
        return y
    b = lw.at(call)
    bias = _bias(lw, call, a, prefix, x, filters)
    return E.add(b, y, E.reshape(b, bias, (filters, 1, 1)))


def _pool(op_type):
    def handler(lw, call, a):
        x, size = a["x"], a["size"]
        _image(x, call, call.func)
        stride = size if a["stride"] is None else a["stride"]
        padding = _padding(a["padding"], x, size, stride, (1, 1))
        if any(p >= k for p, k in zip(padding, size + size, strict=True)):
            # a window could lie entirely in the padding: its maximum is -inf and its mean 0 / 0
            raise BmcError(f"{call.func}'s padding {max(padding)} must be smaller than its window {list(size)}",
                           a.span("padding"), notes=("use a larger size or less padding",))
        return lw.emit(op_type(size, stride, padding), x, span=call.span)

    return handler


for _name, _op in (("max_pool", ops.MaxPool2d), ("avg_pool", ops.AvgPool2d)):
    builtin(_name, "x", Param("size", 2, Pair()), Param("stride", None, Pair()),
            Param("padding", "valid", Padding()))(_pool(_op))


@builtin("resize", "x", Param("scale", None, Pair(POSITIVE)), Param("size", None, Pair()),
         Param("mode", "nearest", Choice(resize.MODES)),
         Param("coordinates", "half_pixel", Choice(resize.COORDINATES)),
         Param("nearest", "round_prefer_floor", Choice(resize.NEAREST)))
def _resize(lw, call, a):
    """Resizes the height and width of NCHW images by `scale` (output floor(H scale)) or to `size`, exactly as ONNX
    Resize: `mode` nearest or linear, `coordinates` ONNX's coordinate_transformation_mode, `nearest` its
    nearest_mode (bmc/ops/resize.py)."""
    x, scale, size = a["x"], a["scale"], a["size"]
    _image(x, call, "resize")
    if (scale is None) == (size is None):
        raise BmcError("resize takes a scale or a size (one of them)", a.span("size") if size else call.span,
                       notes=("resize(x, scale = 2) doubles the height and width; resize(x, size = [32, 32]) sets "
                              "them",))
    hw = x.type.shape[2:]
    if size is None:
        size = tuple(math.floor(hw[i] * scale[i]) for i in range(2))
        if min(size) < 1 or max(size) > MAX_SIZE:
            raise BmcError(f"resize's scale {list(scale)} makes {list(size)} pixels of {list(hw)}", a.span("scale"))
    else:
        scale = tuple(size[i] / hw[i] for i in range(2))
    op = ops.Resize(size, (float(scale[0]), float(scale[1])), a["mode"], a["coordinates"], a["nearest"])
    return lw.emit(op, x, span=call.span)


@builtin("global_avg_pool", "x")
def _global_avg_pool(lw, call, a):
    """[N, C, H, W] -> [N, C]: the mean of each channel."""
    x = a["x"]
    if x.type.rank != 4:
        raise BmcError(f"global_avg_pool expects [N, C, H, W], got {x.type}", call.span)
    return lw.emit(ops.Mean((2, 3), False), x, span=call.span)


# ---- normalization and dropout ---------------------------------------------------------------------------------------


@builtin("batch_norm", "x", Param("momentum", 0.9, FRACTION), Param("eps", 1e-5, POSITIVE))
def _batch_norm(lw, call, a):
    """Normalize each channel (axis 1) by the batch's statistics in training and by running statistics in
    inference; running = momentum * running + (1 - momentum) * batch (PyTorch's momentum 0.1 is 0.9 here)."""
    x, momentum, eps = a["x"], float(a["momentum"]), float(a["eps"])
    if x.type.rank < 2 or not isinstance(x.type.shape[1], int) or not x.type.is_float:
        raise BmcError(f"batch_norm expects a float tensor [N, C, ...] with static C, got {x.type}", call.span)
    prefix = lw.owner_prefix("batch_norm")
    c, dt = x.type.shape[1], x.type.dtype
    channel = TensorType(dt, (c,))
    gamma = lw.add_param(f"{prefix}.gamma", channel, Init("ones"), decay=False, span=call.span)
    beta = lw.add_param(f"{prefix}.beta", channel, Init("zeros"), decay=False, span=call.span)
    mean = lw.add_param(f"{prefix}.running_mean", channel, Init("zeros"), decay=False, span=call.span,
                        trainable=False)
    var = lw.add_param(f"{prefix}.running_var", channel, Init("ones"), decay=False, span=call.span, trainable=False)
    if not lw.training:
        return lw.emit(ops.BatchNormInference(eps), x, gamma, beta, mean, var, span=call.span)
    b = lw.at(call)
    y, batch_mean, batch_var = b.emit(ops.BatchNormTrain(eps), x, gamma, beta)
    # running statistics (unbiased variance, as PyTorch); they carry no gradient
    n = E.size_of(b, x, (0, *range(2, x.type.rank)), dt)
    # n / (n - 1), with one value per channel (a batch of one 1x1 image) taken as 1: its variance is 0 either way,
    # and 0 * (1 / 0) would make the running variance NaN
    one = E.like(b, 1.0, n)
    unbiased = E.mul(b, batch_var, E.div(b, n, b.emit(ops.Maximum(), E.sub(b, n, one), one)))
    keep, take = E.like(b, momentum, x), E.like(b, 1.0 - momentum, x)
    lw.record_update(mean, E.add(b, E.mul(b, keep, mean), E.mul(b, take, batch_mean)))
    lw.record_update(var, E.add(b, E.mul(b, keep, var), E.mul(b, take, unbiased)))
    return y


@builtin("layer_norm", "x", Param("eps", 1e-5, POSITIVE))
def _layer_norm(lw, call, a):
    """Normalize over the last axis with a learned scale (ones) and shift (zeros)."""
    x = a["x"]
    if x.type.rank < 1 or not isinstance(x.type.shape[-1], int) or not x.type.is_float:
        raise BmcError(f"layer_norm expects a float tensor with a static last dim, got {x.type}", call.span)
    prefix = lw.owner_prefix("layer_norm")
    t = TensorType(x.type.dtype, x.type.shape[-1:])
    gamma = lw.add_param(f"{prefix}.gamma", t, Init("ones"), decay=False, span=call.span)
    beta = lw.add_param(f"{prefix}.beta", t, Init("zeros"), decay=False, span=call.span)
    return lw.emit(ops.LayerNorm(float(a["eps"])), x, gamma, beta, span=call.span)


@builtin("dropout", "x", Param("rate", domain=FRACTION))
def _dropout(lw, call, a):
    """Zero each value with probability `rate` in training, scaling the rest by 1 / (1 - rate); identity in
    inference."""
    x, rate = a["x"], float(a["rate"])
    if not lw.training or rate == 0:
        return x
    b = lw.at(call)
    u = b.emit(ops.RandomUniformLike(lw.next_salt()), x, lw.rng_key())
    keep = b.emit(ops.Compare(">="), u, E.like(b, rate, x))
    return E.where(b, keep, E.mul(b, x, E.like(b, 1.0 / (1.0 - rate), x)), E.like(b, 0.0, x))


# ---- embeddings and positions ----------------------------------------------------------------------------------------


@builtin("embedding", "ids", Param("vocab", domain=SIZE), Param("dim", domain=SIZE),
         Param("init", Init("uniform", {"low": -0.05, "high": 0.05}), Initializer()))
def _embedding(lw, call, a):
    """Rows of a table [vocab, dim] (Keras's uniform(-0.05, 0.05) initialization) looked up by integer ids."""
    ids, vocab, dim = a["ids"], a["vocab"], a["dim"]
    if ids.type.dtype not in INT_DTYPES:
        raise BmcError(f"embedding looks up integer ids, got {ids.type}", call.span)
    prefix = lw.owner_prefix("embedding")
    table = lw.add_param(f"{prefix}.table", TensorType("f32", (vocab, dim)), a["init"], decay=True,
                         span=call.span)
    return lw.emit(ops.Gather(), table, ids, span=call.span)


@builtin("learned_positions", "x", Param("max_len", domain=SIZE),
         Param("init", Init("normal", {"mean": 0.0, "std": 0.02}), Initializer()))
def _learned_positions(lw, call, a):
    """x [N, T, D] + P[:T], a learned table P [max_len, D]: T may be symbolic, up to max_len."""
    x, max_len = a["x"], a["max_len"]
    if x.type.rank != 3 or not isinstance(x.type.shape[2], int):
        raise BmcError(f"learned_positions expects [N, T, D] with a static D, got {x.type}", call.span)
    length = x.type.shape[1]
    if isinstance(length, int) and length > max_len:
        raise BmcError(f"the sequence has {length} positions but max_len is {max_len}", call.span)
    prefix = lw.owner_prefix("learned_positions")
    table = lw.add_param(f"{prefix}.table", TensorType(x.type.dtype, (max_len, x.type.shape[2])), a["init"],
                         decay=False, span=call.span)
    rows = table if length == max_len else lw.emit(ops.Slice(0, 0, length), table, span=call.span)
    return lw.emit(ops.Add(), x, rows, span=call.span)


@builtin("sinusoidal_positions", "x")
def _sinusoidal_positions(lw, call, a):
    """x [N, T, D] + the fixed sine/cosine encodings of "Attention Is All You Need" (static T)."""
    x = a["x"]
    if x.type.rank != 3 or not all(isinstance(d, int) for d in x.type.shape[1:]):
        raise BmcError(f"sinusoidal_positions expects [N, T, D] with static T and D, got {x.type}", call.span)
    name = lw.naming.table("sinusoid")
    const = lw.add_param(name, TensorType(x.type.dtype, x.type.shape[1:]), Init("sinusoidal"), decay=False,
                         span=call.span, trainable=False)
    return lw.emit(ops.Add(), x, const, span=call.span)


# ---- recurrences ---------------------------------------------------------------------------------------------------


def _recurrent(op_type):
    def handler(lw, call, a):
        x, hidden, sequences, bidirectional = a["x"], a["hidden"], a["return_sequences"], a["bidirectional"]
        if x.type.rank != 3 or not isinstance(x.type.shape[2], int) or not x.type.is_float:
            raise BmcError(f"{call.func} expects a float sequence [N, T, features], got {x.type}", call.span)
        prefix = lw.owner_prefix(call.func)
        if bidirectional and a["reverse"]:
            raise BmcError(f"{call.func} runs both ways (bidirectional) or backwards (reverse), not both",
                           a.span("reverse"))
        directions = [("", a["reverse"])] if not bidirectional else [(".forward", False), (".backward", True)]
        results = []
        for suffix, reverse in directions:
            gh = op_type.gates * hidden
            dt = x.type.dtype
            p = f"{prefix}{suffix}"
            # ONNX layouts [gates * hidden, in]: the fans are (in, gates * hidden), as Keras's [in, 4 * units] kernels
            w = lw.add_param(f"{p}.W", TensorType(dt, (gh, x.type.shape[2])), a["init"], decay=True,
                             span=call.span, fans=(x.type.shape[2], gh))
            r = lw.add_param(f"{p}.R", TensorType(dt, (gh, hidden)), a["recurrent_init"], decay=True,
                             span=call.span, fans=(hidden, gh))
            bias = lw.add_param(f"{p}.B", TensorType(dt, (2 * gh,)), Init("zeros"), decay=False, span=call.span)
            extra = {"linear_before_reset": a["reset_after"]} if op_type is ops.GRU else {}
            ys, last = lw.emit(op_type(hidden=hidden, reverse=reverse, **extra), x, w, r, bias, span=call.span)
            results.append(ys if sequences else last)
        if len(results) == 1:
            return results[0]
        return lw.emit(ops.Concat(-1), *results, span=call.span)

    return handler


RECURRENT = (Param("hidden", domain=SIZE), Param("return_sequences", False, Flag()),
             Param("bidirectional", False, Flag()), Param("reverse", False, Flag()),
             Param("init", Init("glorot_uniform"), Initializer()),
             Param("recurrent_init", Init("orthogonal"), Initializer()))
for _name, _op in (("rnn", ops.RNN), ("lstm", ops.LSTM)):
    builtin(_name, "x", *RECURRENT)(_recurrent(_op))
# reset_after: the reset gate scales the recurrent product (PyTorch, Keras, ONNX linear_before_reset=1), or the
# state before it (ONNX's default, linear_before_reset=0)
builtin("gru", "x", *RECURRENT, Param("reset_after", True, Flag()))(_recurrent(ops.GRU))


# ---- attention ----------------------------------------------------------------------------------------------------


@builtin("attention", "x", Param("heads", domain=SIZE), Param("causal", False, Flag()),
         Param("dropout", 0.0, FRACTION), Param("init", Init("glorot_uniform"), Initializer()))
def _attention(lw, call, a):
    """Multi-head self-attention over x [N, T, D]: softmax(q k^T / sqrt(D / heads)) v per head, with query, key,
    value and output projections (q, k, v, out) and an optional causal mask."""
    x, heads, causal, rate, init = a["x"], a["heads"], a["causal"], float(a["dropout"]), a["init"]
    if x.type.rank != 3 or not isinstance(x.type.shape[2], int):
        raise BmcError(f"attention expects [N, T, D] with a static D, got {x.type}", call.span)
    n, t, d = x.type.shape
    if d % heads:
        raise BmcError(f"the width {d} must divide into {heads} heads", a.span("heads"))
    prefix = lw.owner_prefix("attention")
    b = lw.at(call)
    dt, hd = x.type.dtype, d // heads

    def project(name: str, v: Value) -> Value:
        w = lw.add_param(f"{prefix}.{name}.W", TensorType(dt, (d, d)), init, decay=True, span=call.span)
        bias = lw.add_param(f"{prefix}.{name}.b", TensorType(dt, (d,)), Init("zeros"), decay=False, span=call.span)
        return lw.emit(ops.Dense(), v, w, bias, span=call.span)

    def split(v: Value) -> Value:  # [N, T, D] -> [N, heads, T, D / heads]
        return E.transpose(b, E.reshape(b, v, (n, t, heads, hd)), (0, 2, 1, 3))

    q, k, v = (split(project(name, x)) for name in ("q", "k", "v"))
    scores = E.mul(b, E.matmul(b, q, k, transpose_b=True), E.like(b, 1.0 / math.sqrt(hd), x))
    if causal:
        scores = b.emit(ops.CausalMask(), scores)
    weights = b.emit(ops.Softmax(-1), scores)
    if lw.training and rate > 0:
        u = b.emit(ops.RandomUniformLike(lw.next_salt()), weights, lw.rng_key())
        keep = b.emit(ops.Compare(">="), u, E.like(b, rate, weights))
        weights = E.where(b, keep, E.mul(b, weights, E.like(b, 1.0 / (1.0 - rate), weights)), E.like(b, 0.0, x))
    mixed = E.reshape(b, E.transpose(b, E.matmul(b, weights, v), (0, 2, 1, 3)), (n, t, d))
    return project("out", mixed)
