"""Import rules for the layers: dense (Gemm, MatMul with a weight), convolution, pooling, normalization, and
resizing. A layer call owns the initializers it reads, so the `.bm` file says `conv2d(x, 64, 3)` and the values go
to params.npz under the names the compiler gives them."""

from __future__ import annotations

import numpy as np

from bmc.onnx_import import expr as X
from bmc.onnx_import.broadcast import axis
from bmc.onnx_import.context import Context, Unsupported, attrs, rule
from bmc.onnx_import.context import shortest_f32 as _f32
from bmc.onnx_import.values import Known, Tensor
from bmc.ops import resize
from bmc.ops.conv import out_size


def _weight(ctx: Context, v, what: str) -> np.ndarray:
    a = ctx.known(v, what)
    if a.dtype.kind != "f" or a.dtype == object:
        raise Unsupported(f"its {what} is not a float tensor")
    return a


def _dtype(a: np.ndarray) -> str:
    return "f64" if a.dtype == np.float64 else "f32"


@rule("MatMul")
def _matmul(ctx: Context, node, ins):
    a, b = ins
    if isinstance(a, Tensor) and isinstance(b, Known) and b.value.ndim == 2 and b.value.dtype.kind == "f" \
            and a.rank >= 2:
        w = b.value
        if a.shape[-1] != w.shape[0]:
            raise Unsupported(f"it multiplies {list(a.shape)} by {list(w.shape)}")
        e = X.Call("dense", (ctx.tensor(a), X.lit(w.shape[1])), (("bias", X.Lit(False)),), X.Owned("dense", {"W": w}))
        return [ctx.result(e, a.dtype, (*a.shape[:-1], w.shape[1]), tag="matmul", inputs=ins)]
    sa = a.shape if isinstance(a, Tensor) else a.value.shape
    sb = b.shape if isinstance(b, Tensor) else b.value.shape
    if len(sa) < 2 or len(sb) < 2:
        raise Unsupported("it multiplies a vector; the language's @ takes matrices (reshape first)")
    from bmc.onnx_import.broadcast import broadcast

    batch = broadcast(tuple(sa[:-2]), tuple(sb[:-2]))
    dtype = a.dtype if isinstance(a, Tensor) else b.dtype
    return [ctx.result(X.Bin("@", ctx.tensor(a), ctx.tensor(b)), dtype, (*batch, sa[-2], sb[-1]), inputs=ins)]


@rule("Gemm")
def _gemm(ctx: Context, node, ins):
    a = attrs(node)
    x, alpha, beta = ins[0], a.get("alpha", 1.0), a.get("beta", 1.0)
    if not isinstance(x, Tensor) or x.rank != 2:
        raise Unsupported("its first operand is not a computed matrix")
    if not isinstance(ins[1], Known):
        raise Unsupported("its weight is computed by the model (only a weight initializer becomes a dense layer)")
    w = _weight(ctx, ins[1], "weight")
    w = (w.T if a.get("transB", 0) else w) * np.asarray(alpha, w.dtype)
    src = ctx.tensor(x)
    if a.get("transA", 0):
        src = X.Call("transpose", (src,))
    units = w.shape[1]
    owned = X.Owned("dense", {"W": np.ascontiguousarray(w)})
    kw: tuple = ()
    c = ins[2] if len(ins) > 2 else None
    if c is None:
        kw = (("bias", X.Lit(False)),)
    else:
        bias = _weight(ctx, c, "bias") * np.asarray(beta, w.dtype)
        if bias.size not in (1, units) or (bias.ndim == 2 and bias.shape[0] != 1):
            raise Unsupported(f"its bias {list(bias.shape)} is not one value per unit")
        owned.arrays["b"] = np.broadcast_to(bias.reshape(-1), (units,)).astype(w.dtype)
    e = X.Call("dense", (src, X.lit(units)), kw, owned)
    return [ctx.result(e, x.dtype, (x.shape[1] if a.get("transA", 0) else x.shape[0], units), inputs=ins)]


# ---- convolution ------------------------------------------------------------------------------------------------


def _pads(node, x: Tensor, kernel, stride, dilation) -> list[int]:
    """ONNX pads [top, left, bottom, right], with auto_pad resolved."""
    a = attrs(node)
    mode = a.get("auto_pad", "NOTSET")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode in ("NOTSET",):
        pads = list(a.get("pads", [0, 0, 0, 0]))
    elif mode == "VALID":
        pads = [0, 0, 0, 0]
    else:  # SAME_UPPER / SAME_LOWER: output ceil(size / stride)
        pads = [0, 0, 0, 0]
        for i in range(2):
            size = x.shape[2 + i]
            out = -(-size // stride[i])
            total = max((out - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 - size, 0)
            small, big = total // 2, total - total // 2
            pads[i], pads[2 + i] = (small, big) if mode == "SAME_UPPER" else (big, small)
    return pads


def _image(x, what: str) -> Tensor:
    if not isinstance(x, Tensor) or x.rank != 4 or not all(isinstance(d, int) for d in x.shape[1:]):
        shape = list(x.shape) if isinstance(x, Tensor) else "constant"
        raise Unsupported(f"{what} takes an NCHW image batch with static C, H, W here, got {shape} (1-D and 3-D "
                          "convolutions are not in the language)")
    return x


def _pair(values, default) -> tuple[int, int]:
    v = list(values) if values is not None else [default, default]
    if len(v) != 2:
        raise Unsupported(f"it has {len(v)} spatial axes; the language convolves and pools 2-D images")
    return int(v[0]), int(v[1])


def _window_kwargs(kernel, stride, pads, dilation, default_stride) -> list[tuple[str, X.Expr]]:
    kw = []
    if stride != default_stride:
        kw.append(("stride", _pair_expr(stride)))
    if any(pads):
        top, left, bottom, right = pads
        if top == bottom and left == right:
            kw.append(("padding", _pair_expr((top, left))))
        else:
            kw.append(("padding", X.lit([top, left, bottom, right])))
    if dilation != (1, 1):
        kw.append(("dilation", _pair_expr(dilation)))
    return kw


def _pair_expr(p) -> X.Expr:
    return X.lit(p[0]) if p[0] == p[1] else X.lit(list(p))


def _convolution(ctx: Context, node, ins):
    """What Conv and ConvTranspose share: the image, the weight (4-D: 2-D convolution), groups, strides, dilations,
    and the bias the layer owns (or bias = false)."""
    x = _image(ins[0], node.op_type)
    w = _weight(ctx, ins[1], "weight")
    if w.ndim != 4:
        raise Unsupported(f"its weight has {w.ndim} axes; the language convolves 2-D images")
    a = attrs(node)
    group = int(a.get("group", 1))
    stride, dilation = _pair(a.get("strides"), 1), _pair(a.get("dilations"), 1)
    owned = X.Owned("conv2d" if node.op_type == "Conv" else "conv_transpose2d", {"W": w})
    extra: list[tuple[str, X.Expr]] = [("groups", X.lit(group))] if group != 1 else []
    if len(ins) > 2 and ins[2] is not None:
        owned.arrays["b"] = _weight(ctx, ins[2], "bias").reshape(-1)
    else:
        extra.append(("bias", X.Lit(False)))
    return x, w, a, group, (w.shape[2], w.shape[3]), stride, dilation, owned, extra


@rule("Conv")
def _conv(ctx: Context, node, ins):
    x, w, _, _, kernel, stride, dilation, owned, extra = _convolution(ctx, node, ins)
    pads = _pads(node, x, kernel, stride, dilation)
    kw = _window_kwargs(kernel, stride, pads, dilation, (1, 1)) + extra
    oh = out_size(x.shape[2], kernel[0], stride[0], pads[0], pads[2], dilation[0])
    ow = out_size(x.shape[3], kernel[1], stride[1], pads[1], pads[3], dilation[1])
    e = X.Call("conv2d", (ctx.tensor(x), X.lit(w.shape[0]), _pair_expr(kernel)), tuple(kw), owned)
    return [ctx.result(e, x.dtype, (x.shape[0], w.shape[0], oh, ow), inputs=ins)]


@rule("ConvTranspose")
def _conv_transpose(ctx: Context, node, ins):
    x, w, a, group, kernel, stride, dilation, owned, tail = _convolution(ctx, node, ins)
    extra = _pair(a.get("output_padding"), 0)
    if "output_shape" in a or a.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        raise Unsupported("its output_shape or auto_pad is not supported; give pads")
    pads = list(a.get("pads", [0, 0, 0, 0]))
    filters = w.shape[1] * group
    kw = _window_kwargs(kernel, stride, pads, dilation, (1, 1))
    if extra != (0, 0):
        kw.append(("output_padding", _pair_expr(extra)))
    kw += tail
    size = [stride[i] * (x.shape[2 + i] - 1) + extra[i] + (kernel[i] - 1) * dilation[i] + 1 - pads[i] - pads[2 + i]
            for i in range(2)]
    e = X.Call("conv_transpose2d", (ctx.tensor(x), X.lit(filters), _pair_expr(kernel)), tuple(kw), owned)
    return [ctx.result(e, x.dtype, (x.shape[0], filters, *size), inputs=ins)]


# ---- pooling --------------------------------------------------------------------------------------------------------


@rule("MaxPool", "AveragePool")
def _pool(ctx: Context, node, ins):
    x = _image(ins[0], node.op_type)
    a = attrs(node)
    kernel = _pair(a.get("kernel_shape"), 1)
    stride, dilation = _pair(a.get("strides"), 1), _pair(a.get("dilations"), 1)
    if dilation != (1, 1):
        raise Unsupported("it pools with dilations")
    if len(node.output) > 1 and node.output[1] and ctx.uses.get(node.output[1], 0):
        raise Unsupported("its Indices output is used")
    pads = _pads(node, x, kernel, stride, dilation)
    if node.op_type == "AveragePool" and a.get("count_include_pad", 0) and any(pads):
        raise Unsupported("it averages padding into its windows (count_include_pad=1 with pads); the language's "
                          "avg_pool averages real pixels only")
    if a.get("ceil_mode", 0):  # more padding at the end, so the floor of the window count is the ceiling
        for i in range(2):
            span = x.shape[2 + i] + pads[i] + pads[2 + i] - kernel[i]
            extra = (-span) % stride[i]
            last = (span + extra) // stride[i] * stride[i]
            if extra and last >= x.shape[2 + i] + pads[i]:  # the ceiling's last window would start in the padding
                extra -= stride[i]
            pads[2 + i] += max(extra, 0)
    oh = out_size(x.shape[2], kernel[0], stride[0], pads[0], pads[2], 1)
    ow = out_size(x.shape[3], kernel[1], stride[1], pads[1], pads[3], 1)
    func = "max_pool" if node.op_type == "MaxPool" else "avg_pool"
    kw = _window_kwargs(kernel, stride, pads, (1, 1), kernel)
    e = X.Call(func, (ctx.tensor(x), _pair_expr(kernel)), tuple(kw))
    return [ctx.result(e, x.dtype, (x.shape[0], x.shape[1], oh, ow), inputs=ins)]


@rule("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx: Context, node, ins):
    x = ins[0]
    if x.rank < 3:
        raise Unsupported("it pools a tensor without spatial axes")
    func = "mean" if node.op_type == "GlobalAveragePool" else "max"
    spatial = list(range(2, x.rank))
    e = X.Call(func, (ctx.tensor(x),), (("axis", X.lit(spatial)), ("keepdims", X.Lit(True))))
    tag = "gap" if x.rank == 4 and node.op_type == "GlobalAveragePool" else ""  # Flatten: global_avg_pool(x)
    return [ctx.result(e, x.dtype, (*x.shape[:2], *([1] * len(spatial))), tag=tag, inputs=ins)]


# ---- normalization ---------------------------------------------------------------------------------------------------


@rule("BatchNormalization")
def _batch_norm(ctx: Context, node, ins):
    x = ins[0]
    a = attrs(node)
    if a.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
        raise Unsupported("it is in training mode (running statistics as outputs); export the model for inference")
    if x.rank < 2 or not isinstance(x.shape[1], int):
        raise Unsupported(f"it normalizes {list(x.shape)}, whose channel dim is not static")
    scale, bias, mean, var = (_weight(ctx, v, what).reshape(-1) for v, what in
                              zip(ins[1:5], ("scale", "bias", "mean", "variance"), strict=True))
    owned = X.Owned("batch_norm", {"gamma": scale, "beta": bias, "running_mean": mean, "running_var": var})
    kw = []
    eps, momentum = a.get("epsilon", 1e-5), a.get("momentum", 0.9)
    if abs(eps - 1e-5) > 1e-12:
        kw.append(("eps", X.lit(_f32(eps))))
    if abs(momentum - 0.9) > 1e-7:
        kw.append(("momentum", X.lit(_f32(momentum))))
    return [ctx.result(X.Call("batch_norm", (ctx.tensor(x),), tuple(kw), owned), x.dtype, x.shape, inputs=ins)]


@rule("LayerNormalization")
def _layer_norm(ctx: Context, node, ins):
    x = ins[0]
    a = attrs(node)
    ax = axis(a.get("axis", -1), x.rank)
    if ax != x.rank - 1:
        raise Unsupported(f"it normalizes axes {ax}.. together; the language's layer_norm normalizes the last axis")
    if len([o for o in node.output if o]) > 1 and any(ctx.uses.get(o, 0) for o in node.output[1:]):
        raise Unsupported("its mean or inverse standard deviation output is used")
    d = x.shape[-1]
    scale = _weight(ctx, ins[1], "scale").reshape(-1)
    bias = _weight(ctx, ins[2], "bias").reshape(-1) if len(ins) > 2 and ins[2] is not None else \
        np.zeros(d, scale.dtype)
    return [layer_norm(ctx, x, scale, bias, a.get("epsilon", 1e-5), ins)]


def layer_norm(ctx: Context, x: Tensor, scale, bias, eps: float, ins) -> Tensor:
    d = x.shape[-1]
    if scale.size != d or bias.size != d:
        raise Unsupported(f"its scale and bias have {scale.size} and {bias.size} values for a last axis of {d}")
    owned = X.Owned("layer_norm", {"gamma": scale, "beta": bias})
    kw = () if abs(eps - 1e-5) < 1e-12 else (("eps", X.lit(_f32(eps))),)
    return ctx.result(X.Call("layer_norm", (ctx.tensor(x),), kw, owned), x.dtype, x.shape, inputs=ins)




# ---- resizing -----------------------------------------------------------------------------------------------------


COORDINATES = resize.COORDINATES  # what the language's resize takes


@rule("Resize", "Upsample")
def _resize(ctx: Context, node, ins):
    x = _image(ins[0], node.op_type)
    a = attrs(node)
    mode = _text(a.get("mode", "nearest"))
    coords = _text(a.get("coordinate_transformation_mode", "half_pixel" if node.op_type == "Resize" else
                         "asymmetric"))
    nearest = _text(a.get("nearest_mode", "round_prefer_floor"))
    if ctx.opset < 11 or node.op_type == "Upsample":
        coords, nearest = "asymmetric", "floor"
    if node.op_type == "Upsample":
        scales = ctx.known(ins[1], "scales").tolist() if len(ins) > 1 else a["scales"]
        sizes = None
    else:
        scales = ctx.known(ins[2], "scales").tolist() if len(ins) > 2 and ins[2] is not None and \
            ctx.known(ins[2], "scales").size else None
        sizes = ctx.known(ins[3], "sizes").tolist() if len(ins) > 3 and ins[3] is not None else None
    if mode not in ("nearest", "linear"):
        raise Unsupported(f"its mode {mode} is not nearest or linear")
    if any(a.get(k) for k in ("antialias", "exclude_outside")) or _text(a.get("keep_aspect_ratio_policy",
                                                                             "stretch")) != "stretch":
        raise Unsupported("it uses antialias, exclude_outside or a keep_aspect_ratio_policy")
    if "axes" in a:
        raise Unsupported("it resizes selected axes")
    if coords not in COORDINATES:
        raise Unsupported(f"its coordinate_transformation_mode {coords} is not one of {', '.join(COORDINATES)}")
    if sizes is not None:
        if list(sizes[:2]) != list(x.shape[:2]):
            raise Unsupported("it resizes the batch or channel axis")
        out = [int(s) for s in sizes[2:]]
        kw = [("size", X.lit(out))]
    else:
        if scales is None or [float(s) for s in scales[:2]] != [1.0, 1.0]:
            raise Unsupported("it resizes the batch or channel axis")
        sh, sw = float(scales[2]), float(scales[3])
        if not all(float(d * s).is_integer() for d, s in ((x.shape[2], sh), (x.shape[3], sw))):
            # ONNX maps coordinates with the scale itself, not with the output size it rounds down to
            raise Unsupported(f"its scales {sh:g}, {sw:g} do not give whole sizes for {x.shape[2]}x{x.shape[3]}; "
                              "bmc resizes to whole sizes (give sizes instead)")
        out = [int(x.shape[2] * sh), int(x.shape[3] * sw)]
        kw = [("scale", X.lit(_num(sh)) if sh == sw else X.lit([_num(sh), _num(sw)]))]
    kw.append(("mode", X.Lit(mode)))
    if coords != "half_pixel":
        kw.append(("coordinates", X.Lit(coords)))
    if mode == "nearest" and nearest != "round_prefer_floor":
        kw.append(("nearest", X.Lit(nearest)))
    e = X.Call("resize", (ctx.tensor(x),), tuple(kw))
    return [ctx.result(e, x.dtype, (*x.shape[:2], *out), inputs=ins)]


def _num(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else v
