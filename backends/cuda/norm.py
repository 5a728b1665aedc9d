"""Normalization and scatter-add: per-channel or per-row statistics, then elementwise kernels.

The formulas are the NumPy backend's (bmc/reference/kernels.py), operation for operation. Batch norm's per-channel
sums take one block per channel where the channels fill the SMs; with few channels over a long batch they are
split (reduce.py `split_parts`): blocks of partial sums per (channel, part) into a workspace, then a warp per channel
adding them in part order, so the result is deterministic. The embedding gradient (scatter-add) sorts the token ids
on the device (a stable radix sort, `scatter_add`), so each id's rows are added in token order in time
proportional to tokens x width.
"""

from __future__ import annotations

from bmc.backends.cuda.ctext import C_TYPES, SIZES, literal, product
from bmc.backends.cuda.memory import Request, byte_size
from bmc.backends.cuda.reduce import (
    finish_kernel,
    layout,
    partial_kernel,
    row_kernel,
    split_parts,
    with_split,
)
from bmc.backends.cuda.rules import kernel

from bmc import ops
from bmc.ir.types import TensorType


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


def _channel_split(x) -> int:
    """Partial sums per channel of a split batch norm (1: one block per channel)."""
    lay = _channel_layout(x)
    return split_parts(lay.rows, lay.length) if isinstance(lay.rows, int) else 1


def _channel_workspace(item, fn) -> list[Request]:
    x = item.node.inputs[0]
    most = _channel_split(x)
    if most <= 1:
        return []
    return [Request(str(2 * most * x.type.shape[1] * SIZES[x.type.dtype]), why="two partial sums per channel and part")]


def _part_count(length: str, parts: str, s: str) -> str:
    """C: the number of elements in part s of a row of `length` cut by part_range (0 for an empty last part)."""
    chunk = f"(({length} + {parts} - 1) / {parts})"
    return f"bmc_imin({s} * {chunk} + {chunk}, {length}) - bmc_imin({s} * {chunk}, {length})"


@kernel(ops.BatchNormTrain, workspace=_channel_workspace)
def batch_norm_train(item, fn) -> None:
    """Per channel: the mean, then the variance of the centered values (two passes, as np.var); then
    y = (x - mean) * scale + beta with scale = gamma / sqrt(var + eps) (centered first: no cancellation when the
    mean is large against the spread).

    Split (few channels, long batch): each block finds its part's sum and the squares about the part's own mean;
    a warp per channel adds the sums in part order (the mean), then the squares with each part's correction
    count (part mean - mean)^2 (the centered sum of squares over the whole channel, still without cancellation)."""
    node = item.node
    (x, gamma, beta), (y, mean, var) = node.inputs, node.outputs
    t = C_TYPES[x.type.dtype]
    lay = _channel_layout(x)
    zero = literal(0, x.type.dtype)
    most = _channel_split(x)
    ws = f"({t}*){fn.workspace(item)}" if most > 1 else ""

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

    def part_stats(k, off, loop):
        xs, ps = k.input(x), k.pointer(f"{t}* __restrict__", ws, "partials")
        rows = k.dim(lay.rows)
        return [f"{t} acc = {zero};",
                f"{loop} acc += {xs}[{off()}];",
                f"const {t} total = bmc_group_reduce<TPR>(acc, bmc_sum_op());",
                f"const {t} mu = end > begin ? total / ({t})(end - begin) : {zero};",
                f"acc = {zero};",
                f"{loop} {{ const {t} ed = {xs}[{off()}] - mu; acc += ed * ed; }}",
                "acc = bmc_group_reduce<TPR>(acc, bmc_sum_op());",
                f"if (lane == 0) {{ {ps}[part * {rows} + row] = total; "
                f"{ps}[(gridDim.x + part) * {rows} + row] = acc; }}"]

    def finish_stats(k, loop, count):
        ps, ms, vs = k.pointer(f"const {t}* __restrict__", ws, "partials"), k.output(mean), k.output(var)
        rows, length = k.dim(lay.rows), k.dim(lay.length)
        n = f"({t})({length})"
        return [f"{t} acc = {zero};",
                f"if (live) {loop} acc += {ps}[s * {rows} + row];",
                f"const {t} mu = bmc_group_reduce<TPR>(acc, bmc_sum_op()) / {n};",
                f"acc = {zero};",
                f"if (live) {loop} {{",
                f"  const int cnt = {_part_count(length, count, 's')};",
                f"  const {t} ed = cnt > 0 ? {ps}[s * {rows} + row] / ({t})cnt - mu : {zero};",
                f"  acc += {ps}[({count} + s) * {rows} + row] + ({t})cnt * ed * ed;",
                "}",
                f"acc = bmc_group_reduce<TPR>(acc, bmc_sum_op()) / {n};",
                f"if (live && lane == 0) {{ {ms}[row] = mu; {vs}[row] = acc; }}"]

    def two_pass(parts: str) -> None:
        partial_kernel(fn, node, "batch_norm_stats_parts", lay, parts, part_stats)
        finish_kernel(fn, node, "batch_norm_stats_of_parts", lay.rows, parts, finish_stats)

    with_split(fn, most, lay.length, 1, two_pass,
               lambda: row_kernel(fn, node, "batch_norm_stats", lay, stats, tpr=256))
    channels, plane = x.type.shape[1], _plane(x)
    eps = literal(node.op.eps, x.type.dtype)

    def apply(k):
        xs, gs, bs, ms, vs, ys = (k.input(x), k.input(gamma), k.input(beta), k.input(mean), k.input(var),
                                  k.output(y))
        return [f"const int chan = i / {k.dim(plane)} % {k.dim(channels)};",
                f"const {t} scale = {gs}[chan] / bmc_sqrt({vs}[chan] + {eps});",
                f"{ys}[i] = ({xs}[i] - {ms}[chan]) * scale + {bs}[chan];"]

    _elementwise(fn, node, "batch_norm_apply", product(x.type.shape), apply)


@kernel(ops.BatchNormTrainGrad, workspace=_channel_workspace)
def batch_norm_train_grad(item, fn) -> None:
    """Per channel: dbeta = sum(g), dgamma = inv sum(g (x - mean)) (on centered values: sum(g x) - mean sum(g) would
    cancel when the mean is large); then dx = gamma inv (g - dbeta / count - xhat dgamma / count). Split as
    batch_norm_train: both sums per (channel, part), then added in part order by a warp per channel."""
    node = item.node
    (x, g, gamma, mean, var), (dx, dgamma, dbeta) = node.inputs, node.outputs
    t = C_TYPES[x.type.dtype]
    lay = _channel_layout(x)
    zero = literal(0, x.type.dtype)
    eps = literal(node.op.eps, x.type.dtype)
    one = literal(1, x.type.dtype)
    most = _channel_split(x)
    ws = f"({t}*){fn.workspace(item)}" if most > 1 else ""

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

    def part_sums(k, off, loop):
        xs, gs, ms = k.input(x), k.input(g), k.input(mean)
        ps, rows = k.pointer(f"{t}* __restrict__", ws, "partials"), k.dim(lay.rows)
        return [f"{t} acc = {zero}, agx = {zero};",
                f"const {t} mu = {ms}[row];",
                f"{loop} {{ const int eo = {off()}; acc += {gs}[eo]; agx += {gs}[eo] * ({xs}[eo] - mu); }}",
                "acc = bmc_group_reduce<TPR>(acc, bmc_sum_op());",
                "agx = bmc_group_reduce<TPR>(agx, bmc_sum_op());",
                f"if (lane == 0) {{ {ps}[part * {rows} + row] = acc; {ps}[(gridDim.x + part) * {rows} + row] = agx; }}"]

    def finish_sums(k, loop, count):
        ps, vs = k.pointer(f"const {t}* __restrict__", ws, "partials"), k.input(var)
        dgs, dbs, rows = k.output(dgamma), k.output(dbeta), k.dim(lay.rows)
        return [f"{t} acc = {zero}, agx = {zero};",
                f"if (live) {loop} {{ acc += {ps}[s * {rows} + row]; agx += {ps}[({count} + s) * {rows} + row]; }}",
                "acc = bmc_group_reduce<TPR>(acc, bmc_sum_op());",
                "agx = bmc_group_reduce<TPR>(agx, bmc_sum_op());",
                "if (live && lane == 0) {",
                f"  const {t} inv = {one} / bmc_sqrt({vs}[row] + {eps});",
                f"  {dbs}[row] = acc;",
                f"  {dgs}[row] = inv * agx;",
                "}"]

    def two_pass(parts: str) -> None:
        partial_kernel(fn, node, "batch_norm_grad_parts", lay, parts, part_sums)
        finish_kernel(fn, node, "batch_norm_grad_of_parts", lay.rows, parts, finish_sums)

    with_split(fn, most, lay.length, 1, two_pass,
               lambda: row_kernel(fn, node, "batch_norm_grad_sums", lay, sums, tpr=256))
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


# ---- scatter-add (the embedding gradient): a stable radix sort of the ids, then each id's rows in token order ------

RADIX_BITS = 8  # digits of the sort: 256 buckets, one per thread of a 256-thread block
SORT_TILE = 256  # ids per block of the counting and placing kernels


def sort_passes(rows: int) -> int:
    """Radix passes over keys 0..rows (rows itself stands for an id out of range, which adds to no row)."""
    return max(1, -(-rows.bit_length() // RADIX_BITS))


def _i32_bytes(count, fn) -> str:
    return byte_size(TensorType("i32", (count,)), fn.symbols)


def _scatter_workspace(item, fn) -> list[Request]:
    ids = item.node.inputs[0]
    tokens = product(ids.type.shape)
    return [Request(_i32_bytes(product([2, tokens]), fn), why="sorted ids (two buffers)"),
            Request(_i32_bytes(product([2, tokens]), fn), why="token order of the sorted ids (two buffers)"),
            Request(f"{_i32_bytes(tokens, fn)} + {4 * SORT_TILE}", why="digit counts per tile, then their offsets"),
            Request(str(4 * (item.node.op.rows + 1)), why="each row's first sorted position")]


@kernel(ops.ScatterAdd, workspace=_scatter_workspace)
def scatter_add(item, fn) -> None:
    """out[row, j] = the sum, in token order, of updates[e, j] over the tokens e with ids[e] == row; no atomics.

    The ids are sorted by a least-significant-digit radix sort (8-bit digits, one pass per digit of the largest
    id): per tile of 256 ids, thread d counts the ids with digit d; one block turns the counts (digit-major) into
    offsets; then thread d places its digit's ids of the tile in tile order, so every pass is stable and the sorted
    ids keep token order within an id. A binary search gives each row its first sorted position, and a kernel per
    output element adds that row's updates in token order: work proportional to tokens x width, plus the rows."""
    node = item.node
    (ids, updates), out = node.inputs, node.outputs[0]
    t = C_TYPES[out.type.dtype]
    rows = node.op.rows
    width = product(out.type.shape[1:])
    tokens = product(ids.type.shape)
    n_host = fn.hdim(tokens)
    key_ws, val_ws, count_ws, start_ws = (f"(int*){fn.workspace(item, k)}" for k in range(4))
    keys = [key_ws, f"({key_ws} + {n_host})"]
    vals = [val_ws, f"({val_ws} + {n_host})"]
    tiles = f"bmc_ceil({n_host}, {SORT_TILE})"
    passes = sort_passes(rows)

    def load_tile(k, p: int) -> list[str]:
        """Shared tk (and tv): the tile's keys (-1 past the end) and token positions."""
        n = k.dim(tokens)
        if p == 0:
            ids_s = k.input(ids)
            key = f"({ids_s}[e] >= 0 && {ids_s}[e] < {rows}) ? (int){ids_s}[e] : {rows}"
            val = "e"
        else:
            key = f"{k.pointer('const int* __restrict__', keys[(p - 1) % 2], 'keys_in')}[e]"
            val = f"{k.pointer('const int* __restrict__', vals[(p - 1) % 2], 'vals_in')}[e]"
        return [f"__shared__ int tk[{SORT_TILE}], tv[{SORT_TILE}];",
                f"const int e = blockIdx.x * {SORT_TILE} + threadIdx.x, d = threadIdx.x;",
                f"tk[threadIdx.x] = e < {n} ? {key} : -1;",
                f"tv[threadIdx.x] = e < {n} ? {val} : 0;",
                "__syncthreads();"]

    for p in range(passes):
        shift = RADIX_BITS * p
        digit = f"((tk[i] >> {shift}) & {(1 << RADIX_BITS) - 1})"
        k = fn.kernel(node, "scatter_add_count")
        counts = k.pointer("int* __restrict__", count_ws, "counts")
        k.launch([*load_tile(k, p),
                  "int c = 0;",
                  f"for (int i = 0; i < {SORT_TILE}; ++i) c += tk[i] >= 0 && {digit} == d;",
                  f"{counts}[d * gridDim.x + blockIdx.x] = c;"], tiles, str(SORT_TILE), SORT_TILE)
        _exclusive_scan(fn, node, count_ws, f"{1 << RADIX_BITS} * {tiles}")
        k = fn.kernel(node, "scatter_add_place")
        offsets = k.pointer("const int* __restrict__", count_ws, "offsets")
        keys_out = k.pointer("int* __restrict__", keys[p % 2], "keys_out")
        vals_out = k.pointer("int* __restrict__", vals[p % 2], "vals_out")
        k.launch([*load_tile(k, p),
                  f"int at = {offsets}[d * gridDim.x + blockIdx.x];",
                  f"for (int i = 0; i < {SORT_TILE}; ++i) if (tk[i] >= 0 && {digit} == d) {{",
                  f"  {keys_out}[at] = tk[i]; {vals_out}[at] = tv[i]; ++at;",
                  "}"], tiles, str(SORT_TILE), SORT_TILE)
    sorted_keys, order = keys[(passes - 1) % 2], vals[(passes - 1) % 2]

    def starts(k):
        ks, st = k.pointer("const int* __restrict__", sorted_keys, "keys"), k.pointer("int*", start_ws, "starts")
        n = k.dim(tokens)
        return [f"int lo = 0, hi = {n};",
                "while (lo < hi) {",
                f"  const int mid = lo + (hi - lo) / 2; if ({ks}[mid] < i) lo = mid + 1; else hi = mid;",
                "}",
                f"{st}[i] = lo;"]

    _elementwise(fn, node, "scatter_add_starts", rows + 1, starts)

    def body(k):
        us, os_ = k.input(updates), k.output(out)
        st, ord_ = k.pointer("const int* __restrict__", start_ws, "starts"), \
            k.pointer("const int* __restrict__", order, "order")
        w = k.dim(width)
        return [f"const int row = i / {w}, col = i % {w};",
                f"{t} acc = {literal(0, out.type.dtype)};",
                f"for (int p = {st}[row]; p < {st}[row + 1]; ++p) acc += {us}[(size_t){ord_}[p] * {w} + col];",
                f"{os_}[i] = acc;"]

    _elementwise(fn, node, "scatter_add", product(out.type.shape), body)


def _exclusive_scan(fn, node, data: str, count: str) -> None:
    """data[0..count) (ints) replaced by its exclusive prefix sums, by one block of 1024 threads: each thread sums
    a contiguous run, the block scans the run totals (Hillis-Steele), and each thread rewrites its run."""
    k = fn.kernel(node, "scatter_add_offsets")
    ds = k.pointer("int* __restrict__", data, "data")
    n = k.scalar("int", count, "count")
    k.launch([f"const int per = ({n} + 1023) / 1024, begin = threadIdx.x * per;",
              f"const int end = begin + per < {n} ? begin + per : {n};",
              "int sum = 0;",
              f"for (int i = begin; i < end; ++i) sum += {ds}[i];",
              "__shared__ int totals[1024];",
              "totals[threadIdx.x] = sum;",
              "__syncthreads();",
              "for (int o = 1; o < 1024; o <<= 1) {",
              "  const int v = threadIdx.x >= o ? totals[threadIdx.x - o] : 0;",
              "  __syncthreads();",
              "  totals[threadIdx.x] += v;",
              "  __syncthreads();",
              "}",
              "int run = totals[threadIdx.x] - sum;",
              f"for (int i = begin; i < end; ++i) {{ const int c = {ds}[i]; {ds}[i] = run; run += c; }}"],
             "1", "1024", 1024)
