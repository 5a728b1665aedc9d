"""Matrix products, dense layers and convolutions, all through one tiled GEMM (bmc_gemm_tile in model.cu.j2).

Each node gets two instantiations (128x128 tiles of 8x8 per thread for big products, 64x64 of 4x4 for smaller
ones; the host picks by the number of tiles against the SM count), or one of 32x32 tiles when the result is at most
48 x 48. Operands are functors: a strided matrix read as stored
(transposed forms are index swaps, nothing is materialized) or an implicit im2col view of an image batch, so a
convolution, its input gradient and its weight gradient are GEMMs without a column buffer. A product with few output
tiles and a long reduction (a weight gradient summed over a large batch) is split along k into partial products
that a second kernel adds in a fixed order (deterministic).
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

BIG, MEDIUM, SMALL = ("t128", 128, 128, 8, 8, 8), ("t64", 64, 64, 8, 4, 4), ("t32", 32, 32, 8, 2, 2)  # BM BN BK TM TN
SPLIT_MAX = 128
PLANNED_SMS = 132  # an H100/H200: split-K is considered when the tiles would not fill two waves of these


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
    def small(self) -> bool:
        """A result of at most 48 x 48 (a small weight gradient, per-head attention scores): 32x32 tiles only."""
        return isinstance(self.m, int) and isinstance(self.n, int) and self.m <= 48 and self.n <= 48

    @property
    def tiles(self) -> tuple:
        """The tile configurations to instantiate; the host picks the first whose tiles fill the SMs."""
        return (SMALL,) if self.small else (BIG, MEDIUM)

    @property
    def split_tile(self) -> tuple:
        return SMALL if self.small else MEDIUM

    @property
    def most_splits(self) -> int:
        """Splits that bring the tiles of an unbatched product to two waves of SMs (at most SPLIT_MAX); 1 when it
        is batched, has a symbolic result size, or too short a reduction to be worth splitting."""
        if self.batch != 1 or not isinstance(self.m, int) or not isinstance(self.n, int):
            return 1
        if isinstance(self.k, int) and self.k < 1024:
            return 1
        _, bm, bn = self.split_tile[:3]
        tiles = -(-self.m // bm) * -(-self.n // bn)
        return max(1, min(SPLIT_MAX, -(-2 * PLANNED_SMS // tiles))) if tiles < 2 * PLANNED_SMS else 1

    def split_bytes(self) -> int:
        return self.most_splits * self.m * self.n * SIZES[self.dtype]


def _tile_call(g: Gemm, tile, k_range: str, store: str) -> str:
    _, bm, bn, bk, tm, tn = tile
    t = C_TYPES[g.dtype]
    flags = f"{str(g.a_kfast).lower()}, {str(g.b_nfast).lower()}"
    return (f"bmc_gemm_tile<{t}, {bm}, {bn}, {bk}, {tm}, {tn}, {flags}>(load_a, load_b, {store}, mdim, ndim, "
            f"{k_range}, blockIdx.y * {bm}, blockIdx.x * {bn});")


def _dims(g: Gemm, k) -> list[str]:
    return [f"[[maybe_unused]] const int mdim = {k.dim(g.m)}, ndim = {k.dim(g.n)}, kdim = {k.dim(g.k)};"]


def emit_gemm(item, fn, g: Gemm) -> None:
    m, n, kk, batch = fn.hdim(g.m), fn.hdim(g.n), fn.hdim(g.k), fn.hdim(g.batch)
    tiles = g.tiles
    fn.emit("{")
    fn.indent += 1
    if len(tiles) > 1:
        fn.emit(f"const long long tiles = (long long)bmc_ceil({m}, {tiles[0][1]}) * bmc_ceil({n}, {tiles[0][2]}) * "
                f"{batch};")
    opened = False
    if g.most_splits > 1:
        _, bm, bn = g.split_tile[:3]
        fn.emit(f"const int splits = bmc_splits(ctx, bmc_ceil({m}, {bm}) * bmc_ceil({n}, {bn}), {kk}, "
                f"{g.most_splits});")
        fn.emit("if (splits > 1) {")
        _split(item, fn, g)
        opened = True
    for k, tile in enumerate(tiles):
        if k < len(tiles) - 1:
            fn.emit(f"{'} else ' if opened else ''}if (tiles >= ctx->sm_count) {{")
        elif opened:
            fn.emit("} else {")
        opened = opened or k < len(tiles) - 1
        name, bm, bn = tile[0], tile[1], tile[2]
        kb = fn.kernel(g.node, f"{g.hint}_{name}")
        lines = [*_dims(g, kb), "[[maybe_unused]] const int z = blockIdx.z;", *g.setup(kb),
                 _tile_call(g, tile, "0, kdim", "store")]
        fn.indent += 1 if opened else 0
        kb.launch(lines, f"dim3(bmc_ceil({n}, {bn}), bmc_ceil({m}, {bm}), {batch})", "256", 256)
        fn.indent -= 1 if opened else 0
    if opened:
        fn.emit("}")
    fn.indent -= 1
    fn.emit("}")


def _split(item, fn, g: Gemm) -> None:
    """Partial products over k ranges into the workspace, then their sum in order through the real store."""
    t = C_TYPES[g.dtype]
    ws = f"({t}*){fn.workspace(item)}"
    tile = g.split_tile
    fn.indent += 1
    kb = fn.kernel(g.node, f"{g.hint}_split")
    wsp = kb.pointer(f"{t}* __restrict__", ws, "wsp")
    lines = [*_dims(g, kb), "[[maybe_unused]] const int z = 0;", *g.setup(kb),
             "const int kchunk = (kdim + gridDim.z - 1) / gridDim.z;",
             "const int kbegin = blockIdx.z * kchunk, kend = kbegin + kchunk < kdim ? kbegin + kchunk : kdim;",
             f"auto part_store = [=](int gm, int gn, {t} gv) {{ {wsp}[((size_t)blockIdx.z * mdim + gm) * ndim + gn] "
             "= gv; };",
             _tile_call(g, tile, "kbegin, kend", "part_store")]
    grid = f"dim3(bmc_ceil({fn.hdim(g.n)}, {tile[2]}), bmc_ceil({fn.hdim(g.m)}, {tile[1]}), splits)"
    kb.launch(lines, grid, "256", 256)
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
    fn.indent -= 1


def _workspace(build: Callable) -> Callable:
    def workspace(item, fn) -> list[Request]:
        g = build(item.node)
        return [Request(str(g.split_bytes()), why="split-K partial products")] if g.most_splits > 1 else []

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
