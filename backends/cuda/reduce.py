"""Reductions: sum, mean and max over any axes, softmax and log-softmax, and the losses.

The input is viewed as rows q (the kept axes) of R elements (the reduced axes). When the reduced axes are innermost,
TPR threads share a row (a warp or a whole block, by R) and combine with warp shuffles and shared memory; when they
are outer axes over a contiguous inner block (a bias gradient summed over the batch), 32 consecutive rows go to the
32 lanes of a block, so loads are coalesced, and 8 thread rows split R. Every order is fixed: deterministic.

A reduction whose one-pass grid would leave SMs idle (a bias gradient's few column blocks, a handful of long rows,
batch norm's one block per channel) is split in two passes: each block sums one range of its rows' elements into
a workspace of partial results, and a second kernel adds each row's partials in a fixed order (`split_parts` has
the heuristic). The partition depends only on the shape, never on timing or on the device: bit for bit the same
results run to run, on any GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from bmc.backends.cuda.ctext import C_TYPES, SIZES, flat_offset, literal, product, strides
from bmc.backends.cuda.memory import Request, byte_size
from bmc.backends.cuda.rules import kernel

from bmc import ops
from bmc.ir.graph import Value
from bmc.ir.types import Dim, TensorType, normalize_axes


@dataclass
class Layout:
    """Rows q < Q of R elements each; element (q, r) sits at offset(q, r)."""

    rows: Dim
    length: Dim
    kept: list[tuple[Dim, Dim]]  # (size, stride) of the kept axes, outer first
    reduced: list[tuple[Dim, Dim]]

    def offset(self, q: str, r: str, fmt) -> str:
        a = flat_offset(q, [s for s, _ in self.kept], [st for _, st in self.kept], fmt)
        b = flat_offset(r, [s for s, _ in self.reduced], [st for _, st in self.reduced], fmt)
        return " + ".join(t for t in (a, b) if t != "0") or "0"

    @property
    def contiguous_rows(self) -> bool:
        """The reduced elements of a row are adjacent in memory."""
        return flat_offset("r", [s for s, _ in self.reduced], [st for _, st in self.reduced], str) in ("r", "0")

    @property
    def inner_kept(self) -> bool:
        """Consecutive rows are adjacent in memory (reducing outer axes over a contiguous inner block)."""
        return bool(self.kept) and self.kept[-1][1] == 1 and not self.contiguous_rows


def layout(shape: tuple[Dim, ...], axes: tuple[int, ...]) -> Layout:
    st = strides(shape)
    kept = [(shape[k], st[k]) for k in range(len(shape)) if k not in axes]
    reduced = [(shape[k], st[k]) for k in axes]
    return Layout(product([s for s, _ in kept]), product([s for s, _ in reduced]), kept, reduced)


def threads_per_row(lay: Layout) -> int:
    """A power of two: a warp slice for short rows, a block for long ones (a whole 1024-thread block for a handful
    of long rows)."""
    r = lay.length
    if isinstance(r, int) and r <= 32:
        return 1 << max(0, (r - 1).bit_length())
    few_rows = isinstance(lay.rows, int) and lay.rows <= 16
    long_rows = not isinstance(r, int) or r >= 4096
    if few_rows and long_rows:
        return 1024
    return 256 if long_rows or (isinstance(r, int) and r > 512) else 32


# ---- two-pass reductions: partial results per block into a workspace, then each row's partials added in order ------

PLANNED_SMS = 132  # an H100/H200 (as gemm.py plans its split-K): fixed, so the partition is the same on every GPU
FILL_BLOCKS = 2 * PLANNED_SMS  # a split grid aims at two blocks per SM (the last wave's tail is then half as costly)
SPLIT_WORK = 32768  # elements per one-pass block below which a split's second launch costs more than it saves
MIN_PART = 2048  # elements per block of a split reduction (8 per thread of 256)
MOST_PARTS = 256  # partials per reduced row: the second pass reads at most 256 values per result


def split_parts(blocks: int, length: Dim, rows_per_block: int = 1) -> int:
    """How many partial results per reduced row a one-pass grid of `blocks` blocks, each reducing `rows_per_block`
    rows of `length` elements, is split into (1: not split; the most, where the length is symbolic).

    The heuristic: a grid of at least PLANNED_SMS blocks already fills the SMs, and a block of fewer than
    SPLIT_WORK elements finishes in about a launch's time: both stay one pass. Otherwise the rows are split into
    enough parts to bring the grid to FILL_BLOCKS blocks, at most MOST_PARTS, and no more than leave each block
    MIN_PART elements, so a block's own work (8 or more loads per thread) outweighs what the second pass reads
    for it (one value per row). A symbolic length gives the most; the host applies the same rule to the length
    at run time (`with_split`)."""
    if blocks >= PLANNED_SMS:
        return 1
    most = min(MOST_PARTS, -(-FILL_BLOCKS // blocks))
    if isinstance(length, int):
        work = length * rows_per_block
        most = min(most, work // MIN_PART) if work >= SPLIT_WORK else 1
    return max(1, most)


def with_split(fn, most: int, length: Dim, rows_per_block: int, two_pass, one_pass) -> None:
    """Write the launches of a reduction that may be split: `two_pass(parts)` (`parts` a host expression) where
    the shape is split, `one_pass()` where not; with a symbolic length, both, and the host picks by the length."""
    if most <= 1:
        one_pass()
        return
    if isinstance(length, int):
        two_pass(str(most))
        return
    fn.emit("{")
    fn.indent += 1
    work = f"(long long)({fn.hdim(length)}) * {rows_per_block}"
    fn.emit(f"const int parts = {work} >= {SPLIT_WORK} ? (int)bmc_imin_host({most}, {work} / {MIN_PART}) : 1;")
    fn.emit("if (parts > 1) {")
    fn.indent += 1
    two_pass("parts")
    fn.indent -= 1
    fn.emit("} else {")
    fn.indent += 1
    one_pass()
    fn.indent -= 1
    fn.emit("}")
    fn.indent -= 1
    fn.emit("}")


def part_range(length: str, parts: str, part: str) -> list[str]:
    """C lines: this part's range [begin, end) of a row's `length` elements cut into `parts` equal chunks."""
    return [f"const int chunk = ({length} + {parts} - 1) / {parts}, begin = {part} * chunk;",
            f"const int end = begin + chunk < {length} ? begin + chunk : {length};"]


def partial_kernel(fn, node, hint: str, lay: Layout, parts: str, body) -> None:
    """The first pass of a split row reduction: block (part, row) of 256 threads takes the part-th range of row
    `row`; `body(k, off, loop)` returns the lines, which store the partials (`part` is the part's index)."""
    k = fn.kernel(node, hint)
    length = k.dim(lay.length)
    lines = ["constexpr int TPR = 256;",
             "const int row = blockIdx.y, part = blockIdx.x, lane = threadIdx.x;",
             *part_range(length, "gridDim.x", "part")]
    lines += body(k, lambda r="r": lay.offset("row", r, k.dim), "for (int r = begin + lane; r < end; r += TPR)")
    k.launch(lines, f"dim3({parts}, {fn.hdim(lay.rows)})", "256", 256)


def finish_kernel(fn, node, hint: str, rows: Dim, parts: str, body) -> None:
    """The second pass: a warp per row adds the row's partials (lane l takes parts l, l + 32, ..., then a fixed
    butterfly); `body(k, loop, count)` returns the lines (`count` is the kernel's number of parts)."""
    k = fn.kernel(node, hint)
    count = k.scalar("int", parts, "parts")
    lines = ["constexpr int TPR = 32;",
             "const int row = blockIdx.x * 8 + threadIdx.x / 32, lane = threadIdx.x % 32;",
             f"const bool live = row < {k.dim(rows)};"]
    lines += body(k, f"for (int s = lane; s < {count}; s += 32)", count)
    k.launch(lines, f"bmc_ceil({fn.hdim(rows)}, 8)", "256", 256)


def row_kernel(fn, node, hint: str, lay: Layout, body, tpr: int | None = None) -> None:
    """A kernel where TPR threads handle row `row`; `body(k, off, lane_loop)` returns the lines for one row.

    `off(r)` is the element offset of the row's element r; `lane_loop` is the loop header over this thread's r."""
    k = fn.kernel(node, hint)
    tpr = tpr or threads_per_row(lay)
    block = max(tpr, 256)
    q, rows = "row", k.dim(lay.rows)
    length = k.dim(lay.length)
    loop = f"for (int r = lane; r < {length}; r += {tpr})"
    lines = [f"constexpr int TPR = {tpr};",
             f"const int row = blockIdx.x * ({block} / TPR) + threadIdx.x / TPR, lane = threadIdx.x % TPR;",
             f"const bool live = row < {rows};"]
    lines += body(k, lambda r="r": lay.offset(q, r, k.dim), loop)
    k.launch(lines, f"bmc_ceil({fn.hdim(lay.rows)}, {block // tpr})", str(block), block)


def column_kernel(fn, node, hint: str, lay: Layout, combine: str, init: str, finish, y: Value, x: Value,
                  ws: str | None = None, parts: str = "1") -> None:
    """Rows adjacent in memory: lanes take 32 consecutive rows, 8 thread rows split each row's elements, and shared
    memory combines the 8 partial results in order. Split (`ws`, `parts` > 1): block (column block, part) takes
    the part-th range of the elements and stores its partials at ws[part * rows + row] for `finish_kernel`."""
    k = fn.kernel(node, hint if ws is None else f"{hint}_parts")
    t = C_TYPES[x.type.dtype]
    xs = k.input(x)
    rows, length = k.dim(lay.rows), k.dim(lay.length)
    lines = ["const int lane = threadIdx.x % 32, part = threadIdx.x / 32;",
             "const int row = blockIdx.x * 32 + lane;"]
    if ws is None:
        lines.append(f"const int begin = 0, end = {length};")
    else:
        lines += part_range(length, "gridDim.y", "blockIdx.y")
    lines += [
        f"{t} acc = {init};",
        f"if (row < {rows}) for (int r = begin + part; r < end; r += 8) {{",
        f"  acc = {combine.format(a='acc', b=xs + '[' + lay.offset('row', 'r', k.dim) + ']')};",
        "}",
        f"__shared__ {t} partial[8][33];",
        "partial[part][lane] = acc;",
        "__syncthreads();",
        f"if (part == 0 && row < {rows}) {{",
        "  for (int pp = 1; pp < 8; ++pp) acc = " + combine.format(a="acc", b="partial[pp][lane]") + ";",
    ]
    if ws is None:
        lines.append(f"  {k.output(y)}[row] = {finish('acc', k)};")
    else:
        lines.append(f"  {k.pointer(f'{t}* __restrict__', ws, 'partials')}[blockIdx.y * {rows} + row] = acc;")
    lines.append("}")
    grid = f"bmc_ceil({fn.hdim(lay.rows)}, 32)"
    k.launch(lines, grid if ws is None else f"dim3({grid}, {parts})", "256", 256)


REDUCERS = {  # combine (a C expression of {a} and {b}), identity, the op functor of bmc_group_reduce
    "sum": ("{a} + {b}", "0", "bmc_sum_op()"),
    "max": ("bmc_maximum({a}, {b})", "-INFINITY", "bmc_max_op()"),
}


def reduction_split(node) -> tuple[Layout, int, int]:
    """A reduction's layout, its most partials per row (1: one pass) and the rows a one-pass block reduces."""
    x = node.inputs[0]
    lay = layout(x.type.shape, normalize_axes(node.op.axes, x.type.rank))
    if not isinstance(lay.rows, int):  # rows that grow with the batch: one pass
        return lay, 1, 1
    if lay.inner_kept:  # one block per 32 columns
        return lay, split_parts(-(-lay.rows // 32), lay.length, 32), 32
    if threads_per_row(lay) < 256:  # short rows, many to a block: never long enough to split
        return lay, 1, 1
    return lay, split_parts(lay.rows, lay.length), 1  # one block per row


def _reduction_workspace(item, fn) -> list[Request]:
    lay, most, _ = reduction_split(item.node)
    size = most * lay.rows * SIZES[item.node.inputs[0].type.dtype] if most > 1 else 0
    return [Request(str(size), why="partial results per row")] if most > 1 else []


@kernel(ops.Sum, ops.Max, ops.Mean, workspace=_reduction_workspace)
def reduction(item, fn) -> None:
    node = item.node
    x, y = node.inputs[0], node.outputs[0]
    lay, most, per_block = reduction_split(node)
    kind = "max" if isinstance(node.op, ops.Max) else "sum"
    combine, init, functor = REDUCERS[kind]
    t = C_TYPES[x.type.dtype]
    init = literal(0, x.type.dtype) if init == "0" else f"({t}){init}"

    def finish(acc: str, k) -> str:
        return f"{acc} / ({t})({k.dim(lay.length)})" if isinstance(node.op, ops.Mean) else acc

    ws = f"({t}*){fn.workspace(item)}" if most > 1 else ""

    def body(k, off, loop):
        xs, ys = k.input(x), k.output(y)
        return [f"{t} acc = {init};",
                f"if (live) {loop} acc = {combine.format(a='acc', b=f'{xs}[{off()}]')};",
                f"acc = bmc_group_reduce<TPR>(acc, {functor});",
                f"if (live && lane == 0) {ys}[row] = {finish('acc', k)};"]

    def parts_body(k, off, loop):
        xs, part = k.input(x), k.pointer(f"{t}* __restrict__", ws, "partials")
        return [f"{t} acc = {init};",
                f"{loop} acc = {combine.format(a='acc', b=f'{xs}[{off()}]')};",
                f"acc = bmc_group_reduce<TPR>(acc, {functor});",
                f"if (lane == 0) {part}[part * {k.dim(lay.rows)} + row] = acc;"]

    def finish_body(k, loop, count):
        part, ys = k.pointer(f"const {t}* __restrict__", ws, "partials"), k.output(y)
        return [f"{t} acc = {init};",
                f"if (live) {loop} acc = {combine.format(a='acc', b=f'{part}[s * {k.dim(lay.rows)} + row]')};",
                f"acc = bmc_group_reduce<TPR>(acc, {functor});",
                f"if (live && lane == 0) {ys}[row] = {finish('acc', k)};"]

    def two_pass(parts: str) -> None:
        if lay.inner_kept:
            column_kernel(fn, node, node.op.name, lay, combine, init, finish, y, x, ws, parts)
        else:
            partial_kernel(fn, node, f"{node.op.name}_parts", lay, parts, parts_body)
        finish_kernel(fn, node, f"{node.op.name}_of_parts", lay.rows, parts, finish_body)

    def one_pass() -> None:
        if lay.inner_kept:
            column_kernel(fn, node, node.op.name, lay, combine, init, finish, y, x)
        else:
            row_kernel(fn, node, node.op.name, lay, body)

    with_split(fn, most, lay.length, per_block, two_pass, one_pass)


@kernel(ops.Softmax, ops.LogSoftmax)
def softmax(item, fn) -> None:
    """Three passes over each row: max, sum of exp(x - max), and the result (exp(x - max) / sum, or x - max - log
    sum), as the NumPy backend computes them."""
    node = item.node
    x, y = node.inputs[0], node.outputs[0]
    lay = layout(x.type.shape, normalize_axes((node.op.axis,), x.type.rank))
    t = C_TYPES[x.type.dtype]
    log = isinstance(node.op, ops.LogSoftmax)

    def body(k, off, loop):
        xs, ys = k.input(x), k.output(y)
        result = f"({xs}[eo] - mx) - bmc_log(se)" if log else f"bmc_exp({xs}[eo] - mx) / se"
        return [f"{t} mx = ({t})(-INFINITY), se = {literal(0, x.type.dtype)};",
                f"if (live) {loop} mx = bmc_maximum(mx, {xs}[{off()}]);",
                "mx = bmc_group_reduce<TPR>(mx, bmc_max_op());",
                f"if (live) {loop} se += bmc_exp({xs}[{off()}] - mx);",
                "se = bmc_group_reduce<TPR>(se, bmc_sum_op());",
                f"if (live) {loop} {{ const int eo = {off()}; {ys}[eo] = {result}; }}"]

    row_kernel(fn, node, node.op.name, lay, body)


# ---- losses: per-row (or per-block) partial sums into a workspace, then one block adds them in order ---------------


def _rows_bytes(t: TensorType, rows: Dim, fn) -> str:
    return byte_size(TensorType(t.dtype, (rows,)), fn.symbols)


def _ce_workspace(item, fn) -> list[Request]:
    z = item.node.inputs[0]
    return [Request(_rows_bytes(z.type, product(z.type.shape[:-1]), fn), why="per-row losses")]


@kernel(ops.CrossEntropy, workspace=_ce_workspace)
def cross_entropy(item, fn) -> None:
    """Per row: log-sum-exp, then -log_softmax at the label (or -sum p log_softmax); then the mean over rows."""
    node = item.node
    z, target = node.inputs
    lay = layout(z.type.shape, (z.type.rank - 1,))
    t = C_TYPES[z.type.dtype]
    ws = fn.workspace(item)
    indices = not target.type.is_float

    def body(k, off, loop):
        zs, ts = k.input(z), k.input(target)
        part = k.pointer(f"{t}*", f"({t}*){ws}", "rows")
        classes = k.dim(z.type.shape[-1])
        lines = [f"{t} mx = ({t})(-INFINITY), se = {literal(0, z.type.dtype)};",
                 f"if (live) {loop} mx = bmc_maximum(mx, {zs}[{off()}]);",
                 "mx = bmc_group_reduce<TPR>(mx, bmc_max_op());",
                 f"if (live) {loop} se += bmc_exp({zs}[{off()}] - mx);",
                 "se = bmc_group_reduce<TPR>(se, bmc_sum_op());",
                 "const " + t + " lse = mx + bmc_log(se);"]
        if indices:
            lines += ["if (live && lane == 0) {",
                      f"  const int64_t cls = {ts}[row];",
                      f"  if (cls < 0 || cls >= {classes}) bmc_bad_index({k.status()}, BMC_KERNEL_ID);",
                      f"  {part}[row] = (cls >= 0 && cls < {classes}) ? lse - {zs}[{off('(int)cls')}] : "
                      f"{literal(0, z.type.dtype)};",
                      "}"]
        else:
            lines += [f"{t} acc = {literal(0, z.type.dtype)};",
                      f"if (live) {loop} {{ const int eo = {off()}; acc += {ts}[eo] * (lse - {zs}[eo]); }}",
                      "acc = bmc_group_reduce<TPR>(acc, bmc_sum_op());",
                      f"if (live && lane == 0) {part}[row] = acc;"]
        return lines

    row_kernel(fn, node, "cross_entropy_rows", lay, body)
    total_of_partials(fn, node, f"({t}*){ws}", fn.hdim(lay.rows), z.type.dtype, lay.rows)


def total_of_partials(fn, node, partials: str, count: str, dtype: str, divisor: Dim) -> None:
    """y = (the sum of `count` partials, in order) / divisor, by one block; `count` is a host expression."""
    y = node.outputs[0]
    k = fn.kernel(node, f"{node.op.name}_total")
    t = C_TYPES[dtype]
    ps = k.pointer(f"const {t}* __restrict__", partials, "partials")
    n = k.scalar("int", count, "count")
    ys = k.output(y)
    k.launch([f"{t} acc = {literal(0, dtype)};",
              f"for (int r = threadIdx.x; r < {n}; r += 1024) acc += {ps}[r];",
              "acc = bmc_group_reduce<1024>(acc, bmc_sum_op());",
              f"if (threadIdx.x == 0) {ys}[0] = acc / ({t})({k.dim(divisor)});"], "1", "1024", 1024)


CHUNK = 8192  # elements per block in the first pass of an elementwise loss


def _elementwise_loss_workspace(item, fn) -> list[Request]:
    return [Request(str(1024 * 8), why="per-block partial sums (at most 1024 of 8 bytes)")]


@kernel(ops.BinaryCrossEntropy, ops.MeanSquaredError, workspace=_elementwise_loss_workspace)
def elementwise_loss(item, fn) -> None:
    """Blocks of 256 threads sum the per-element losses of consecutive chunks; one block adds the block sums."""
    node = item.node
    p, target = node.inputs
    t = C_TYPES[p.type.dtype]
    ws = fn.workspace(item)
    size = product(p.type.shape)
    k = fn.kernel(node, f"{node.op.name}_blocks")
    ps, ts = k.input(p), k.input(target)
    part = k.pointer(f"{t}*", f"({t}*){ws}", "partials")
    n = k.dim(size)
    if isinstance(node.op, ops.BinaryCrossEntropy):
        per = [f"const {t} ez = {ps}[e], ey = ({t}){ts}[e];",
               f"acc += bmc_maximum(ez, ({t})0) - ez * ey + bmc_log1p(bmc_exp(-bmc_abs(ez)));"]
    else:
        per = [f"const {t} ed = {ps}[e] - {ts}[e];", "acc += ed * ed;"]
    lines = [f"const int n = {n}, chunk = (n + gridDim.x - 1) / gridDim.x;",
             "const int begin = blockIdx.x * chunk, end = begin + chunk < n ? begin + chunk : n;",
             f"{t} acc = {literal(0, p.type.dtype)};",
             "for (int e = begin + threadIdx.x; e < end; e += 256) {", *("  " + x for x in per), "}",
             "acc = bmc_group_reduce<256>(acc, bmc_sum_op());",
             f"if (threadIdx.x == 0) {part}[blockIdx.x] = acc;"]
    blocks = f"bmc_imin_host(bmc_ceil({fn.hdim(size)}, {CHUNK}), 1024)"
    fn.emit(f"const int {k.name}_blocks = {blocks};")
    k.launch(lines, f"{k.name}_blocks", "256", 256)
    total_of_partials(fn, node, f"({t}*){ws}", f"{k.name}_blocks", p.type.dtype, size)
