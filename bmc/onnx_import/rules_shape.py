"""Import rules for data movement: reshapes, transposes, concatenation, slicing and gathering, and the shape
computations whose results are dims (folded in fold.py once their inputs are known)."""

from __future__ import annotations

import itertools

import numpy as np
import onnx

from bmc.ir import dims
from bmc.onnx_import import expr as X
from bmc.onnx_import.broadcast import axis
from bmc.onnx_import.context import Context, Unsupported, attrs, rule
from bmc.onnx_import.fold import known_dims, shape_of
from bmc.onnx_import.values import Known, Tensor

INT_MAX = 2**62  # ONNX writes "to the end" as INT64_MAX (or INT32_MAX in old exporters)


@rule("Identity")
def _identity(ctx: Context, node, ins):
    return [ins[0]]


@rule("Dropout")
def _dropout(ctx: Context, node, ins):
    x = ins[0]
    ratio = attrs(node).get("ratio", 0.5) if ctx.opset < 12 else (
        0.5 if len(ins) < 2 or ins[1] is None else float(ctx.known(ins[1], "ratio").reshape(())))
    if len(ins) > 2 and ins[2] is not None and bool(ctx.known(ins[2], "training_mode").reshape(())):
        raise Unsupported("its training_mode is true: it drops values at inference, which bmc's dropout never does")
    if len(node.output) > 1 and node.output[1] and ctx.uses.get(node.output[1], 0):
        raise Unsupported("its mask output is used; bmc's dropout draws its own masks")
    if ratio <= 0:
        return [x]
    e = X.Call("dropout", (ctx.tensor(x),), (("rate", X.lit(ratio)),))
    return [ctx.result(e, x.dtype, x.shape, inputs=ins)]


@rule("Shape")
def _shape(ctx: Context, node, ins):
    shape = ins[0].shape
    a = attrs(node)
    start, end = a.get("start", 0), a.get("end", len(shape))
    return [known_dims(shape_of(shape)[start:end])]


@rule("Size")
def _size(ctx: Context, node, ins):
    return [known_dims(np.asarray(dims.product(list(ins[0].shape)), dtype=object))]


@rule("Constant")
def _constant(ctx: Context, node, ins):
    a = attrs(node)
    if "value" in a:
        return [Known(onnx.numpy_helper.to_array(a["value"]))]
    for key, dtype in (("value_float", np.float32), ("value_int", np.int64), ("value_floats", np.float32),
                       ("value_ints", np.int64)):
        if key in a:
            return [Known(np.asarray(a[key], dtype=dtype))]
    raise Unsupported(f"its value kind ({', '.join(a)}) is not a dense tensor")


@rule("ConstantOfShape")
def _constant_of_shape(ctx: Context, node, ins):
    shape = ctx.known(ins[0], "shape")
    if shape.dtype == object:
        raise Unsupported(f"it fills a tensor of the symbolic shape {list(shape)}")
    fill = onnx.numpy_helper.to_array(attrs(node)["value"]) if "value" in attrs(node) else np.zeros(1, np.float32)
    return [Known(np.full(tuple(int(d) for d in shape), fill.reshape(-1)[0], dtype=fill.dtype))]


# ---- views: transpose and reshape, composed when one feeds another ---------------------------------------------


def transpose(ctx: Context, x: Tensor, perm: list[int], ins) -> Tensor:
    """transpose(x, perm), composed with x when x is itself a transpose written inline (nothing when they cancel)."""
    if perm == list(range(x.rank)):
        return x
    shape = tuple(x.shape[p] for p in perm)
    collapsed = _collapsed(ctx, x, ("transpose", tuple(perm)), shape, ins)
    if collapsed is not None:
        return collapsed
    t = _transpose_of(ctx, x, perm, ins)  # first: it may give x a statement, which then roots the chain
    view = _extended(ctx, x, ("transpose", tuple(perm)))
    t.view = view or (x.expr, x.shape, (("transpose", tuple(perm)),))  # x.expr: what t's expression reads
    return t


def _transpose_of(ctx: Context, x: Tensor, perm: list[int], ins) -> Tensor:
    e = x.expr
    if ctx.inlinable(x) and isinstance(e, X.Call) and e.func == "transpose" and x.base_shape is not None:
        first = [i.value for i in e.args[1].items]
        perm = [first[p] for p in perm]  # transpose(transpose(b, p), q) = transpose(b, p[q])
        if perm == list(range(x.rank)):
            return ctx.result(e.args[0], x.dtype, x.base_shape, inputs=ins)
        return _view(ctx, X.Call("transpose", (e.args[0], X.lit(perm))), x.dtype, x.base_shape, perm, ins)
    return _view(ctx, X.Call("transpose", (ctx.tensor(x, view=True), X.lit(perm))), x.dtype, x.shape, perm, ins)


def _view(ctx: Context, e: X.Expr, dtype: str, base_shape, perm, ins) -> Tensor:
    t = ctx.result(e, dtype, tuple(base_shape[p] for p in perm), inputs=ins)
    t.base_shape = tuple(base_shape)
    return t


def reshape(ctx: Context, x: Tensor, shape: tuple, ins) -> Tensor:
    """x reshaped to `shape` (dims, no -1 or 0), writing the least: nothing for the same shape, one reshape for a
    reshape of a reshape, flatten(x) for [N, everything else]."""
    shape = tuple(shape)
    if shape == x.shape:
        return x
    if dims.product(list(shape)) != dims.product(list(x.shape)):
        raise Unsupported(f"it reshapes {list(x.shape)} into {list(shape)}")
    collapsed = _collapsed(ctx, x, ("reshape", shape), shape, ins)
    if collapsed is not None:
        return collapsed
    t = _reshape_of(ctx, x, shape, ins)  # first: it may give x a statement, which then roots the chain
    view = _extended(ctx, x, ("reshape", shape))
    t.view = view or (x.expr, x.shape, (("reshape", shape),))  # x.expr: what t's expression reads
    return t


def _reshape_of(ctx: Context, x: Tensor, shape: tuple, ins) -> Tensor:
    e = x.expr
    if x.tag == "gap" and ctx.inlinable(x) and shape == x.shape[:2]:  # GlobalAveragePool, then Flatten
        return ctx.result(X.Call("global_avg_pool", (e.args[0],)), x.dtype, shape, inputs=ins)
    if ctx.inlinable(x) and isinstance(e, X.Call) and e.func in ("reshape", "flatten") and x.base_shape is not None:
        base, base_shape = e.args[0], x.base_shape
        if base_shape == shape:
            t = ctx.result(base, x.dtype, shape, inputs=ins)
            if isinstance(base, X.Call) and base.func == "transpose":  # a transpose again: later ones compose with it
                perm = [i.value for i in base.args[1].items]
                t.base_shape = tuple(shape[perm.index(i)] for i in range(len(perm)))
            return t
    else:
        base, base_shape = ctx.tensor(x, view=True), x.shape
    if len(shape) == 2 and len(base_shape) > 2 and shape[0] == base_shape[0]:
        e = X.Call("flatten", (base,))
    else:
        e = X.Call("reshape", (base, X.shape(shape)))
    t = ctx.result(e, x.dtype, shape, inputs=ins)
    t.base_shape = base_shape
    return t


# A chain of reshapes and transposes written inline (as exporters write a batch-first LSTM's or an attention's
# layout changes) is tracked from its root; when the whole chain moves the root's elements as one reshape or one
# transpose does, that one is written. The chain is run on the root's element numbers, its symbolic dims bound to
# small primes (twice, to different ones), and compared with the candidates.

PROBE_LIMIT = 1 << 20  # elements; a bigger root is not probed


def _own(ctx: Context, x: Tensor) -> bool:
    """x is an expression no one else reads, so a later step may rewrite it."""
    if x.inner:  # a rule's own step
        return not isinstance(x.expr, X.Ref)
    return not isinstance(x.expr, X.Ref) and ctx.uses.get(x.onnx, 0) <= 1 and x.onnx not in ctx.outputs


def _extended(ctx: Context, x: Tensor, step) -> tuple | None:
    """x's chain with one more step, when x is a chain's end that no one else reads."""
    if x.view is not None and _own(ctx, x):
        root, root_shape, steps = x.view
        return root, root_shape, (*steps, step)
    return None


def _collapsed(ctx: Context, x: Tensor, step, shape: tuple, ins) -> Tensor | None:
    """The chain ending in x, one step longer, as the one reshape or transpose of its root it is; None if it is not
    (or is not a chain)."""
    view = _extended(ctx, x, step)
    if view is None:
        return None
    root, root_shape, steps = view
    found = None
    for primes in ((3, 5, 7, 11), (13, 17, 19, 23)):
        kind = _probe(root_shape, steps, shape, primes)
        if kind is None or (found is not None and kind != found):
            return None
        found = kind
    if found == ("same",):
        t = ctx.result(root, x.dtype, root_shape, inputs=ins)
        t.view = None
        return t
    if found[0] == "transpose":
        e = X.Call("transpose", (root, X.lit(list(found[1]))))
    elif len(shape) == 2 and len(root_shape) > 2 and shape[0] == root_shape[0]:
        e = X.Call("flatten", (root,))
    else:
        e = X.Call("reshape", (root, X.shape(shape)))
    t = ctx.result(e, x.dtype, shape, inputs=ins)
    t.base_shape = tuple(root_shape)
    t.view = (root, tuple(root_shape), (found if found[0] == "transpose" else ("reshape", shape),))
    return t


def _probe(root_shape, steps, shape, primes):
    """("same",), ("reshape",) or ("transpose", perm) when the chain moves the root's elements as that one step
    does, with the root's symbolic dims bound to `primes`; None otherwise."""
    symbols = sorted({s for d in root_shape for s in dims.symbols_in(d)})
    if len(symbols) > len(primes):
        return None
    binding = dict(zip(symbols, primes, strict=False))

    def size(d) -> int:
        static, syms = dims.factors(d)
        return int(static * np.prod([binding[s] for s in syms], dtype=np.int64))  # KeyError: a new symbol

    try:
        start = tuple(size(d) for d in root_shape)
        total = int(np.prod(start, dtype=np.int64))
        if total > PROBE_LIMIT:
            return None
        a = np.arange(total).reshape(start)
        for kind, arg in steps:
            a = a.transpose(arg) if kind == "transpose" else a.reshape(tuple(size(d) for d in arg))
    except (KeyError, ValueError):
        return None
    if np.array_equal(a.reshape(-1), np.arange(total)):
        return ("same",) if tuple(shape) == tuple(root_shape) else ("reshape",)
    if len(shape) != len(root_shape) or len(shape) > 6:
        return None
    base = np.arange(total).reshape(start)
    for perm in itertools.permutations(range(len(shape))):
        if tuple(root_shape[p] for p in perm) == tuple(shape) and np.array_equal(base.transpose(perm), a):
            return ("transpose", perm)
    return None


@rule("Reshape")
def _reshape(ctx: Context, node, ins):
    x, target = ins[0], ctx.known(ins[1], "shape")
    allowzero = attrs(node).get("allowzero", 0)
    out = [x.shape[i] if (d == 0 and not allowzero and not isinstance(d, str)) else d
           for i, d in enumerate(target.reshape(-1).tolist())]
    if -1 in out:
        known = dims.product([d for d in out if d != -1])
        rest = dims.quotient(dims.product(list(x.shape)), known)
        if rest is None:
            raise Unsupported(f"its -1 in {out} cannot be resolved for input {list(x.shape)}")
        out = [rest if d == -1 else d for d in out]
    return [reshape(ctx, x, tuple(out), ins)]


@rule("Flatten")
def _flatten(ctx: Context, node, ins):
    x = ins[0]
    ax = attrs(node).get("axis", 1)
    if not -x.rank <= ax <= x.rank:
        raise Unsupported(f"its axis {ax} is out of range for rank {x.rank}")
    ax = ax + x.rank if ax < 0 else ax
    return [reshape(ctx, x, (dims.product(list(x.shape[:ax])), dims.product(list(x.shape[ax:]))), ins)]


@rule("Squeeze")
def _squeeze(ctx: Context, node, ins):
    x = ins[0]
    axes = attrs(node).get("axes") if ctx.opset < 13 else (
        None if len(ins) < 2 or ins[1] is None else ctx.known(ins[1], "axes").reshape(-1).tolist())
    axes = [i for i, d in enumerate(x.shape) if d == 1] if axes is None else [axis(a, x.rank) for a in axes]
    if any(x.shape[a] != 1 for a in axes):
        raise Unsupported(f"it squeezes axes {axes} of {list(x.shape)}, which are not all 1")
    return [reshape(ctx, x, tuple(d for i, d in enumerate(x.shape) if i not in axes), ins)]


@rule("Unsqueeze")
def _unsqueeze(ctx: Context, node, ins):
    x = ins[0]
    axes = attrs(node).get("axes") if ctx.opset < 13 else ctx.known(ins[1], "axes").reshape(-1).tolist()
    rank = x.rank + len(axes)
    axes = sorted(axis(a, rank) for a in axes)
    shape, rest = [], iter(x.shape)
    for i in range(rank):
        shape.append(1 if i in axes else next(rest))
    return [reshape(ctx, x, tuple(shape), ins)]


@rule("Transpose")
def _transpose(ctx: Context, node, ins):
    x = ins[0]
    perm = attrs(node).get("perm", list(range(x.rank))[::-1])
    return [transpose(ctx, x, list(perm), ins)]


@rule("Concat")
def _concat(ctx: Context, node, ins):
    ts = [v for v in ins if v is not None]
    first = next(v for v in ts if isinstance(v, Tensor))
    ax = axis(attrs(node)["axis"], first.rank)
    parts = [v for v in ts if not (isinstance(v, Known) and v.value.size == 0)]
    total = 0
    for v in parts:
        d = v.shape[ax] if isinstance(v, Tensor) else v.value.shape[ax]
        if not isinstance(d, int):
            raise Unsupported("it concatenates along a symbolic dim")
        total += d
    shape = tuple(total if i == ax else d for i, d in enumerate(first.shape))
    if len(parts) == 1:
        return [parts[0]]
    e = X.Call("concat", (X.Items(tuple(ctx.tensor(v) for v in parts)),),
               () if ax == first.rank - 1 else (("axis", X.lit(ax)),))
    return [ctx.result(e, first.dtype, shape, inputs=ins)]


# ---- slicing --------------------------------------------------------------------------------------------------------


def subscript(ctx: Context, x: Tensor, ranges: dict[int, tuple[int, int, int]], drop: set[int], ins, out=0) -> Tensor:
    """x[...] with one (start, stop, step) per sliced axis, normalized to the axis' size; axes in `drop` take one
    index and disappear."""
    index: list = []
    shape = []
    for i, d in enumerate(x.shape):
        if i in drop:
            index.append(ranges[i][0])
            continue
        if i not in ranges:
            index.append(X.Slice())
            shape.append(d)
            continue
        start, stop, step = ranges[i]
        if isinstance(stop, str):  # to a symbolic length (checked against d when the model runs)
            index.append(X.Slice(None, stop))
            shape.append(stop)
            continue
        if not isinstance(d, int):
            raise Unsupported(f"it slices the symbolic dim {d}")
        n = len(range(start, stop, step))
        if n == 0:
            raise Unsupported("it makes an empty slice")
        if n == d and step == 1:
            index.append(X.Slice())
            shape.append(d)
            continue
        index.append(X.Slice(start if start != (0 if step > 0 else d - 1) else None,
                             stop if stop not in ((d, None) if step > 0 else (-1,)) else None,
                             step if step != 1 else None))
        shape.append(n)
    while index and isinstance(index[-1], X.Slice) and index[-1] == X.Slice():
        index.pop()
    if not index:
        return x
    return ctx.result(X.Sub(ctx.tensor(x), tuple(index)), x.dtype, tuple(shape), out=out, inputs=ins)


def _clamp(start: int, stop: int, step: int, d: int) -> tuple[int, int, int]:
    """ONNX Slice's clamping of one axis: negative indices count from the end, then bounds clamp to the axis."""
    start = start + d if start < 0 else start
    stop = stop + d if stop < 0 else stop
    if step > 0:
        start, stop = min(max(start, 0), d), min(max(stop, 0), d)
    else:
        start, stop = min(max(start, -1), d - 1), min(max(stop, -1), d - 1)
    if not range(start, stop, step):
        raise Unsupported("it makes an empty slice")
    return start, (stop if stop >= 0 else -1), step


@rule("Slice")
def _slice(ctx: Context, node, ins):
    x = ins[0]
    if ctx.opset < 10:
        a = attrs(node)
        starts, ends = a["starts"], a["ends"]
        axes, steps = a.get("axes", list(range(len(starts)))), [1] * len(starts)
    else:
        starts, ends = ctx.known(ins[1], "starts").tolist(), ctx.known(ins[2], "ends").tolist()
        axes = ctx.known(ins[3], "axes").tolist() if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
        steps = ctx.known(ins[4], "steps").tolist() if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    if isinstance(x, Known):  # a table cut to a dynamic length: a parameter, sliced in the model
        x = ctx.as_tensor(x, "data")
    ranges = {}
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
        ax = axis(int(a), x.rank)
        d = x.shape[ax]
        if isinstance(e, str) or isinstance(s, str) or isinstance(st, str):
            if isinstance(e, str) and int(s) == 0 and int(st) == 1 and isinstance(d, int):
                ranges[ax] = (0, e, 1)  # the first T: table[:T]
                continue
            raise Unsupported(f"it slices at the symbolic position {s}:{e}:{st}; the language cuts a static axis "
                              "from 0 to a symbolic length only (table[:T])")
        if not isinstance(d, int):
            if int(s) == 0 and int(e) >= INT_MAX // 4 and int(st) == 1:
                continue  # the whole symbolic axis
            raise Unsupported(f"it slices the symbolic dim {d}")
        ranges[ax] = _clamp(int(s), int(min(max(e, -INT_MAX), INT_MAX)), int(st), d)
    return [subscript(ctx, x, ranges, set(), ins)]


@rule("Split")
def _split(ctx: Context, node, ins):
    x, a = ins[0], attrs(node)
    ax = axis(a.get("axis", 0), x.rank)
    d = x.shape[ax]
    if not isinstance(d, int):
        raise Unsupported(f"it splits the symbolic dim {d}")
    if ctx.opset >= 13 and len(ins) > 1 and ins[1] is not None:
        sizes = ctx.known(ins[1], "split").tolist()
    elif "split" in a:
        sizes = list(a["split"])
    else:
        n = a.get("num_outputs", len(node.output))
        each = -(-d // n)
        sizes = [min(each, d - i * each) for i in range(n)]
    outs, start = [], 0
    for k, size in enumerate(sizes):
        outs.append(subscript(ctx, x, {ax: (start, start + size, 1)}, set(), ins, out=k))
        start += size
    return outs


@rule("Gather")
def _gather(ctx: Context, node, ins):
    data, idx = ins
    ax = axis(attrs(node).get("axis", 0), data.rank if isinstance(data, Tensor) else data.value.ndim)
    if isinstance(data, Known):  # a table of embeddings looked up by computed ids
        table = data.value
        if ax != 0 or table.ndim != 2 or table.dtype.kind != "f" or data.symbolic:
            raise Unsupported("it gathers from a constant that is not a [vocab, dim] float table along axis 0")
        owned = X.Owned("embedding", {"table": table})
        e = X.Call("embedding", (ctx.tensor(idx, "indices"), X.lit(table.shape[0]), X.lit(table.shape[1])),
                   owned=owned)
        return [ctx.result(e, "f64" if table.dtype == np.float64 else "f32", (*idx.shape, table.shape[1]),
                           inputs=ins)]
    d = data.shape[ax]
    i = ctx.known(idx, "indices")
    if i.ndim == 0:
        k = int(i) + (d if int(i) < 0 and isinstance(d, int) else 0)
        if k < 0:
            raise Unsupported("it gathers a negative index from a symbolic dim")
        return [subscript(ctx, data, {ax: (k, k + 1, 1)}, {ax}, ins)]
    flat = [int(v) + (d if v < 0 and isinstance(d, int) else 0) for v in i.reshape(-1)]
    if isinstance(d, int) and any(not 0 <= k < d for k in flat):
        raise Unsupported(f"its indices {i.reshape(-1).tolist()} are out of range for an axis of {d}")
    if i.ndim == 1 and len(flat) == 1:  # one index, the axis kept
        return [subscript(ctx, data, {ax: (flat[0], flat[0] + 1, 1)}, set(), ins)]
    if i.ndim == 1 and len(flat) > 1 and all(b - a == flat[1] - flat[0] for a, b in itertools.pairwise(flat)) and \
            flat[1] != flat[0]:
        step = flat[1] - flat[0]
        stop = flat[-1] + step
        return [subscript(ctx, data, {ax: (flat[0], stop if stop >= 0 else -1, step)}, set(), ins)]
    raise Unsupported("it gathers computed data at irregular constant indices")


@rule("Expand")
def _expand(ctx: Context, node, ins):
    x, shape = ins[0], ctx.known(ins[1], "shape").tolist()
    from bmc.onnx_import.broadcast import broadcast

    out = broadcast(x.shape, tuple(shape))
    if out == x.shape:
        return [x]
    # x broadcast against zeros of the wider shape: where(true, x, 0) cannot widen, so add a zero tensor
    raise Unsupported(f"it broadcasts {list(x.shape)} to {list(out)} on its own; the language broadcasts only "
                      "inside arithmetic")

