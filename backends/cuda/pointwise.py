"""Element rules for fused kernels: per op class, the C expression of one element of its result.

`@pointwise(Op)`: the element at the group's index i from its inputs' elements at i (after broadcasting), given as C
expressions. `@indexed(Op)`: the element at i computed from stored inputs read at other positions, through the
context (`ctx.load(value, offset)`, `ctx.coord(axis)`, `ctx.statement(line)`; fused.py's GroupContext).

Expressions call the device helpers of templates/model.cu.j2 (bmc_exp, bmc_sigmoid, ...), overloaded for float and
double, so the same text serves f32 and f64 builds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from bmc.backends.cuda.ctext import C_TYPES, literal, product

from bmc import ops
from bmc.ir import dims
from bmc.ir.graph import Node, Value
from bmc.ir.types import Dim, normalize_axes
from bmc.rule_table import RuleTable


class Context(Protocol):
    flat: str  # the group's flat index variable

    def dim(self, d: Dim) -> str: ...
    def offset(self, axis_strides: list[Dim]) -> str: ...
    def coord(self, axis: int) -> str: ...
    def split(self, axis: int) -> tuple[str, str, str, str]: ...
    def load(self, v: Value, offset: str) -> str: ...
    def statement(self, line: str) -> None: ...
    def fresh(self, hint: str) -> str: ...
    def bad_index(self) -> str: ...


PointwiseRule = Callable[[Node, list[str], Context], str]
IndexedRule = Callable[[Node, Context], str]
POINTWISE: RuleTable[PointwiseRule] = RuleTable("cuda", "element")
INDEXED: RuleTable[IndexedRule] = RuleTable("cuda", "indexed element")
SHAPE_ONLY = {ops.SizeOf: (0,), ops.RandomUniformLike: (0,)}  # inputs whose values are never read
pointwise = POINTWISE.register
indexed = INDEXED.register


def ctype(v: Value) -> str:
    return C_TYPES[v.type.dtype]


# ---- elementwise -------------------------------------------------------------------------------------------------


@pointwise(ops.Const)
def _const(node, a, ctx):
    return literal(node.op.value, node.op.dtype)


CALLS = {ops.Exp: "bmc_exp", ops.Log: "bmc_log", ops.Sqrt: "bmc_sqrt", ops.Tanh: "bmc_tanh", ops.Abs: "bmc_abs",
         ops.Sign: "bmc_sign", ops.Sigmoid: "bmc_sigmoid", ops.Relu: "bmc_relu", ops.Gelu: "bmc_gelu",
         ops.GeluGrad: "bmc_gelu_grad", ops.Pow: "bmc_pow", ops.Maximum: "bmc_maximum", ops.Minimum: "bmc_minimum",
         ops.Erf: "bmc_erf"}


@pointwise(*CALLS)
def _call(node, a, ctx):
    return f"{CALLS[type(node.op)]}({', '.join(a)})"


@pointwise(ops.Neg)
def _neg(node, a, ctx):
    return f"(-{a[0]})"


INFIX = {ops.Add: "+", ops.Sub: "-", ops.Mul: "*", ops.Div: "/"}


@pointwise(*INFIX)
def _infix(node, a, ctx):
    return f"({a[0]} {INFIX[type(node.op)]} {a[1]})"


@pointwise(ops.Compare)
def _compare(node, a, ctx):
    return f"({a[0]} {node.op.op} {a[1]})"


@pointwise(ops.Where)
def _where(node, a, ctx):
    return f"({a[0]} ? {a[1]} : {a[2]})"


@pointwise(ops.Cast)
def _cast(node, a, ctx):
    if node.op.dtype == "bool":
        return f"({a[0]} != 0)"
    return f"(({C_TYPES[node.op.dtype]}){a[0]})"


@pointwise(ops.BroadcastTo)
def _broadcast(node, a, ctx):  # the load already broadcasts
    return a[0]


@pointwise(ops.SizeOf)
def _size_of(node, a, ctx):
    count = dims.product(node.op.dims_of(node.inputs[0].type))
    return f"(({C_TYPES[node.op.dtype]})({ctx.dim(count)}))"


@pointwise(ops.RandomUniformLike)
def _random(node, a, ctx):
    return f"bmc_uniform<{ctype(node.outputs[0])}>({a[1]}, {node.op.salt}u, {ctx.flat})"


@pointwise(ops.CausalMask)
def _causal(node, a, ctx):
    rank = node.outputs[0].type.rank
    fill = literal(node.op.fill, node.outputs[0].type.dtype)
    return f"({ctx.coord(rank - 1)} > {ctx.coord(rank - 2)} ? {fill} : {a[0]})"


# ---- data movement -------------------------------------------------------------------------------------------------


@indexed(ops.Transpose)
def _transpose(node, ctx):
    x = node.inputs[0]
    strides = _strides(x.type.shape)
    return ctx.load(x, ctx.offset([strides[p] for p in node.op.perm]))


@indexed(ops.Slice)
def _slice(node, ctx):
    x = node.inputs[0]
    (axis,) = normalize_axes((node.op.axis,), x.type.rank)
    outer, c, rest, inner = ctx.split(axis)
    step = f" * {node.op.step}" if node.op.step != 1 else ""
    start = f" + {node.op.start}" if node.op.start else ""
    position = f"({c}{step}{start})" if step else f"{c}{start}"
    return ctx.load(x, _axis_offset(outer, position, rest, inner, ctx.dim(x.type.shape[axis])))


@indexed(ops.Concat)
def _concat(node, ctx):
    out = node.outputs[0]
    (axis,) = normalize_axes((node.op.axis,), out.type.rank)
    outer, c, rest, inner = ctx.split(axis)
    result = ctx.fresh("cat")
    ctx.statement(f"{ctype(out)} {result};")
    start = 0
    for k, x in enumerate(node.inputs):
        size = x.type.shape[axis]
        local = f"{c} - {start}" if start else c
        load = ctx.load(x, _axis_offset(outer, local, rest, inner, str(size)))
        last = k == len(node.inputs) - 1
        test = "" if last else f"if ({c} < {start + size}) "
        ctx.statement(f"{'else ' if k else ''}{test}{result} = {load};")
        start += size
    return result


@indexed(ops.PadEnd)
def _pad_end(node, ctx):
    x = node.inputs[0]
    (axis,) = normalize_axes((node.op.axis,), x.type.rank)
    outer, c, rest, inner = ctx.split(axis)
    n = ctx.dim(x.type.shape[axis])
    return f"({c} < {n} ? {ctx.load(x, _axis_offset(outer, c, rest, inner, n))} : {literal(0, x.type.dtype)})"


@indexed(ops.OneHot)
def _one_hot(node, ctx):
    depth = node.op.depth
    label = ctx.load(node.inputs[0], f"{ctx.flat} / {depth}")
    one, zero = literal(1, node.op.dtype), literal(0, node.op.dtype)
    return f"({label} == {ctx.flat} % {depth} ? {one} : {zero})"


@indexed(ops.Gather)
def _gather(node, ctx):
    table, ids = node.inputs
    row = ctx.dim(product(table.type.shape[1:]))
    rows = ctx.dim(table.type.shape[0])
    r = ctx.fresh("row")
    ctx.statement(f"const int64_t {r} = {ctx.load(ids, f'{ctx.flat} / {row}')};")
    ctx.statement(f"if ({r} < 0 || {r} >= {rows}) {ctx.bad_index()};")
    zero = literal(0, table.type.dtype)
    return f"({r} >= 0 && {r} < {rows} ? {ctx.load(table, f'(int){r} * {row} + {ctx.flat} % {row}')} : {zero})"


def _strides(shape: tuple[Dim, ...]) -> list[Dim]:
    return [product(shape[k + 1:]) for k in range(len(shape))]


def _axis_offset(outer: str, c: str, rest: str, inner: str, size: str) -> str:
    """The offset of element (outer, c, rest) in a tensor whose `axis` has `size` entries."""
    parts = f"({outer} * {size} + {c})" if outer != "0" else f"({c})"
    return f"{parts} * {inner} + {rest}" if inner != "1" else parts


# ---- pooling: each output element from its window (gradients: each input element from the windows holding it) ----
# The loops' variables start with `w` (wa, wih, ...): the names the generator reserves for itself.


def _pool_geometry(node, image: Value, ctx):
    """(base offset of the image plane, H, W) for output element i of a [N, C, *, *] result."""
    h, w = image.type.shape[2], image.type.shape[3]
    return f"({ctx.coord(0)} * {image.type.shape[1]} + {ctx.coord(1)}) * {h * w}", h, w


def _windows_holding(ctx, op, out_h: int, out_w: int) -> list[str]:
    """Lines opening a loop over the windows (woh, wow) that hold input pixel (ih, iw) at tap (wa, wb)."""
    (kh, kw), (sh, sw), (top, left, _, _) = op.kernel, op.stride, op.padding
    ih, iw = ctx.coord(2), ctx.coord(3)
    return [f"for (int wa = 0; wa < {kh}; ++wa) for (int wb = 0; wb < {kw}; ++wb) {{",
            f"  const int wph = {ih} + {top} - wa, wpw = {iw} + {left} - wb;",
            f"  if (wph < 0 || wpw < 0 || wph % {sh} || wpw % {sw}) continue;",
            f"  const int woh = wph / {sh}, wow = wpw / {sw};",
            f"  if (woh >= {out_h} || wow >= {out_w}) continue;"]


@indexed(ops.MaxPool2d)
def _max_pool(node, ctx):
    x = node.inputs[0]
    (kh, kw), (sh, sw), (top, left, _, _) = node.op.kernel, node.op.stride, node.op.padding
    base, h, w = _pool_geometry(node, x, ctx)
    m, t = ctx.fresh("m"), ctype(x)
    oh, ow = ctx.coord(2), ctx.coord(3)
    ctx.statement(f"{t} {m} = -INFINITY;")
    ctx.statement(f"for (int wa = 0; wa < {kh}; ++wa) for (int wb = 0; wb < {kw}; ++wb) {{")
    ctx.statement(f"  const int wih = {oh} * {sh} - {top} + wa, wiw = {ow} * {sw} - {left} + wb;")
    ctx.statement(f"  {m} = bmc_maximum({m}, (wih >= 0 && wih < {h} && wiw >= 0 && wiw < {w}) ? "
                  f"{ctx.load(x, f'{base} + wih * {w} + wiw')} : ({t})(-INFINITY));")
    ctx.statement("}")
    return m


@indexed(ops.MaxPool2dGrad)
def _max_pool_grad(node, ctx):
    """dx at (ih, iw): the sum of g over the windows whose first maximum (row-major) is this pixel."""
    x, g = node.inputs
    (kh, kw), (sh, sw), (top, left, _, _) = node.op.kernel, node.op.stride, node.op.padding
    base, h, w = _pool_geometry(node, x, ctx)
    out_h, out_w = g.type.shape[2], g.type.shape[3]
    gbase = f"({ctx.coord(0)} * {g.type.shape[1]} + {ctx.coord(1)}) * {out_h * out_w}"
    acc, t = ctx.fresh("dx"), ctype(g)
    inside = f"wyh >= 0 && wyh < {h} && wyw >= 0 && wyw < {w}"
    pixel = ctx.load(x, f"{base} + wyh * {w} + wyw")
    ctx.statement(f"{t} {acc} = {literal(0, g.type.dtype)};")
    for line in _windows_holding(ctx, node.op, out_h, out_w):
        ctx.statement(line)
    ctx.statement(f"  {t} wm = -INFINITY;")
    ctx.statement("  int wfirst = -1;")
    ctx.statement(f"  for (int wc = 0; wc < {kh}; ++wc) for (int wd = 0; wd < {kw}; ++wd) {{")
    ctx.statement(f"    const int wyh = woh * {sh} - {top} + wc, wyw = wow * {sw} - {left} + wd;")
    ctx.statement(f"    wm = bmc_maximum(wm, ({inside}) ? {pixel} : ({t})(-INFINITY));")
    ctx.statement("  }")
    ctx.statement(f"  for (int wc = 0; wc < {kh} && wfirst < 0; ++wc)")
    ctx.statement(f"    for (int wd = 0; wd < {kw} && wfirst < 0; ++wd) {{")
    ctx.statement(f"    const int wyh = woh * {sh} - {top} + wc, wyw = wow * {sw} - {left} + wd;")
    ctx.statement(f"    if ({inside} && {pixel} == wm) wfirst = wc * {kw} + wd;")
    ctx.statement("  }")
    ctx.statement(f"  if (wfirst == wa * {kw} + wb) {acc} += {ctx.load(g, f'{gbase} + woh * {out_w} + wow')};")
    ctx.statement("}")
    return acc


def _window_count(oh: str, ow: str, op, h: int, w: int) -> str:
    """How many real (unpadded) pixels the window at (oh, ow) covers."""
    (kh, kw), (sh, sw), (top, left, _, _) = op.kernel, op.stride, op.padding
    rows = f"(bmc_imin({oh} * {sh} - {top} + {kh}, {h}) - bmc_imax({oh} * {sh} - {top}, 0))"
    cols = f"(bmc_imin({ow} * {sw} - {left} + {kw}, {w}) - bmc_imax({ow} * {sw} - {left}, 0))"
    return f"({rows} * {cols})"


@indexed(ops.AvgPool2d)
def _avg_pool(node, ctx):
    x = node.inputs[0]
    (kh, kw), (sh, sw), (top, left, _, _) = node.op.kernel, node.op.stride, node.op.padding
    base, h, w = _pool_geometry(node, x, ctx)
    s, t = ctx.fresh("s"), ctype(x)
    oh, ow = ctx.coord(2), ctx.coord(3)
    ctx.statement(f"{t} {s} = {literal(0, x.type.dtype)};")
    ctx.statement(f"for (int wa = 0; wa < {kh}; ++wa) for (int wb = 0; wb < {kw}; ++wb) {{")
    ctx.statement(f"  const int wih = {oh} * {sh} - {top} + wa, wiw = {ow} * {sw} - {left} + wb;")
    load = ctx.load(x, f"{base} + wih * {w} + wiw")
    ctx.statement(f"  if (wih >= 0 && wih < {h} && wiw >= 0 && wiw < {w}) {s} += {load};")
    ctx.statement("}")
    return f"({s} / ({t}){_window_count(oh, ow, node.op, h, w)})"


@indexed(ops.AvgPool2dGrad)
def _avg_pool_grad(node, ctx):
    (g,) = node.inputs
    h, w = node.op.input_size
    out_h, out_w = g.type.shape[2], g.type.shape[3]
    gbase = f"({ctx.coord(0)} * {g.type.shape[1]} + {ctx.coord(1)}) * {out_h * out_w}"
    acc, t = ctx.fresh("dx"), ctype(g)
    ctx.statement(f"{t} {acc} = {literal(0, g.type.dtype)};")
    for line in _windows_holding(ctx, node.op, out_h, out_w):
        ctx.statement(line)
    count = _window_count("woh", "wow", node.op, h, w)
    ctx.statement(f"  {acc} += {ctx.load(g, f'{gbase} + woh * {out_w} + wow')} / ({t}){count};")
    ctx.statement("}")
    return acc


# ---- resizing: each element from its interpolation taps, computed in double precision as the reference's -------------


def _resize_taps(ctx, op, axis: int, o: str, n_in: int, n_out: int) -> tuple[str, str, str, str]:
    """Statements computing output position `o`'s taps along one axis (bmc/reference/kernels.py `_resize_taps`):
    C names of (i0, i1, w0, w1), the result reading w0 x[i0] + w1 x[i1]."""
    v = ctx.fresh("tap")
    scale = repr(float(op.scale[axis]))
    if op.coordinates == "align_corners":
        x = "0.0" if n_out == 1 else f"(double)({o}) * {n_in - 1}.0 / {n_out - 1}.0"
    elif op.coordinates == "asymmetric":
        x = f"(double)({o}) / {scale}"
    elif op.coordinates == "pytorch_half_pixel" and n_out == 1:
        x = "0.0"
    else:
        x = f"((double)({o}) + 0.5) / {scale} - 0.5"
    ctx.statement(f"double {v}_x = {x};")
    if op.mode == "nearest":
        rounded = {"round_prefer_floor": f"ceil({v}_x - 0.5)", "round_prefer_ceil": f"floor({v}_x + 0.5)",
                   "floor": f"floor({v}_x)", "ceil": f"ceil({v}_x)"}[op.nearest]
        ctx.statement(f"const int {v}_i0 = bmc_imin(bmc_imax((int){rounded}, 0), {n_in - 1}), {v}_i1 = {v}_i0;")
        ctx.statement(f"const double {v}_w0 = 1.0, {v}_w1 = 0.0;")
    else:
        ctx.statement(f"{v}_x = {v}_x < 0.0 ? 0.0 : {v}_x > {n_in - 1}.0 ? {n_in - 1}.0 : {v}_x;")
        ctx.statement(f"const int {v}_i0 = (int)floor({v}_x), {v}_i1 = bmc_imin({v}_i0 + 1, {n_in - 1});")
        ctx.statement(f"const double {v}_w1 = {v}_x - (double){v}_i0, {v}_w0 = 1.0 - {v}_w1;")
    return f"{v}_i0", f"{v}_i1", f"{v}_w0", f"{v}_w1"


@indexed(ops.Resize)
def _resize(node, ctx):
    x = node.inputs[0]
    h, w = x.type.shape[2], x.type.shape[3]
    oh, ow = node.op.size
    base = f"({ctx.coord(0)} * {x.type.shape[1]} + {ctx.coord(1)}) * {h * w}"
    rows = _resize_taps(ctx, node.op, 0, ctx.coord(2), h, oh)
    cols = _resize_taps(ctx, node.op, 1, ctx.coord(3), w, ow)
    acc = ctx.fresh("rs")
    ctx.statement(f"double {acc} = 0.0;")
    for r, wr in ((rows[0], rows[2]), (rows[1], rows[3])):
        for c, wc in ((cols[0], cols[2]), (cols[1], cols[3])):
            ctx.statement(f"{acc} += {wr} * {wc} * (double){ctx.load(x, f'{base} + {r} * {w} + {c}')};")
    return f"(({ctype(x)}){acc})"


@indexed(ops.ResizeGrad)
def _resize_grad(node, ctx):
    """dx at (h, w): the sum over the resized pixels (p, q) with a tap on it of their weights times g[p, q]."""
    (g,) = node.inputs
    h, w = node.op.input_size
    oh, ow = node.op.size
    gbase = f"({ctx.coord(0)} * {g.type.shape[1]} + {ctx.coord(1)}) * {oh * ow}"
    ih, iw = ctx.coord(2), ctx.coord(3)
    acc = ctx.fresh("rg")
    ctx.statement(f"double {acc} = 0.0;")
    ctx.statement(f"for (int wp = 0; wp < {oh}; ++wp) {{")
    rows = _resize_taps(ctx, node.op, 0, "wp", h, oh)
    ctx.statement(f"  const double wrow = ({rows[0]} == {ih} ? {rows[2]} : 0.0) + "
                  f"({rows[1]} == {ih} ? {rows[3]} : 0.0);")
    ctx.statement("  if (wrow == 0.0) continue;")
    ctx.statement(f"  for (int wq = 0; wq < {ow}; ++wq) {{")
    cols = _resize_taps(ctx, node.op, 1, "wq", w, ow)
    ctx.statement(f"    const double wcol = ({cols[0]} == {iw} ? {cols[2]} : 0.0) + "
                  f"({cols[1]} == {iw} ? {cols[3]} : 0.0);")
    ctx.statement(f"    if (wcol != 0.0) {acc} += wrow * wcol * (double){ctx.load(g, f'{gbase} + wp * {ow} + wq')};")
    ctx.statement("  }")
    ctx.statement("}")
    return f"(({ctype(g)}){acc})"
