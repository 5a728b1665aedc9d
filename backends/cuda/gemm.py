"""Matrix products, dense layers and convolutions, all through one tiled GEMM (bmc_gemm_tile, or bmc_wmma_tile on
tensor cores, in model.cu.j2).

Operands are functors: a strided matrix read as stored (transposed forms are index swaps, nothing is materialized)
or an implicit im2col view of an image batch, so a convolution, its input gradient and its weight gradient are GEMMs
without a column buffer.

Precision (`bmc build --target cuda --precision`): fp32 (the default) multiplies f32 products exactly on the CUDA
cores; tf32 and bf16 run them on the tensor cores (WMMA, sm_80 and newer) with the inputs rounded to TF32 (10
mantissa bits) or BF16 (7) and the products accumulated in FP32. Only GEMM inputs are rounded: parameters, optimizer
state and every other kernel stay FP32, so BF16 training keeps FP32 master weights and needs no loss scaling (the
gradients are FP32 values; only their products' inputs lose mantissa, never range). f64 builds are always exact.

Tiles by shape (the heuristic; no tuner runs, the host picks among a product's instantiated tiles by its run-time
sizes and the device's SM count):
* a tile's side is at most the product's extent rounded up to 16, 32, 64 or 128 (a static one: a 32-channel
  convolution gets 32-row tiles, a 10-class dense layer 16-column ones; a symbolic extent, such as the batch, 128);
* the candidates are the 128, 64 and 32 squares so clipped (e.g. 128x128, 64x64, 32x32; 32x128, 32x64, 32x32), and
  the host takes the first whose blocks (tiles x batch) fill the SMs, else the last (the most blocks);
* when even the last leaves SMs idle and the product is unbatched, it is split along k into partial products
  (bmc_splits: enough for two waves of SMs, each over at least 64 values of k, within the workspace) that a second
  kernel adds in split order (deterministic). The MLP's 64x784x128 at batch 64: 8 tiles of 32x32, 13 splits, 104
  blocks on 132 SMs (before: 2 blocks of 64x64).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bmc.backends.cuda.ctext import C_TYPES, SIZES, flat_offset, product, strides
from bmc.backends.cuda.memory import Request
from bmc.backends.cuda.rules import kernel

from bmc import ops
from bmc.ir.graph import Node
from bmc.ir.types import Dim

PRECISIONS = ("fp32", "tf32", "bf16")
EXTENTS = (16, 32, 64, 128)  # tile sides
SQUARES = (128, 64, 32)  # the candidates, before clipping to the product's extents
SPLIT_MAX = 128
SPLIT_MIN_K = 64  # values of k per partial product at least (bmc_splits)
SPLIT_ALIGN = 32  # a partial product's k range starts at a multiple of this: whole slabs, aligned vector loads
PLANNED_SMS = 132  # an H100/H200: the split-K workspace is sized for two waves of these


@dataclass(frozen=True)
class Tile:
    """A BM x BN output tile per block: on the CUDA cores (fp32: 256 threads as 16 x 16, BM/16 x BN/16 outputs each)
    or on the tensor cores (tf32, bf16: a warp per group of 16 x 16 fragments, at most 8 warps)."""

    bm: int
    bn: int
    precision: str = "fp32"

    @property
    def name(self) -> str:
        return f"t{self.bm}x{self.bn}" + ("" if self.precision == "fp32" else f"_{self.precision}")

    @property
    def bk(self) -> int:
        """The slab depth: two tensor-core steps (k8 for TF32, k16 for BF16), or at least 256 elements per operand
        slab for the CUDA cores (one per thread)."""
        if self.precision == "fp32":
            return max(8, 256 // min(self.bm, self.bn))
        return 16 if self.precision == "tf32" else 32

    @property
    def warps(self) -> tuple[int, int]:
        """WARPS_M x WARPS_N for the tensor cores: as many warps as fragments, up to 8, each warp's part as square as
        the tile allows."""
        fm, fn = self.bm // 16, self.bn // 16
        count = min(8, fm * fn)
        shapes = [(wm, count // wm) for wm in range(1, count + 1)
                  if count % wm == 0 and fm % wm == 0 and fn % (count // wm) == 0]
        return min(shapes, key=lambda w: abs(self.bm // w[0] - self.bn // w[1]))

    @property
    def threads(self) -> int:
        return 256 if self.precision == "fp32" else 32 * self.warps[0] * self.warps[1]

    def call(self, g: Gemm, k_range: str, store: str) -> str:
        flags = f"{str(g.a_kfast).lower()}, {str(g.b_nfast).lower()}"
        args = f"(load_a, load_b, {store}, mdim, ndim, {k_range}, blockIdx.y * {self.bm}, blockIdx.x * {self.bn});"
        if self.precision == "fp32":
            return f"bmc_gemm_tile<{C_TYPES[g.dtype]}, {self.bm}, {self.bn}, {self.bk}, {flags}>{args}"
        staged = "float" if self.precision == "tf32" else "__nv_bfloat16"
        wm, wn = self.warps
        return f"bmc_wmma_tile<{staged}, {self.bm}, {self.bn}, {wm}, {wn}, {flags}>{args}"


def _side(d: Dim) -> int:
    """The largest tile side a product's extent can use: a static extent rounded up to a tile side."""
    if not isinstance(d, int):
        return EXTENTS[-1]
    return next((e for e in EXTENTS if e >= d), EXTENTS[-1])


@dataclass
class Gemm:
    node: Node
    hint: str
    m: Dim
    n: Dim
    k: Dim
    batch: Dim
    dtype: str
    a_kfast: bool
    b_nfast: bool
    setup: Callable  # (KernelBuilder) -> lines defining load_a, load_b and store(gm, gn, gv); `z` is the batch

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """The candidate tiles (BM, BN), largest first (see the module docstring)."""
        out: list[tuple[int, int]] = []
        for side in SQUARES:
            shape = (min(side, _side(self.m)), min(side, _side(self.n)))
            if shape not in out:
                out.append(shape)
        return out

    def tiles(self, precision: str) -> list[Tile]:
        """The tiles to instantiate: tensor cores for an f32 product in a tf32 or bf16 build."""
        kind = precision if self.dtype == "f32" else "fp32"
        return [Tile(bm, bn, kind) for bm, bn in self.shapes]

    @property
    def split_capacity(self) -> int:
        """The elements of the split-K workspace (partial results), 0 when the product is never split: it is
        batched, both its extents are symbolic, its k is too short to split, or its tiles fill two waves of SMs.
        With a symbolic extent, room for two waves of the smallest tile (the host splits less when a bigger
        product would not fit)."""
        if self.batch != 1 or (not isinstance(self.m, int) and not isinstance(self.n, int)):
            return 0
        if isinstance(self.k, int) and self.k < 4 * SPLIT_MIN_K:
            return 0
        bm, bn = self.shapes[-1]
        if not isinstance(self.m, int) or not isinstance(self.n, int):
            return 2 * PLANNED_SMS * bm * bn
        tiles = -(-self.m // bm) * -(-self.n // bn)
        if tiles >= 2 * PLANNED_SMS:
            return 0
        most = min(SPLIT_MAX, -(-2 * PLANNED_SMS // tiles))
        if isinstance(self.k, int):
            most = min(most, -(-self.k // SPLIT_MIN_K))
        return most * self.m * self.n if most > 1 else 0

    def split_bytes(self) -> int:
        return self.split_capacity * SIZES[self.dtype]


def choose(g: Gemm, m: int, n: int, k: int, batch: int = 1, sm_count: int = PLANNED_SMS) -> tuple[tuple, int, int]:
    """What the generated host code picks for these run-time sizes: ((BM, BN), splits, blocks launched)."""
    shapes = g.shapes
    bm, bn = shapes[-1]
    if g.split_capacity:
        tiles = -(-m // bm) * -(-n // bn)
        most = min(SPLIT_MAX, g.split_capacity // max(m * n, 1))
        splits = 1 if tiles >= sm_count else max(1, min(-(-2 * sm_count // tiles), most, -(-k // SPLIT_MIN_K)))
        if splits > 1:
            return (bm, bn), splits, tiles * splits
    for bm, bn in shapes:
        blocks = -(-m // bm) * -(-n // bn) * batch
        if blocks >= sm_count or (bm, bn) == shapes[-1]:
            return (bm, bn), 1, blocks
    raise AssertionError("unreachable")


def _dims(g: Gemm, k) -> list[str]:
    return [f"[[maybe_unused]] const int mdim = {k.dim(g.m)}, ndim = {k.dim(g.n)}, kdim = {k.dim(g.k)};"]


def _times(*factors: str) -> str:
    return " * ".join(f for f in factors if f != "1") or "1"


def emit_gemm(item, fn, g: Gemm) -> None:
    """The host lines of one product: the choice of tile (and of split-K) by its sizes, and the launch."""
    m, n, kk, batch = fn.hdim(g.m), fn.hdim(g.n), fn.hdim(g.k), fn.hdim(g.batch)
    tiles = g.tiles(fn.module.precision)
    branches: list[tuple[str | None, Callable[[], None]]] = []
    names = [f"{t.bm}x{t.bn}" for t in tiles]
    about = f"{names[0]} tiles" if len(tiles) == 1 else f"tiles by shape: the first of {', '.join(names)} whose " \
        "blocks fill the SMs, else the last"
    if g.split_capacity:
        about += f"; split along k when even {names[-1]} leaves SMs idle"
    fn.emit("{")
    fn.indent += 1
    fn.emit(f"// {about}")
    if g.split_capacity:
        last = tiles[-1]
        most = f"bmc_split_room({g.split_capacity}LL, {m}, {n})"
        fn.emit(f"const int splits = bmc_splits(ctx, (long long)bmc_ceil({m}, {last.bm}) * bmc_ceil({n}, {last.bn}), "
                f"{kk}, {most});")
        branches.append(("splits > 1", lambda: _split(item, fn, g, last)))
    for tile in tiles[:-1]:
        blocks = _times(f"(long long)bmc_ceil({m}, {tile.bm})", f"bmc_ceil({n}, {tile.bn})", batch)
        branches.append((f"{blocks} >= ctx->sm_count", lambda tile=tile: _launch(fn, g, tile, m, n, batch)))
    branches.append((None, lambda: _launch(fn, g, tiles[-1], m, n, batch)))
    for k, (condition, write) in enumerate(branches):
        if len(branches) > 1:
            fn.emit(f"{'' if k == 0 else '} else '}{f'if ({condition}) ' if condition else ''}{{")
            fn.indent += 1
        write()
        if len(branches) > 1:
            fn.indent -= 1
    if len(branches) > 1:
        fn.emit("}")
    fn.indent -= 1
    fn.emit("}")


def _launch(fn, g: Gemm, tile: Tile, m: str, n: str, batch: str) -> None:
    kb = fn.kernel(g.node, f"{g.hint}_{tile.name}")
    lines = [*_dims(g, kb), "[[maybe_unused]] const int z = blockIdx.z;", *g.setup(kb),
             tile.call(g, "0, kdim", "store")]
    kb.launch(lines, f"dim3(bmc_ceil({n}, {tile.bn}), bmc_ceil({m}, {tile.bm}), {batch})", str(tile.threads),
              tile.threads)


def _split(item, fn, g: Gemm, tile: Tile) -> None:
    """Partial products over k ranges (whole slabs) into the workspace, then their sum in order through the real
    store."""
    t = C_TYPES[g.dtype]
    ws = f"({t}*){fn.workspace(item)}"
    kb = fn.kernel(g.node, f"{g.hint}_split_{tile.name}")
    wsp = kb.pointer(f"{t}* __restrict__", ws, "wsp")
    lines = [*_dims(g, kb), "[[maybe_unused]] const int z = 0;", *g.setup(kb),
             f"const int kchunk = ((kdim + gridDim.z - 1) / gridDim.z + {SPLIT_ALIGN - 1}) / {SPLIT_ALIGN} * "
             f"{SPLIT_ALIGN};",
             "const int kbegin = blockIdx.z * kchunk, kend = kbegin + kchunk < kdim ? kbegin + kchunk : kdim;",
             f"auto part_store = [=](int gm, int gn, {t} gv) {{ {wsp}[((size_t)blockIdx.z * mdim + gm) * ndim + gn] "
             "= gv; };",
             tile.call(g, "kbegin, kend", "part_store")]
    grid = f"dim3(bmc_ceil({fn.hdim(g.n)}, {tile.bn}), bmc_ceil({fn.hdim(g.m)}, {tile.bm}), splits)"
    kb.launch(lines, grid, str(tile.threads), tile.threads)
    kr = fn.kernel(g.node, f"{g.hint}_split_sum")
    wsp = kr.pointer(f"const {t}* __restrict__", ws, "wsp")
    count = kr.scalar("int", "splits", "splits")
    lines = [*_dims(g, kr), "[[maybe_unused]] const int z = 0;", *g.setup(kr),
             "for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < mdim * ndim; i += gridDim.x * blockDim.x) {",
             f"  {t} acc = {wsp}[i];",
             f"  for (int split = 1; split < {count}; ++split) acc += {wsp}[(size_t)split * mdim * ndim + i];",
             "  store(i / ndim, i % ndim, acc);",
             "}"]
    kr.launch(lines, f"bmc_blocks((long long){fn.hdim(g.m)} * {fn.hdim(g.n)}, 256)", "256", 256)


def _workspace(build: Callable) -> Callable:
    def workspace(item, fn) -> list[Request]:
        g = build(item.node)
        return [Request(str(g.split_bytes()), why="split-K partial products")] if g.split_capacity else []

    return workspace


def _matrix(t: str, transposed: bool, ptr: str, ld: str) -> str:
    return f"bmc_matrix<{t}, {str(transposed).lower()}>{{{ptr}, {ld}}}"


def _let(name: str, value: str) -> str:
    """A kernel-local operand or epilogue (some kernels of a product leave one unused)."""
    return f"[[maybe_unused]] auto {name} = {value};"


def _store(t: str, statement: str) -> str:
    """The epilogue: writes result (gm, gn) = gv."""
    return _let("store", f"[=](int gm, int gn, {t} gv) {{ {statement} }}")


# ---- matmul and dense ----------------------------------------------------------------------------------------------


def matmul_gemm(node: Node) -> Gemm:
    (a, b), y = node.inputs, node.outputs[0]
    ta, tb = node.op.transpose_a, node.op.transpose_b
    m, k = (a.type.shape[-1], a.type.shape[-2]) if ta else (a.type.shape[-2], a.type.shape[-1])
    n = b.type.shape[-2] if tb else b.type.shape[-1]
    out_batch = y.type.shape[:-2]
    t = C_TYPES[y.type.dtype]
    fold = not ta and b.type.rank == 2  # [..., M, K] @ [K, N]: one product of all rows
    rows = product(a.type.shape[:-1]) if fold else m
    batch = 1 if fold else product(out_batch)

    def batch_offset(v, kb) -> str:
        vb = v.type.shape[:-2]
        st = strides(v.type.shape)
        per_axis: list[Dim] = []
        for axis in range(len(out_batch)):
            j = axis - (len(out_batch) - len(vb))
            per_axis.append(0 if j < 0 or (vb[j] == 1 and out_batch[axis] != 1) else st[j])
        return flat_offset("z", out_batch, per_axis, kb.dim)

    def setup(kb) -> list[str]:
        pa, pb, pc = kb.input(a), kb.input(b), kb.output(y)
        a_off = "0" if fold else batch_offset(a, kb)
        b_off = "0" if fold else batch_offset(b, kb)
        lda, ldb = ("mdim" if ta else "kdim"), ("kdim" if tb else "ndim")
        return [_let("load_a", _matrix(t, ta, f"{pa} + {a_off}", lda)),
                _let("load_b", _matrix(t, tb, f"{pb} + {b_off}", ldb)),
                f"{t}* pc = {pc} + (size_t)z * mdim * ndim;",
                _store(t, "pc[(size_t)gm * ndim + gn] = gv;")]

    return Gemm(node, "matmul", rows, n, k, batch, y.type.dtype, not ta, not tb, setup)


def dense_gemm(node: Node) -> Gemm:
    (x, w, bias), y = node.inputs, node.outputs[0]
    t = C_TYPES[y.type.dtype]

    def setup(kb) -> list[str]:
        px, pw, pbias, py = kb.input(x), kb.input(w), kb.input(bias), kb.output(y)
        return [_let("load_a", _matrix(t, False, px, "kdim")),
                _let("load_b", _matrix(t, False, pw, "ndim")),
                _store(t, f"{py}[(size_t)gm * ndim + gn] = gv + {pbias}[gn];")]

    return Gemm(node, "dense", product(x.type.shape[:-1]), w.type.shape[1], w.type.shape[0], 1, y.type.dtype, True,
                True, setup)


@kernel(ops.MatMul, workspace=_workspace(matmul_gemm))
def matmul(item, fn) -> None:
    emit_gemm(item, fn, matmul_gemm(item.node))


@kernel(ops.Dense, workspace=_workspace(dense_gemm))
def dense(item, fn) -> None:
    emit_gemm(item, fn, dense_gemm(item.node))


# ---- convolutions as implicit GEMMs ----------------------------------------------------------------------------------


def _window(op, kernel_hw) -> dict:
    (sh, sw), (top, left, _, _), (dh, dw) = op.stride, op.padding, op.dilation
    return {"kh": kernel_hw[0], "kw": kernel_hw[1], "sh": sh, "sw": sw, "top": top, "left": left, "dh": dh, "dw": dw}


def _group_of_z(groups: int) -> list[str]:
    """A grouped convolution's batch index z is image * groups + group."""
    return [f"const int zimg = z / {groups}, zgroup = z % {groups};"]


def conv2d_gemm(node: Node) -> Gemm:
    """Per image and group: y[o, p] = sum over (c, kh, kw) of w[o, c, kh, kw] x[c, ih, iw] + b[o]; p = (oh, ow),
    o and c the group's own channels (the batch index z is image * groups + group)."""
    (x, w, bias), y = node.inputs, node.outputs[0]
    _, c, h, wd = x.type.shape
    o, _, kh, kw = w.type.shape
    oh, ow = y.type.shape[2], y.type.shape[3]
    g = _window(node.op, (kh, kw))
    t = C_TYPES[y.type.dtype]
    groups = node.op.groups
    cg, og = c // groups, o // groups

    def setup(kb) -> list[str]:
        px, pw, pbias, py = kb.input(x), kb.input(w), kb.input(bias), kb.output(y)
        if groups == 1:
            head = [f"const {t}* img = {px} + (size_t)z * {c * h * wd};", _let("load_a", _matrix(t, False, pw, "kdim"))]
            out, bias_at = f"{t}* pc = {py} + (size_t)z * {o * oh * ow};", f"{pbias}[gm]"
        else:
            head = [*_group_of_z(groups), f"const {t}* img = {px} + (size_t)zimg * {c * h * wd} + (size_t)zgroup * "
                    f"{cg * h * wd};", _let("load_a", _matrix(t, False, f"{pw} + (size_t)zgroup * {og * cg * kh * kw}",
                                                             "kdim"))]
            out = f"{t}* pc = {py} + (size_t)zimg * {o * oh * ow} + (size_t)zgroup * {og * oh * ow};"
            bias_at = f"{pbias}[zgroup * {og} + gm]"
        return [*head,
                f"[[maybe_unused]] auto load_b = [=](int gk, int gn) -> {t} {{",
                f"  const int cin = gk / {kh * kw}, kh = (gk / {kw}) % {kh}, kw = gk % {kw};",
                f"  const int ih = (gn / {ow}) * {g['sh']} - {g['top']} + kh * {g['dh']};",
                f"  const int iw = (gn % {ow}) * {g['sw']} - {g['left']} + kw * {g['dw']};",
                f"  return (ih >= 0 && ih < {h} && iw >= 0 && iw < {wd}) ? img[(cin * {h} + ih) * {wd} + iw] : ({t})0;",
                "};",
                out,
                _store(t, f"pc[gm * {oh * ow} + gn] = gv + {bias_at};")]

    return Gemm(node, "conv2d", og, oh * ow, cg * kh * kw, product([x.type.shape[0], groups]), y.type.dtype, True,
                True, setup)


def conv2d_grad_input_gemm(node: Node) -> Gemm:
    """Per image and group: dx[c, q] = sum over (o, kh, kw) of w[o, c, kh, kw] g[o, oh, ow], where (oh, ow) is the
    output position whose window puts kernel tap (kh, kw) on pixel q (no term when there is none): a gather, no
    atomics. o and c are the group's own channels; z is image * groups + group."""
    (gr, w), dx = node.inputs, node.outputs[0]
    o, cg, kh, kw = w.type.shape
    groups = node.op.groups
    c, og = cg * groups, o // groups
    oh, ow = gr.type.shape[2], gr.type.shape[3]
    h, wd = node.op.input_size
    g = _window(node.op, (kh, kw))
    t = C_TYPES[dx.type.dtype]

    def setup(kb) -> list[str]:
        pg, pw, pdx = kb.input(gr), kb.input(w), kb.output(dx)
        if groups == 1:
            head, wg = [f"const {t}* img = {pg} + (size_t)z * {o * oh * ow};"], pw
            out = f"{t}* pc = {pdx} + (size_t)z * {c * h * wd};"
        else:
            head, wg = [*_group_of_z(groups), f"const {t}* img = {pg} + (size_t)zimg * {o * oh * ow} + "
                        f"(size_t)zgroup * {og * oh * ow};", f"const {t}* wg = {pw} + (size_t)zgroup * "
                        f"{og * cg * kh * kw};"], "wg"
            out = f"{t}* pc = {pdx} + (size_t)zimg * {c * h * wd} + (size_t)zgroup * {cg * h * wd};"
        return [*head,
                f"[[maybe_unused]] auto load_a = [=](int gm, int gk) -> {t} {{",
                f"  return {wg}[(gk / {kh * kw} * {cg} + gm) * {kh * kw} + gk % {kh * kw}];",
                "};",
                f"[[maybe_unused]] auto load_b = [=](int gk, int gn) -> {t} {{",
                f"  const int cin = gk / {kh * kw}, kh = (gk / {kw}) % {kh}, kw = gk % {kw};",
                f"  const int ph = gn / {wd} + {g['top']} - kh * {g['dh']};",
                f"  const int pw = gn % {wd} + {g['left']} - kw * {g['dw']};",
                f"  if (ph < 0 || pw < 0 || ph % {g['sh']} || pw % {g['sw']}) return ({t})0;",
                f"  const int oh = ph / {g['sh']}, ow = pw / {g['sw']};",
                f"  return (oh < {oh} && ow < {ow}) ? img[(cin * {oh} + oh) * {ow} + ow] : ({t})0;",
                "};",
                out,
                _store(t, f"pc[gm * {h * wd} + gn] = gv;")]

    return Gemm(node, "conv2d_grad_input", cg, h * wd, og * kh * kw, product([gr.type.shape[0], groups]),
                dx.type.dtype, True, True, setup)


def conv2d_grad_weight_gemm(node: Node) -> Gemm:
    """dw[o, (c, kh, kw)] = sum over (n, oh, ow) of g[n, o, oh, ow] x[n, c, ih, iw]: one GEMM over the whole batch
    per group (z is the group; o and c its own channels), split along the batch when the weight is small and there
    is one group."""
    (x, gr), dw = node.inputs, node.outputs[0]
    n, c, h, wd = x.type.shape
    o = gr.type.shape[1]
    groups = node.op.groups
    cg, og = c // groups, o // groups
    oh, ow = gr.type.shape[2], gr.type.shape[3]
    kh, kw = node.op.kernel
    g = _window(node.op, (kh, kw))
    t = C_TYPES[dw.type.dtype]
    p = oh * ow

    def setup(kb) -> list[str]:
        px, pg, pdw = kb.input(x), kb.input(gr), kb.output(dw)
        if groups == 1:
            head, gz, xz, out = [], pg, px, pdw
        else:  # z is the group
            head = [f"const {t}* gz = {pg} + (size_t)z * {og * p};",
                    f"const {t}* xz = {px} + (size_t)z * {cg * h * wd};",
                    f"{t}* pc = {pdw} + (size_t)z * {og * cg * kh * kw};"]
            gz, xz, out = "gz", "xz", "pc"
        return [*head,
                _let("load_a", f"[=](int gm, int gk) -> {t} {{ return {gz}[((size_t)(gk / {p}) * {o} + gm) * {p} + "
                              f"gk % {p}]; }}"),
                f"[[maybe_unused]] auto load_b = [=](int gk, int gn) -> {t} {{",
                f"  const int img = gk / {p}, oh = gk % {p} / {ow}, ow = gk % {ow};",
                f"  const int cin = gn / {kh * kw}, kh = (gn / {kw}) % {kh}, kw = gn % {kw};",
                f"  const int ih = oh * {g['sh']} - {g['top']} + kh * {g['dh']}, iw = ow * {g['sw']} - {g['left']} + "
                f"kw * {g['dw']};",
                f"  return (ih >= 0 && ih < {h} && iw >= 0 && iw < {wd}) ? "
                f"{xz}[(((size_t)img * {c} + cin) * {h} + ih) * {wd} + iw] : ({t})0;",
                "};",
                _store(t, f"{out}[gm * {cg * kh * kw} + gn] = gv;")]

    return Gemm(node, "conv2d_grad_weight", og, cg * kh * kw, product([n, p]), groups, dw.type.dtype, True, False,
                setup)


@kernel(ops.Conv2d, workspace=_workspace(conv2d_gemm))
def conv2d(item, fn) -> None:
    emit_gemm(item, fn, conv2d_gemm(item.node))


@kernel(ops.Conv2dGradInput, workspace=_workspace(conv2d_grad_input_gemm))
def conv2d_grad_input(item, fn) -> None:
    emit_gemm(item, fn, conv2d_grad_input_gemm(item.node))


@kernel(ops.Conv2dGradWeight, workspace=_workspace(conv2d_grad_weight_gemm))
def conv2d_grad_weight(item, fn) -> None:
    emit_gemm(item, fn, conv2d_grad_weight_gemm(item.node))
