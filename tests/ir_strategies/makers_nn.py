"""Op makers for products, neural-network composites, losses, lookups, normalization, images, attention masks,
randomness and recurrences; parameters they need are new graph inputs."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from bmc import ops
from bmc.ir.graph import Value
from bmc.ir.types import INT_DTYPES, TensorType
from tests.ir_strategies.generator import LIMIT, Generator, has_rank, image, is_float


def matmul(g: Generator) -> None:
    a = g.pick(has_rank(2))
    if a is None:
        return
    ta, tb = g.flag(), g.flag()
    k = a.type.shape[-2] if ta else a.type.shape[-1]

    def fits(v: Value) -> bool:
        return v.type.rank >= 2 and v.type.dtype == a.type.dtype and (v.type.shape[-1] if tb else v.type.shape[-2]) == k

    b = g.pick(fits) if g.flag() else None
    if b is None:
        n = g.choice([1, 2, 3, 4, k])
        batch = g.variant(a.type.shape[:-2]) if g.flag() else ()  # batch dims broadcast
        b = g.fresh(a.type.with_shape((*batch, n, k) if tb else (*batch, k, n)), role="param")
    limit = math.sqrt(LIMIT / g.dim_max(k))
    a, b = g.bounded(a, limit), g.bounded(b, limit)
    m = g.dim_max(k) * g.mag(a) * g.mag(b)
    g.emit(ops.MatMul(ta, tb), a, b, bound=(-m, m))


def dense(g: Generator) -> None:
    x = g.pick(has_rank(1))
    if x is None:
        return
    k = x.type.shape[-1]
    w = g.fresh(x.type.with_shape((k, g.integer(1, 4))), role="param")
    bias = g.fresh(x.type.with_shape(w.type.shape[1:]), role="param")
    x = g.bounded(x, math.sqrt(LIMIT / g.dim_max(k)))
    m = g.dim_max(k) * g.mag(x) * g.mag(w) + g.mag(bias)
    g.emit(ops.Dense(), x, w, bias, bound=(-m, m))


def softmax(g: Generator) -> None:
    x = g.pick(has_rank(1))
    if x is None:
        return
    axis = g.integer(-x.type.rank, x.type.rank - 1)
    if g.flag():
        g.emit(ops.Softmax(axis), x, bound=(0.0, 1.0))
    else:
        lo, hi = g.bound[x]
        g.emit(ops.LogSoftmax(axis), x, bound=(-(hi - lo) - math.log(g.dim_max(x.type.shape[axis])), 0.0))


def loss(g: Generator) -> None:
    z = g.pick(has_rank(1))
    if z is None:
        return
    kind = g.choice(["cross entropy", "mse", "binary cross entropy", "cross entropy probabilities"])
    span = g.mag(z) * 2 + 5
    if kind == "cross entropy":
        c = z.type.shape[-1]
        if not isinstance(c, int):
            return
        labels = g.pick(lambda v: v.type.dtype in INT_DTYPES and v.type.shape == z.type.shape[:-1]
                        and g.bound[v][0] >= 0 and g.bound[v][1] <= c - 1)
        if labels is None or g.flag():
            labels = g.fresh(TensorType("i64", z.type.shape[:-1]), 0, c - 1, role="target")
        g.emit(ops.CrossEntropy(), z, labels, bound=(0.0, span + math.log(c)))
    elif kind == "cross entropy probabilities":
        p = g.emit(ops.Softmax(-1), g.partner(z, same_shape=True), bound=(0.0, 1.0), pool=False)
        g.emit(ops.CrossEntropy(), z, p, bound=(0.0, span + math.log(g.dim_max(z.type.shape[-1]))))
    elif kind == "binary cross entropy":
        if g.flag():
            y = g.fresh(z.type, 0, 1, role="target") if g.flag() else g.fresh(z.type.with_dtype("i64"), 0, 1)
        else:
            y = g.emit(ops.Sigmoid(), g.partner(z, same_shape=True), bound=(0.0, 1.0), pool=False)
        g.emit(ops.BinaryCrossEntropy(), z, y, bound=(0.0, span))
    else:
        t = g.partner(z, same_shape=True)
        m = (g.mag(z) + g.mag(t)) ** 2
        g.emit(ops.MeanSquaredError(), z, t, bound=(0.0, m))


def one_hot(g: Generator) -> None:
    labels = g.pick(lambda v: v.type.dtype in INT_DTYPES)
    if labels is None:
        labels = g.fresh(TensorType("i64", g.variant(g.graph.inputs[0].type.shape)), -1, 4)
    g.emit(ops.OneHot(g.integer(1, 4), g.choice(g.spec.floats)), labels, bound=(0.0, 1.0))


def gather(g: Generator) -> None:
    table = g.pick(lambda v: v.type.rank >= 1 and isinstance(v.type.shape[0], int) and v.type.is_float)
    if table is None:
        return
    rows = table.type.shape[0]
    # ids in [0, rows): the language makes any other id an error (NumPy would wrap a negative one around)
    ids = g.pick(lambda v: v.type.dtype in INT_DTYPES and g.bound[v][0] >= 0 and g.bound[v][1] <= rows - 1)
    if ids is None or g.flag():
        shape = g.variant(g.graph.inputs[0].type.shape)[:2]
        ids = g.fresh(TensorType("i64", shape), 0, rows - 1)
    g.emit(ops.Gather(), table, ids, bound=g.bound[table])


def scatter_add(g: Generator) -> None:
    updates = g.pick(has_rank(1))
    if updates is None:
        return
    rows = g.integer(1, 4)
    lead = updates.type.shape[:g.integer(0, min(2, updates.type.rank))]
    ids = g.fresh(TensorType("i64", lead), 0, rows - 1, role="input")
    m = g.mag(updates) * g.count_max(lead)
    if m > LIMIT:
        return
    g.emit(ops.ScatterAdd(rows), ids, updates, bound=(-m, m))


def size_of(g: Generator) -> None:
    x = g.pick()
    if x is None:
        return
    r = x.type.rank
    axes = None if g.flag() or not r else tuple(sorted(g.draw(st.sets(st.integers(0, r - 1), min_size=1))))
    dtype = g.choice([g.fdtype, "i64"])
    g.emit(ops.SizeOf(axes, dtype), x, bound=(1.0, float(g.count_max(x.type.shape))))


def random_uniform(g: Generator) -> None:
    x = g.pick(is_float)
    if x is None:
        return
    key = g.pick(lambda v: v.type.dtype in INT_DTYPES and v.type.rank == 0 and v.producer is None)
    if key is None:
        key = g.fresh(TensorType("i64", ()), 0, 1000, role="hyper")
    g.emit(ops.RandomUniformLike(g.integer(0, 3)), x, key, bound=(0.0, 1.0))


def gelu_grad(g: Generator) -> None:
    x = g.pick(is_float)
    if x is None:
        return
    grad = g.partner(x, same_shape=True)
    g.emit(ops.GeluGrad(), x, grad, bound=(-1.2 * g.mag(grad), 1.2 * g.mag(grad)))


def causal_mask(g: Generator) -> None:
    x = g.pick(lambda v: v.type.is_float and v.type.rank >= 2 and v.type.shape[-1] == v.type.shape[-2])
    if x is None:  # scores of attention: q k^T
        q = g.pick(has_rank(2))
        if q is None:
            return
        q = g.bounded(q, math.sqrt(LIMIT / g.dim_max(q.type.shape[-1])))
        m = g.dim_max(q.type.shape[-1]) * g.mag(q) ** 2
        x = g.emit(ops.MatMul(False, True), q, q, bound=(-m, m))
    fill = g.choice([0.0, -1.0, -math.inf])
    lo, hi = g.bound[x]
    if fill == -math.inf:  # only through a softmax, as attention reads it
        masked = g.emit(ops.CausalMask(fill), x, pool=False)
        g.emit(ops.Softmax(-1), masked, bound=(0.0, 1.0))
    else:
        g.emit(ops.CausalMask(fill), x, bound=(min(lo, fill), max(hi, fill)))


def layer_norm(g: Generator) -> None:
    x = g.pick(has_rank(1))
    if x is None:
        return
    t = x.type.with_shape(x.type.shape[-1:])
    gamma, beta = g.fresh(t, role="param"), g.fresh(t, role="param")
    m = math.sqrt(g.dim_max(t.shape[0])) * g.mag(gamma) + g.mag(beta)
    g.emit(ops.LayerNorm(g.choice([1e-5, 1e-3])), x, gamma, beta, bound=(-m, m))


def batch_norm(g: Generator) -> None:
    x = g.pick(has_rank(2))
    if x is None:
        return
    batch_norm_of(g, x)


def batch_norm_of(g: Generator, x: Value) -> None:
    t = x.type.with_shape(x.type.shape[1:2])
    eps = g.choice([1e-5, 1e-3])
    if g.flag():  # running statistics (inference)
        scale, bias, mean = (g.fresh(t, role=g.choice(["param", "state"])) for _ in range(3))
        var = g.fresh(t, 0.5, 2.0, role="state")
        m = (g.mag(x) + g.mag(mean)) / math.sqrt(0.5) * g.mag(scale) + g.mag(bias)
        g.emit(ops.BatchNormInference(eps), x, scale, bias, mean, var, bound=(-m, m))
    else:  # the batch's statistics
        gamma, beta = g.fresh(t, role="param"), g.fresh(t, role="param")
        m = math.sqrt(g.count_max(x.type.shape) / g.dim_max(t.shape[0])) * g.mag(gamma) + g.mag(beta)
        mx = g.mag(x)
        g.emit(ops.BatchNormTrain(eps), x, gamma, beta, bound=[(-m, m), (-mx, mx), (0.0, mx * mx)])


def conv(g: Generator) -> None:
    x = g.pick(image)
    if x is None or g.flag():
        shape = (g.choice([*g.bound_symbols(), 2]), g.integer(1, 3), g.integer(2, 6), g.integer(2, 6))
        x = g.fresh(TensorType(g.fdtype, shape), role="input")
    kind = g.choice(["conv", "max pool", "avg pool"] if not g.spec.smooth else ["conv", "avg pool"])
    kernel = (g.integer(1, 3), g.integer(1, 3))
    stride = (g.integer(1, 2), g.integer(1, 2))
    padding = tuple(g.integer(0, k - 1) for k in (*kernel, *kernel))
    if kind == "conv":
        c = x.type.shape[1]
        w = g.fresh(x.type.with_shape((g.integer(1, 3), c, *kernel)), role="param")
        bias = g.fresh(x.type.with_shape(w.type.shape[:1]), role="param")
        x = g.bounded(x, 10.0)
        m = g.dim_max(c) * kernel[0] * kernel[1] * g.mag(x) * g.mag(w) + g.mag(bias)
        y = g.emit(ops.Conv2d(stride, padding, (g.integer(1, 2), g.integer(1, 2))), x, w, bias, bound=(-m, m))
        if y is not None and g.flag():
            batch_norm_of(g, y)  # folded into the convolution by the ONNX export
    elif kind == "max pool":
        g.emit(ops.MaxPool2d(kernel, stride, padding), x)
    else:
        lo, hi = g.bound[x]
        g.emit(ops.AvgPool2d(kernel, stride, padding), x, bound=(min(lo, 0.0), max(hi, 0.0)))


def recurrent(g: Generator) -> None:
    x = g.pick(lambda v: v.type.rank == 3 and v.type.is_float and isinstance(v.type.shape[2], int))
    if x is None or g.flag():  # a batch of sequences [N, T, features]
        symbols = g.bound_symbols()
        x = g.fresh(TensorType(g.fdtype, (g.choice([*symbols, 2]), g.choice([*symbols[::-1], 3]), g.integer(1, 3))),
                    role="input")
    op = g.choice([ops.RNN, ops.LSTM, ops.GRU])
    hidden = g.integer(1, 3)
    layer = op(hidden, g.flag()) if op is not ops.GRU else op(hidden, g.flag(), g.flag())
    gh = layer.gates * hidden
    w = g.fresh(x.type.with_shape((gh, x.type.shape[2])), role="param")
    r = g.fresh(x.type.with_shape((gh, hidden)), role="param")
    bias = g.fresh(x.type.with_shape((2 * gh,)), role="param")
    g.emit(layer, g.bounded(x, 10.0), w, r, bias, bound=(-1.0, 1.0))
