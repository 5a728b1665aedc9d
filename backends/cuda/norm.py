"""Normalization and scatter-add: per-channel or per-row statistics by one block each, then elementwise kernels.

The formulas are the NumPy backend's (bmc/reference/kernels.py), operation for operation, so both round alike.
"""

from __future__ import annotations

from bmc.backends.cuda.ctext import C_TYPES, literal, product
from bmc.backends.cuda.reduce import layout, row_kernel
from bmc.backends.cuda.rules import kernel

from bmc import ops


def _channel_layout(x):
    return layout(x.type.shape, (0, *range(2, x.type.rank)))


def _plane(x) -> int:
    return product(x.type.shape[2:])


def _elementwise(fn, node, hint: str, size, lines_for) -> None:
    """A grid-stride loop over `size` elements; `lines_for(k)` gives the per-element lines (index i)."""
    k = fn.kernel(node, hint)
    body = lines_for(k)
    n = k.dim(size)
    k.launch([f"const int n = {n};",
              "for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {",
              *("  " + line for line in body), "}"], f"bmc_blocks({fn.hdim(size)}, 256)", "256", 256)


@kernel(ops.BatchNormTrain)
def batch_norm_train(item, fn) -> None:
    """Per channel: the mean, then the variance of the centered values (two passes, as np.var); then
    y = (x - mean) * scale + beta with scale = gamma / sqrt(var + eps) (centered first: no cancellation when the
    mean is large against the spread)."""
    node = item.node
    (x, gamma, beta), (y, mean, var) = node.inputs, node.outputs
    t = C_TYPES[x.type.dtype]
    lay = _channel_layout(x)
    zero = literal(0, x.type.dtype)

    def stats(k, off, loop):
        xs, ms, vs = k.input(x), k.output(mean), k.output(var)
        count = f"({t})({k.dim(lay.length)})"
        return [f"{t} acc = {zero};",
                f"{loop} acc += {xs}[{off()}];",
                f"const {t} mu = bmc_group_reduce<TPR>(acc, bmc_sum_op()) / {count};",
                f"acc = {zero};",
                f"{loop} {{ const {t} ed = {xs}[{off()}] - mu; acc += ed * ed; }}",
                f"acc = bmc_group_reduce<TPR>(acc, bmc_sum_op()) / {count};",
                f"if (lane == 0) {{ {ms}[row] = mu; {vs}[row] = acc; }}"]

    row_kernel(fn, node, "batch_norm_stats", lay, stats, tpr=256)
    channels, plane = x.type.shape[1], _plane(x)
    eps = literal(node.op.eps, x.type.dtype)

    def apply(k):
        xs, gs, bs, ms, vs, ys = (k.input(x), k.input(gamma), k.input(beta), k.input(mean), k.input(var),
                                  k.output(y))
        return [f"const int chan = i / {k.dim(plane)} % {k.dim(channels)};",
                f"const {t} scale = {gs}[chan] / bmc_sqrt({vs}[chan] + {eps});",
                f"{ys}[i] = ({xs}[i] - {ms}[chan]) * scale + {bs}[chan];"]

    _elementwise(fn, node, "batch_norm_apply", product(x.type.shape), apply)


@kernel(ops.BatchNormTrainGrad)
def batch_norm_train_grad(item, fn) -> None:
    """Per channel: dbeta = sum(g), dgamma = inv sum(g (x - mean)) (on centered values: sum(g x) - mean sum(g) would
    cancel when the mean is large); then dx = gamma inv (g - dbeta / count - xhat dgamma / count)."""
    node = item.node
    (x, g, gamma, mean, var), (dx, dgamma, dbeta) = node.inputs, node.outputs
    t = C_TYPES[x.type.dtype]
    lay = _channel_layout(x)
    zero = literal(0, x.type.dtype)
    eps = literal(node.op.eps, x.type.dtype)
    one = literal(1, x.type.dtype)

    def sums(k, off, loop):
        xs, gs, ms, vs = k.input(x), k.input(g), k.input(mean), k.input(var)
        dgs, dbs = k.output(dgamma), k.output(dbeta)
        return [f"{t} acc = {zero}, agx = {zero};",
                f"const {t} mu = {ms}[row];",
                f"{loop} {{ const int eo = {off()}; acc += {gs}[eo]; agx += {gs}[eo] * ({xs}[eo] - mu); }}",
                "acc = bmc_group_reduce<TPR>(acc, bmc_sum_op());",
                "agx = bmc_group_reduce<TPR>(agx, bmc_sum_op());",
                "if (lane == 0) {",
                f"  const {t} inv = {one} / bmc_sqrt({vs}[row] + {eps});",
                f"  {dbs}[row] = acc;",
                f"  {dgs}[row] = inv * agx;",
                "}"]

    row_kernel(fn, node, "batch_norm_grad_sums", lay, sums, tpr=256)
    channels, plane = x.type.shape[1], _plane(x)

    def apply(k):
        xs, gs, gams, ms, vs = k.input(x), k.input(g), k.input(gamma), k.input(mean), k.input(var)
        dgs, dbs, dxs = k.input(dgamma), k.input(dbeta), k.output(dx)
        count = f"({t})({k.dim(lay.length)})"
        # centered before the scale gamma inv (large where a channel barely varies), as the NumPy kernel
        return [f"const int chan = i / {k.dim(plane)} % {k.dim(channels)};",
                f"const {t} inv = {one} / bmc_sqrt({vs}[chan] + {eps});",
                f"const {t} xhat = ({xs}[i] - {ms}[chan]) * inv;",
                f"const {t} centered = {gs}[i] - {dbs}[chan] / {count} - xhat * ({dgs}[chan] / {count});",
                f"{dxs}[i] = centered * ({gams}[chan] * inv);"]

    _elementwise(fn, node, "batch_norm_grad_dx", product(x.type.shape), apply)


@kernel(ops.LayerNorm)
def layer_norm(item, fn) -> None:
    """Per row of the last axis: mean, variance of the centered row, then (x - mean) / sqrt(var + eps) g + b."""
    node = item.node
    (x, gamma, beta), y = node.inputs, node.outputs[0]
    t = C_TYPES[x.type.dtype]
    lay = layout(x.type.shape, (x.type.rank - 1,))
    zero = literal(0, x.type.dtype)
    eps = literal(node.op.eps, x.type.dtype)

    def body(k, off, loop):
        xs, gs, bs, ys = k.input(x), k.input(gamma), k.input(beta), k.output(y)
        count = f"({t})({k.dim(lay.length)})"
        return [f"{t} acc = {zero};",
                f"if (live) {loop} acc += {xs}[{off()}];",
                f"const {t} mu = bmc_group_reduce<TPR>(acc, bmc_sum_op()) / {count};",
                f"acc = {zero};",
                f"if (live) {loop} {{ const {t} ed = {xs}[{off()}] - mu; acc += ed * ed; }}",
                f"const {t} sd = bmc_sqrt(bmc_group_reduce<TPR>(acc, bmc_sum_op()) / {count} + {eps});",
                f"if (live) {loop} {{ const int eo = {off()}; {ys}[eo] = ({xs}[eo] - mu) / sd * {gs}[r] + {bs}[r]; }}"]

    row_kernel(fn, node, "layer_norm", lay, body)


@kernel(ops.ScatterAdd)
def scatter_add(item, fn) -> None:
    """out[row, j] = the sum, in order, of updates[e, j] over the e with ids[e] == row: a gather per output element,
    so no atomics and a fixed order."""
    node = item.node
    (ids, updates), out = node.inputs, node.outputs[0]
    t = C_TYPES[out.type.dtype]
    width = product(out.type.shape[1:])

    def body(k):
        ids_s, us, os_ = k.input(ids), k.input(updates), k.output(out)
        w, count = k.dim(width), k.dim(product(ids.type.shape))
        return [f"const int row = i / {w}, col = i % {w};",
                f"{t} acc = {literal(0, out.type.dtype)};",
                f"for (int e = 0; e < {count}; ++e) if ({ids_s}[e] == row) acc += {us}[(size_t)e * {w} + col];",
                f"{os_}[i] = acc;"]

    _elementwise(fn, node, "scatter_add", product(out.type.shape), body)
