"""The ops and layers a random program is made of. Each entry draws its operands from the values defined so far,
writes the `.bm` text and says how PyTorch computes the same thing (in the dtype of its operands).

An entry returns None when no value fits it; the generator then tries another. Shapes are tracked here, by the
language's rules, so a drawn program is well typed (bmc rejecting it is a finding too).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from tests import elementwise_ops
from tests.differential import nn
from tests.differential.program import Ctx, Layer, Param, Stmt, Val, shape_text

SIZES = (1, 2, 3, 4)  # few sizes, so equal dims, squares and size-1 axes are common
INITS = ("glorot_uniform", "xavier", "glorot_normal", "he", "he_uniform", "normal(std = 0.5)",
         "uniform(-0.6, 0.6)", "gaussian(0.1, 0.3)", "random")


@dataclass
class Gen:
    """The state of one program being drawn."""

    draw: Callable[[st.SearchStrategy], Any]
    env: list[Val] = field(default_factory=list)
    stmts: list[Stmt] = field(default_factory=list)
    layers: list[Layer] = field(default_factory=list)
    counter: itertools.count = field(default_factory=itertools.count)
    in_layer: bool = False
    randoms: int = 0  # dropout sites so far

    def name(self, hint: str) -> str:
        return f"{hint}{next(self.counter)}"

    def pick(self, ok: Callable[[Val], bool], recent: bool = True) -> Val | None:
        """A value that satisfies `ok`; with `recent`, usually the latest one (so statements build on each other)."""
        choices = [v for v in self.env if ok(v)]
        if not choices:
            return None
        if recent and self.flag(0.7):
            return choices[-1]
        return self.draw(st.sampled_from(choices))

    def choice(self, options):
        return self.draw(st.sampled_from(list(options)))

    def flag(self, p: float = 0.5) -> bool:
        return self.draw(st.integers(0, 99)) < round(100 * p)  # (hypothesis's floats favour 0 and the bounds)

    def size(self) -> int:
        return self.choice(SIZES)

    def add(self, stmt: Stmt) -> Val:
        self.stmts.append(stmt)
        self.env.append(stmt.out)
        return stmt.out

    def param(self, shape: tuple[int, ...], dtype: str = "f32", positive: bool = False) -> Val:
        """A new explicit parameter `param pN: f32[...] ~ normal(...)`."""
        name = self.name("p")
        init = "uniform(0.5, 1.5)" if positive else self.choice(("normal(std = 0.5)", "uniform(-1, 1)", "xavier"))
        if positive and len(shape) == 0:
            init = "uniform(0.5, 1.5)"
        decl = f"param {name}: {dtype}[{', '.join(map(str, shape))}] ~ {init}"
        out = Val(name, dtype, shape, scale=1.5, positive=positive)
        stmt = Stmt(name, "", out, lambda c, n=name: c.params[c.prefix + n], ("param",),
                    [Param("", decay=len(shape) >= 2, positive=positive)], decl=decl)
        return self.add(stmt)


def stmt(g: Gen, hint: str, expr: str, out: Val, compute, kinds, params=(), random=False) -> Val:
    name = g.name(hint)
    out.name = name
    return g.add(Stmt(name, expr, out, compute, tuple(kinds), list(params), random=random))


def floats(v: Val) -> bool:
    return v.is_float


def broadcast(a: tuple, b: tuple) -> tuple | None:
    """NumPy broadcasting over static and symbolic dims (equal, or one of them 1)."""
    out = []
    for i in range(max(len(a), len(b))):
        x = a[len(a) - 1 - i] if i < len(a) else 1
        y = b[len(b) - 1 - i] if i < len(b) else 1
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None
    return tuple(reversed(out))


def fmt(x: float) -> str:
    text = repr(float(x))
    return text


# ---- elementwise ------------------------------------------------------------------------------------------------

def unary(g: Gen) -> Val | None:
    """A `.bm` elementwise function of tests/elementwise_ops.py, or a negation."""
    x = g.pick(floats)
    if x is None:
        return None
    name = g.choice([r.name for r in elementwise_ops.ROWS] + ["neg"])
    n = x.name
    if name == "neg":
        return stmt(g, "u", f"-{n}", Val("", x.dtype, x.shape, scale=x.scale), lambda c: -c.v(n), ["neg"])
    row = elementwise_ops.BY_NAME[name]
    if x.scale > row.max_scale:
        row = elementwise_ops.BY_NAME["tanh"]
    fn, out = row.torch, Val("", x.dtype, x.shape, scale=row.scale(x.scale), positive=row.positive)
    if row.domain == "positive" and not x.positive:
        return stmt(g, "u", row.call(f"abs({n}) + 0.5"), out, lambda c: fn(torch.abs(c.v(n)) + 0.5),
                    [row.name, "abs", "add"])
    return stmt(g, "u", row.call(n), out, lambda c: fn(c.v(n)), [row.name])


def partner(g: Gen, x: Val) -> tuple[str, Val | None, Any]:
    """A second operand for x: a number, an earlier value that broadcasts with x, or a new parameter shaped like a
    suffix of x (some dims 1). Returns (text, value or None, torch function of the context)."""
    kind = g.choice(["literal", "value", "param", "param"])
    if kind == "value":
        y = g.pick(lambda v: v.dtype == x.dtype and v is not x and broadcast(x.shape, v.shape) is not None,
                   recent=False)
        if y is not None:
            return y.name, y, lambda c: c.v(y.name)
    if kind in ("param", "value") and x.rank:
        k = g.draw(st.integers(0, x.rank))
        dims = [d if isinstance(d, int) else 1 for d in x.shape[x.rank - k:]]
        dims = [1 if g.flag(0.3) else d for d in dims]
        p = g.param(tuple(dims), x.dtype)
        return p.name, p, lambda c: c.v(p.name)
    value = g.choice([2.0, 0.5, -1.5, 3.0, 0.25])
    return fmt(value), None, lambda c: value


def binary(g: Gen) -> Val | None:
    x = g.pick(floats)
    if x is None:
        return None
    op = g.choice(["+", "-", "*", "/", "**", "maximum", "minimum"])
    text, y, fy = partner(g, x)
    shape = x.shape if y is None else broadcast(x.shape, y.shape)
    yscale = abs(float(text)) if y is None else y.scale
    n = x.name
    if op == "/":
        if y is None:
            return stmt(g, "b", f"{n} / {text}", Val("", x.dtype, shape, scale=x.scale / yscale),
                        lambda c: c.v(n) / fy(c), ["div"])
        if y.positive:
            return stmt(g, "b", f"{n} / {text}", Val("", x.dtype, shape, scale=x.scale * 4),
                        lambda c: c.v(n) / fy(c), ["div"])
        return stmt(g, "b", f"{n} / (abs({text}) + 0.5)", Val("", x.dtype, shape, scale=x.scale * 2),
                    lambda c: c.v(n) / (torch.abs(fy(c)) + 0.5), ["div", "abs", "add"])
    if op == "**":
        if y is None:
            e = g.choice([2.0, 0.5, 3.0, -1.0])
            scale = min(x.scale + 1, 1e30) ** 3  # an estimate; past 1e90 it only has to stay a float
            return stmt(g, "b", f"(abs({n}) + 0.5) ** {fmt(e)}", Val("", x.dtype, x.shape, scale=scale, positive=True),
                        lambda c: (torch.abs(c.v(n)) + 0.5) ** e, ["pow", "abs", "add"])
        return stmt(g, "b", f"(abs({n}) + 0.5) ** tanh({text})", Val("", x.dtype, shape, scale=x.scale + 2,
                                                                       positive=True),
                    lambda c: (torch.abs(c.v(n)) + 0.5) ** torch.tanh(fy(c)), ["pow", "abs", "add", "tanh"])
    if op in ("maximum", "minimum"):
        fn = torch.maximum if op == "maximum" else torch.minimum
        if y is None:
            lit = float(text)
            return stmt(g, "b", f"{op}({n}, {text})", Val("", x.dtype, shape, scale=max(x.scale, abs(lit))),
                        lambda c: fn(c.v(n), torch.tensor(lit, dtype=c.v(n).dtype)), [op])
        return stmt(g, "b", f"{op}({n}, {text})", Val("", x.dtype, shape, scale=max(x.scale, yscale)),
                    lambda c: fn(c.v(n), fy(c)), [op])
    fn = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}[op]
    kind = {"+": "add", "-": "sub", "*": "mul"}[op]
    scale = x.scale * yscale if op == "*" else x.scale + yscale
    if y is None and g.flag(0.3):  # the number on the left
        return stmt(g, "b", f"{text} {op} {n}", Val("", x.dtype, shape, scale=scale),
                    lambda c: fn(fy(c), c.v(n)), [kind])
    return stmt(g, "b", f"{n} {op} {text}", Val("", x.dtype, shape, scale=scale), lambda c: fn(c.v(n), fy(c)), [kind])


COMPARE = {">": torch.gt, "<": torch.lt, ">=": torch.ge, "<=": torch.le, "==": torch.eq, "!=": torch.ne}


def select(g: Gen) -> Val | None:
    """`where(x > y, a, b)`, or a comparison cast to a float mask."""
    x = g.pick(floats)
    if x is None:
        return None
    op = g.choice([">", "<", ">=", "<=", "!=", "=="])
    text, y, fy = partner(g, x)
    cond_shape = x.shape if y is None else broadcast(x.shape, y.shape)
    n = x.name
    cmp = COMPARE[op]
    if op == "==":  # equality of random floats is almost never true: compare a rounded sign instead
        cond_text, cond = f"sign({n}) == 1.0", lambda c: torch.sign(c.v(n)) == 1.0
        cond_shape = x.shape
    else:
        cond_text, cond = f"{n} {op} {text}", lambda c: cmp(c.v(n), torch.as_tensor(fy(c), dtype=c.v(n).dtype))
    if g.flag(0.3):
        return stmt(g, "w", f"cast({cond_text}, {x.dtype})", Val("", x.dtype, cond_shape, scale=1),
                    lambda c: cond(c).to(c.torch_dtype(x.dtype)), ["compare", "cast"])
    a = g.pick(lambda v: v.dtype == x.dtype and broadcast(cond_shape, v.shape) is not None, recent=False)
    b = g.pick(lambda v: v.dtype == x.dtype and a is not None and broadcast(broadcast(cond_shape, a.shape),
                                                                             v.shape) is not None, recent=False)
    if a is None or b is None:
        return None
    shape = broadcast(broadcast(cond_shape, a.shape), b.shape)
    return stmt(g, "w", f"where({cond_text}, {a.name}, {b.name})", Val("", x.dtype, shape, scale=max(a.scale, b.scale)),
                lambda c: torch.where(cond(c), c.v(a.name), c.v(b.name)), ["compare", "where"])


def cast(g: Gen) -> Val | None:
    x = g.pick(lambda v: v.dtype != "bool")
    if x is None:
        return None
    if x.is_float:
        to = "f64" if x.dtype == "f32" else "f32"
        return stmt(g, "c", f"cast({x.name}, {to})", Val("", to, x.shape, x.scale, x.positive),
                    lambda c: c.v(x.name).to(c.torch_dtype(to)), ["cast"])
    return stmt(g, "c", f"cast({x.name}, f32)", Val("", "f32", x.shape, scale=float(x.ids or 10)),
                lambda c: c.v(x.name).to(c.torch_dtype("f32")), ["cast"])


def mask(g: Gen) -> Val | None:
    """A bool input used as a condition: `where(mask, x, y)`."""
    m = g.pick(lambda v: v.dtype == "bool", recent=False)
    x = g.pick(lambda v: v.is_float and m is not None and broadcast(m.shape, v.shape) is not None)
    if m is None or x is None:
        return None
    shape = broadcast(m.shape, x.shape)
    if g.flag():
        return stmt(g, "w", f"where({m.name}, {x.name}, 0.0)", Val("", x.dtype, shape, x.scale),
                    lambda c: torch.where(c.v(m.name), c.v(x.name), torch.zeros((), dtype=c.v(x.name).dtype)),
                    ["where", "dtype:bool"])
    return stmt(g, "w", f"where({m.name}, {x.name}, -{x.name})", Val("", x.dtype, shape, x.scale),
                lambda c: torch.where(c.v(m.name), c.v(x.name), -c.v(x.name)), ["where", "neg", "dtype:bool"])


# ---- reductions and shapes ------------------------------------------------------------------------------------


def reduce(g: Gen) -> Val | None:
    x = g.pick(lambda v: v.is_float and v.rank >= 1)
    if x is None:
        return None
    op = g.choice(["sum", "mean", "max"])
    form = g.choice(["one", "list", "all", "negative"])
    if form == "all":
        axes = tuple(range(x.rank))
        text_axis = ""
    elif form == "list":
        axes = tuple(sorted(g.draw(st.sets(st.integers(0, x.rank - 1), min_size=1, max_size=x.rank))))
        text_axis = f", axis = [{', '.join(map(str, axes))}]"
    elif form == "negative":
        axes = (x.rank - 1,)
        text_axis = ", axis = -1"
    else:
        axes = (g.draw(st.integers(0, x.rank - 1)),)
        text_axis = f", axis = {axes[0]}"
    keep = form != "all" and g.flag(0.3)
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if keep else tuple(
        d for i, d in enumerate(x.shape) if i not in axes)
    counted = math.prod(4 if not isinstance(x.shape[i], int) else x.shape[i] for i in axes)
    scale = x.scale * counted if op == "sum" else x.scale
    text = f"{op}({x.name}{text_axis}{', keepdims = true' if keep else ''})"

    def compute(c: Ctx):
        t = c.v(x.name)
        if op == "max":
            return torch.amax(t, dim=axes, keepdim=keep) if axes else t
        fn = torch.sum if op == "sum" else torch.mean
        return fn(t, dim=axes, keepdim=keep)

    return stmt(g, "r", text, Val("", x.dtype, shape, scale=scale), compute, [op])


def reshape(g: Gen) -> Val | None:
    # static but for a leading batch: a reduction over the batch can leave a symbolic length first ([T, D])
    x = g.pick(lambda v: v.rank >= 1 and all(isinstance(d, int) for d in v.shape[1:]) and (
        v.shape[0] == "N" if v.batched else isinstance(v.shape[0], int)))
    if x is None:
        return None
    head, rest = (x.shape[:1], x.shape[1:]) if x.batched else ((), x.shape)
    total = math.prod(rest)
    options = []
    for a in range(1, total + 1):
        if total % a == 0:
            options.append((a, total // a))
    kind = g.choice(["flat", "split", "flatten", "minus"])
    if kind == "flatten" and x.rank >= 2:
        start = g.draw(st.integers(1, x.rank - 1)) if x.batched else g.draw(st.integers(0, x.rank - 1))
        shape = (*x.shape[:start], math.prod(x.shape[start:]))
        text = f"flatten({x.name}{'' if start == 1 else f', start = {start}'})"
        kinds = ["flatten"]
    elif kind == "split":
        a, b = g.choice(options)
        shape = (*head, a, b)
        text = f"reshape({x.name}, {shape_text(shape)})"
        kinds = ["reshape"]
    elif kind == "minus" and x.batched:
        a, b = g.choice(options)
        shape = (*head, a, b)
        text = f"reshape({x.name}, [N, {a}, -1])"
        kinds = ["reshape"]
    else:
        shape = (*head, total)
        text = f"reshape({x.name}, {shape_text(shape)})"
        kinds = ["reshape"]
    dims = tuple(-1 if d == "N" else d for d in shape)
    return stmt(g, "s", text, Val("", x.dtype, shape, x.scale, x.positive, x.ids),
                lambda c: c.v(x.name).reshape(dims), kinds)


def transpose(g: Gen) -> Val | None:
    """Permutations of every kind, with a preference for square and equal dims, where a transpose keeps the type."""
    x = g.pick(lambda v: v.rank >= 2)
    if x is None:
        return None
    perm = tuple(g.draw(st.permutations(range(x.rank))))
    if g.flag(0.3):
        text = f"transpose({x.name})"
        perm = (*range(x.rank - 2), x.rank - 1, x.rank - 2)
    else:
        text = f"transpose({x.name}, [{', '.join(map(str, perm))}])"
    shape = tuple(x.shape[p] for p in perm)
    return stmt(g, "t", text, Val("", x.dtype, shape, x.scale, x.positive, x.ids),
                lambda c: c.v(x.name).permute(perm), ["transpose"])


def concat(g: Gen) -> Val | None:
    x = g.pick(lambda v: v.rank >= 1 and any(isinstance(d, int) for d in v.shape) and v.is_float)
    if x is None:
        return None
    axis = g.choice([i for i, d in enumerate(x.shape) if isinstance(d, int)])
    others = [v for v in g.env if v.dtype == x.dtype and v.rank == x.rank and isinstance(v.shape[axis], int)
              and all(a == b for i, (a, b) in enumerate(zip(v.shape, x.shape, strict=True)) if i != axis)]
    y = g.choice(others)
    shape = tuple(d + y.shape[axis] if i == axis else d for i, d in enumerate(x.shape))
    text_axis = axis - x.rank if g.flag(0.3) else axis
    return stmt(g, "k", f"concat([{x.name}, {y.name}], axis = {text_axis})",
                Val("", x.dtype, shape, max(x.scale, y.scale)),
                lambda c: torch.cat([c.v(x.name), c.v(y.name)], dim=axis), ["concat"])


def matmul(g: Gen) -> Val | None:
    x = g.pick(_matrix)  # `@` takes rank 2 or more (dense takes a vector too)
    if x is None:
        return None
    k = x.shape[-1]
    form = g.choice(["param", "tied", "value", "function"])
    if form == "tied":  # x @ transpose(W) with an earlier [m, k] weight
        w = g.pick(lambda v: v.dtype == x.dtype and v.rank == 2 and v.shape[1] == k and not v.batched, recent=False)
        if w is not None:
            shape = (*x.shape[:-1], w.shape[0])
            return stmt(g, "m", f"{x.name} @ transpose({w.name})", Val("", x.dtype, shape, x.scale * w.scale * k),
                        lambda c: torch.matmul(c.v(x.name), c.v(w.name).T), ["matmul", "transpose"])
    if form == "value" and x.rank >= 2:  # a batched product of two computed values
        y = g.pick(lambda v: v.dtype == x.dtype and v.rank == x.rank and v.shape[-2] == k
                   and isinstance(v.shape[-1], int) and broadcast(x.shape[:-2], v.shape[:-2]) is not None, recent=False)
        if y is not None:
            shape = (*broadcast(x.shape[:-2], y.shape[:-2]), x.shape[-2], y.shape[-1])
            return stmt(g, "m", f"{x.name} @ {y.name}", Val("", x.dtype, shape, x.scale * y.scale * k),
                        lambda c: torch.matmul(c.v(x.name), c.v(y.name)), ["matmul"])
    m = g.size()
    w = g.param((k, m), x.dtype)
    shape = (*x.shape[:-1], m)
    text = f"matmul({x.name}, {w.name})" if form == "function" else f"{x.name} @ {w.name}"
    return stmt(g, "m", text, Val("", x.dtype, shape, x.scale * 1.5 * k),
                lambda c: torch.matmul(c.v(x.name), c.v(w.name)), ["matmul"])


def one_hot(g: Gen) -> Val | None:
    ids = g.pick(lambda v: v.ids is not None)
    if ids is None:
        return None
    depth = ids.ids + g.draw(st.integers(0, 2))
    return stmt(g, "o", f"one_hot({ids.name}, {depth})", Val("", "f32", (*ids.shape, depth), 1),
                lambda c: F.one_hot(c.v(ids.name).long(), depth).to(c.torch_dtype("f32")), ["one_hot"])


# ---- layers -------------------------------------------------------------------------------------------------------


def dense(g: Gen) -> Val | None:
    x = g.pick(lambda v: v.is_float and v.rank >= 1 and isinstance(v.shape[-1], int))
    if x is None:
        return None
    units = g.size()
    bias = g.flag(0.8)
    args = [x.name, str(units)]
    if not bias:
        args.append("bias = false")
    if g.flag(0.4):
        args.append(f"init = {g.choice(INITS)}")
    if bias and g.flag(0.2):
        args.append(f"bias_init = {g.choice(['ones', 'constant(0.1)', 'normal(std = 0.1)'])}")
    params = [Param("W", decay=True)] + ([Param("b", decay=False)] if bias else [])

    def compute(c: Ctx):
        y = torch.matmul(c.v(x.name), c.p("W"))
        return y + c.p("b") if bias else y

    return stmt(g, "d", f"dense({', '.join(args)})", Val("", x.dtype, (*x.shape[:-1], units), 2.0), compute,
                ["dense"], params)


def two_dense(g: Gen) -> Val | None:
    """Two parameter-owning calls in one statement: `h.dense.W` and `h.dense_1.W`."""
    x = g.pick(lambda v: v.is_float and v.rank >= 1 and isinstance(v.shape[-1], int))
    y = g.pick(lambda v: x is not None and v.dtype == x.dtype and v.rank >= 1 and isinstance(v.shape[-1], int)
               and broadcast(x.shape[:-1], v.shape[:-1]) is not None, recent=False)
    if x is None or y is None:
        return None
    units = g.size()
    shape = (*broadcast(x.shape[:-1], y.shape[:-1]), units)
    params = [Param("dense.W", True), Param("dense.b", False), Param("dense_1.W", True), Param("dense_1.b", False)]
    return stmt(g, "d", f"dense({x.name}, {units}) + dense({y.name}, {units})", Val("", x.dtype, shape, 3.0),
                lambda c: (c.v(x.name) @ c.p("dense.W") + c.p("dense.b")) + (
                    c.v(y.name) @ c.p("dense_1.W") + c.p("dense_1.b")), ["dense", "dense", "add"], params)


def softmax(g: Gen) -> Val | None:
    x = g.pick(lambda v: v.is_float and v.rank >= 1)
    if x is None:
        return None
    axis = g.draw(st.integers(-x.rank, x.rank - 1))
    log = g.flag()
    op = "log_softmax" if log else "softmax"
    text = f"{op}({x.name})" if axis == -1 and g.flag() else f"{op}({x.name}, axis = {axis})"
    fn = torch.log_softmax if log else torch.softmax
    return stmt(g, "a", text, Val("", x.dtype, x.shape, scale=x.scale * 2 + 2 if log else 1, positive=not log),
                lambda c: fn(c.v(x.name), dim=axis), [op])


def image(v: Val) -> bool:
    return v.is_float and v.rank == 4 and v.shape[0] == "N" and all(isinstance(d, int) for d in v.shape[1:])


def _window(g: Gen, x: Val, dilated: bool) -> tuple | None:
    h, w = x.shape[2], x.shape[3]
    kernel = (g.draw(st.integers(1, 3)), g.draw(st.integers(1, 3)))
    stride = (g.draw(st.integers(1, 2)), g.draw(st.integers(1, 2)))
    dilation = (g.draw(st.integers(1, 2)), g.draw(st.integers(1, 2))) if dilated else (1, 1)
    mode = g.choice(["valid", "same", "int"])
    if mode == "same":
        (top, bottom), (left, right) = (nn.same_padding(s, k, st_, d) for s, k, st_, d in zip(
            (h, w), kernel, stride, dilation, strict=True))
        pads, ptext = (top, left, bottom, right), '"same"'
    elif mode == "int":
        p = g.draw(st.integers(0, 1))
        pads, ptext = (p, p, p, p), str(p)
    else:
        pads, ptext = (0, 0, 0, 0), '"valid"'
    oh = (h + pads[0] + pads[2] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    ow = (w + pads[1] + pads[3] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    if oh < 1 or ow < 1:
        return None
    return kernel, stride, dilation, pads, ptext, (oh, ow)


def _pair(p: tuple[int, int]) -> str:
    return str(p[0]) if p[0] == p[1] else f"[{p[0]}, {p[1]}]"


def _fitting_window(g: Gen, x: Val, dilated: bool) -> tuple | None:
    for _ in range(4):  # small images: draw again when a window does not fit
        window = _window(g, x, dilated)
        if window is not None:
            return window
    return None


def conv2d(g: Gen) -> Val | None:
    x = g.pick(image)
    if x is None:
        return None
    window = _fitting_window(g, x, dilated=True)
    if window is None:
        return None
    kernel, stride, dilation, pads, ptext, (oh, ow) = window
    filters = g.size()
    bias = g.flag(0.8)
    args = [x.name, str(filters), _pair(kernel)]
    if stride != (1, 1) or g.flag(0.2):
        args.append(f"stride = {_pair(stride)}")
    if ptext != '"valid"' or g.flag(0.2):
        args.append(f"padding = {ptext}")
    if dilation != (1, 1):
        args.append(f"dilation = {_pair(dilation)}")
    if not bias:
        args.append("bias = false")
    params = [Param("W", True)] + ([Param("b", False)] if bias else [])
    return stmt(g, "v", f"conv2d({', '.join(args)})", Val("", x.dtype, ("N", filters, oh, ow), 2.0),
                lambda c: nn.conv2d(c.v(x.name), c.p("W"), c.p("b") if bias else None, stride, pads, dilation),
                ["conv2d"], params)


def pool(g: Gen) -> Val | None:
    x = g.pick(image)
    if x is None:
        return None
    kind = g.choice(["max_pool", "avg_pool", "global_avg_pool"])
    if kind == "global_avg_pool":
        return stmt(g, "q", f"global_avg_pool({x.name})", Val("", x.dtype, x.shape[:2], x.scale),
                    lambda c: c.v(x.name).mean(dim=(2, 3)), [kind])
    window = _fitting_window(g, x, dilated=False)
    if window is None:
        return None
    size, stride, _, pads, ptext, (oh, ow) = window
    if any(p >= k for p, k in zip(pads, size + size, strict=True)):
        return None  # a window could lie entirely in the padding (an error, tested in test_wrong_results)
    args = [x.name]
    if size != (2, 2) or g.flag(0.5):
        args.append(f"size = {_pair(size)}")
    if stride != size or g.flag(0.3):
        args.append(f"stride = {_pair(stride)}")
    if ptext != '"valid"':
        args.append(f"padding = {ptext}")
    fn = nn.max_pool if kind == "max_pool" else nn.avg_pool
    return stmt(g, "q", f"{kind}({', '.join(args)})", Val("", x.dtype, ("N", x.shape[1], oh, ow), x.scale),
                lambda c: fn(c.v(x.name), size, stride, pads), [kind])


def batch_norm(g: Gen) -> Val | None:
    x = g.pick(lambda v: v.is_float and v.rank >= 2 and v.shape[0] == "N" and isinstance(v.shape[1], int))
    if x is None:
        return None
    momentum = g.choice([0.9, 0.5, 0.0])
    eps = g.choice([1e-5, 1e-3])
    args = [x.name] + ([f"momentum = {momentum}"] if momentum != 0.9 else []) + ([f"eps = {eps}"] if eps != 1e-5
                                                                                else [])
    params = [Param("gamma", False), Param("beta", False), Param("running_mean", False, trainable=False),
              Param("running_var", False, trainable=False, positive=True)]
    return stmt(g, "n", f"batch_norm({', '.join(args)})", Val("", x.dtype, x.shape, 4.0),
                lambda c: nn.batch_norm(c.v(x.name), c.p("gamma"), c.p("beta"), c.p("running_mean"),
                                        c.p("running_var"), momentum, eps, c.training), ["batch_norm"], params)


def layer_norm(g: Gen) -> Val | None:
    x = g.pick(lambda v: v.is_float and v.rank >= 1 and isinstance(v.shape[-1], int) and v.shape[-1] > 1)
    if x is None:
        return None
    eps = g.choice([1e-5, 1e-3])
    text = f"layer_norm({x.name})" if eps == 1e-5 else f"layer_norm({x.name}, eps = {eps})"
    d = x.shape[-1]
    return stmt(g, "n", text, Val("", x.dtype, x.shape, 4.0),
                lambda c: F.layer_norm(c.v(x.name), (d,), c.p("gamma"), c.p("beta"), eps), ["layer_norm"],
                [Param("gamma", False), Param("beta", False)])


def dropout_mask(c: Ctx, shape, rate: float):
    """keep[i] = u[i] >= rate, u the language's numbers for this statement's site."""
    u = nn.uniform(tuple(shape), c.key, c.salts.get(c.stmt, 0))  # no salt: bmc dropped the unused statement
    return torch.from_numpy(np.asarray(u >= rate))  # a 0-d comparison is a NumPy scalar, not an array


def dropout(g: Gen) -> Val | None:
    if g.in_layer:  # a site's salt is found by its statement's line: keep sites at model level
        return None
    x = g.pick(floats)
    if x is None:
        return None
    rate = g.choice([0.25, 0.5])

    def compute(c: Ctx):
        t = c.v(x.name)
        if not c.training:
            return t
        return torch.where(dropout_mask(c, t.shape, rate), t * (1.0 / (1.0 - rate)), torch.zeros((), dtype=t.dtype))

    return stmt(g, "dr", f"dropout({x.name}, {rate})", Val("", x.dtype, x.shape, x.scale * 2), compute, ["dropout"],
                random=True)


def embedding(g: Gen) -> Val | None:
    ids = g.pick(lambda v: v.ids is not None)
    if ids is None:
        return None
    vocab = ids.ids + g.draw(st.integers(0, 2))
    dim = g.size()
    init = f", init = {g.choice(INITS)}" if g.flag(0.3) else ""
    return stmt(g, "e", f"embedding({ids.name}, {vocab}, {dim}{init})", Val("", "f32", (*ids.shape, dim), 1.0),
                lambda c: F.embedding(c.v(ids.name).long(), c.p("table")), ["embedding"], [Param("table", True)])


def sequence(v: Val) -> bool:
    return v.is_float and v.rank == 3 and v.shape[0] == "N" and isinstance(v.shape[2], int)


def positions(g: Gen) -> Val | None:
    x = g.pick(sequence)
    if x is None:
        return None
    if not isinstance(x.shape[1], int) or g.flag(0.25):  # sinusoidal needs a static length: most draws have one
        t = x.shape[1]
        max_len = (t if isinstance(t, int) else 4) + g.draw(st.integers(0, 2))
        return stmt(g, "l", f"learned_positions({x.name}, {max_len})", Val("", x.dtype, x.shape, x.scale + 1),
                    lambda c: c.v(x.name) + c.p("table")[: c.v(x.name).shape[1]], ["learned_positions"],
                    [Param("table", False)])
    t, d = x.shape[1], x.shape[2]
    table = nn.sinusoid_table(t, d)
    return stmt(g, "l", f"sinusoidal_positions({x.name})", Val("", x.dtype, x.shape, x.scale + 1),
                lambda c: c.v(x.name) + torch.from_numpy(table).to(c.v(x.name).dtype), ["sinusoidal_positions"],
                [Param("sinusoid", False, trainable=False)])


def recurrent(g: Gen) -> Val | None:
    x = g.pick(sequence)
    if x is None:
        return None
    kind = g.choice(["rnn", "lstm", "gru"])
    hidden = g.size()
    sequences, bidirectional = g.flag(), g.flag(0.3)
    args = [x.name, str(hidden)]
    if sequences:
        args.append("return_sequences = true")
    if bidirectional:
        args.append("bidirectional = true")
    if g.flag(0.2):
        args.append(f"init = {g.choice(INITS)}")
    if g.flag(0.2):
        args.append(f"recurrent_init = {g.choice(['orthogonal', 'glorot_uniform', 'normal(std = 0.3)'])}")
    directions = [("", False)] if not bidirectional else [("forward.", False), ("backward.", True)]
    params = [Param(f"{d}{w}", w != "B") for d, _ in directions for w in ("W", "R", "B")]
    width = hidden * len(directions)
    shape = (*x.shape[:2], width) if sequences else ("N", width)

    def compute(c: Ctx):
        outs = []
        for d, reverse in directions:
            ys, last = nn.recurrent(kind, c.v(x.name), c.p(f"{d}W"), c.p(f"{d}R"), c.p(f"{d}B"), hidden, reverse)
            outs.append(ys if sequences else last)
        return torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]

    return stmt(g, "h", f"{kind}({', '.join(args)})", Val("", x.dtype, shape, 1.0), compute, [kind], params)


def attention(g: Gen) -> Val | None:
    x = g.pick(sequence)
    if x is None:
        return None
    d = x.shape[2]
    heads = g.choice([h for h in (1, 2, 3, 4) if d % h == 0])
    causal = g.flag()
    rate = g.choice([0.0, 0.0, 0.25]) if not g.in_layer else 0.0
    args = [x.name, str(heads)] + (["causal = true"] if causal else []) + ([f"dropout = {rate}"] if rate else [])
    params = [Param(f"{p}.{w}", w == "W") for p in ("q", "k", "v", "out") for w in ("W", "b")]

    def compute(c: Ctx):
        p = {k.suffix: c.p(k.suffix) for k in params}
        drop = (lambda shape: dropout_mask(c, shape, rate), 1.0 / (1.0 - rate)) if c.training and rate else None
        return nn.attention(c.v(x.name), p, heads, causal, drop)

    return stmt(g, "at", f"attention({', '.join(args)})", Val("", x.dtype, x.shape, 2.0), compute, ["attention"],
                params, random=bool(rate))


# ---- user layers and repeat -------------------------------------------------------------------------------------


def user_layer(g: Gen, repeated: bool = False) -> Val | None:
    """A layer defined for this call: a shape pattern binds its dims, its body owns explicit parameters and a dense
    call; `repeat` applies a shape-preserving one several times, each copy with its own parameters."""
    if g.in_layer:
        return None
    x = g.pick(lambda v: v.dtype == "f32" and v.rank >= 1 and isinstance(v.shape[-1], int) and v.batched)
    if x is None:
        return None
    d = x.shape[-1]
    name = g.name("blk")
    ellipsis = g.flag() or x.rank != 2
    pattern = "[..., d]" if ellipsis else "[B, d]"
    k = g.size()
    width = d if repeated else k
    body_gen = Gen(g.draw, counter=g.counter, in_layer=True)
    arg = Val("x", "f32", x.shape, x.scale)
    body_gen.env = [arg]
    w = body_gen.param((d, width))
    w_stmt = body_gen.stmts[-1]
    w_stmt.decl = w_stmt.decl.replace(f"[{d}, {width}]", "[d, d]" if repeated else "[d, k]")
    h = stmt(body_gen, "z", f"tanh(x @ {w.name})", Val("", "f32", (*x.shape[:-1], width), 1.0),
             lambda c: torch.tanh(c.v("x") @ c.v(w.name)), ["matmul", "tanh", "user_layer"])
    for _ in range(g.draw(st.integers(0, 2))):
        entry = g.choice([unary, binary, layer_norm, dense, softmax])
        before = len(body_gen.stmts)
        entry(body_gen)
        if len(body_gen.stmts) > before:
            h = body_gen.stmts[-1].out
    if h.shape != (*x.shape[:-1], width) or not h.is_float or h.dtype != "f32":
        h = body_gen.stmts[1].out  # the projection: every later statement may have changed the shape
    if repeated:
        ret = f"x + dense({h.name}, d)"
        ret_params = [Param("W", True), Param("b", False)]  # the return's dense, named after the call
    else:
        ret, ret_params = h.name, []

    def ret_compute(c: Ctx, h=h.name):
        if repeated:
            return c.v("x") + (c.v(h) @ c.params[c.prefix + "W"] + c.params[c.prefix + "b"])
        return c.v(h)

    args = [f"x: f32{pattern}"] + ([] if repeated else ["k: int"])
    layer = Layer(name, args, ["x"], body_gen.stmts, ret, ret_compute)
    g.layers.append(layer)
    params = layer.params() + ret_params
    out_shape = x.shape if repeated else (*x.shape[:-1], k)
    if not repeated:
        return stmt(g, "y", f"{name}({x.name}, {k})", Val("", "f32", out_shape, 1.0),
                    lambda c: layer.compute(c, [c.v(x.name)]), ["user_layer"], params)
    copies = g.draw(st.integers(1, 3))

    def compute(c: Ctx):
        t = c.v(x.name)
        for i in range(copies):
            t = layer.compute(c.child(f"{c.prefix}{i}.", c.values), [t])
        return t

    all_params = [Param(f"{i}.{p.suffix}", p.decay, p.trainable, p.positive) for i in range(copies) for p in params]
    return stmt(g, "y", f"repeat({copies}, {name}({x.name}))", Val("", "f32", out_shape, x.scale + copies * 2),
                compute, ["repeat", "user_layer"], all_params)


def repeat(g: Gen) -> Val | None:
    return user_layer(g, repeated=True)


def _any(pred: Callable[[Val], bool]) -> Callable[[Gen], bool]:
    return lambda g: any(pred(v) for v in g.env)


def _ids(v: Val) -> bool:
    return v.ids is not None


def _matrix(v: Val) -> bool:
    return v.is_float and v.rank >= 2 and isinstance(v.shape[-1], int)


def _last_static(v: Val) -> bool:
    return v.is_float and v.rank >= 1 and isinstance(v.shape[-1], int)


# name -> (entry, weight, whether the values so far can feed it); the weights even out how often each op is drawn
ENTRIES: dict[str, tuple[Callable[[Gen], Val | None], float, Callable[[Gen], bool]]] = {
    "unary": (unary, 5, _any(floats)), "binary": (binary, 5, _any(floats)), "select": (select, 1.5, _any(floats)),
    "cast": (cast, 1, _any(lambda v: v.dtype != "bool")), "mask": (mask, 1.5, _any(lambda v: v.dtype == "bool")),
    "reduce": (reduce, 2, _any(floats)), "reshape": (reshape, 1.5, _any(lambda v: v.rank >= 1)),
    "transpose": (transpose, 2, _any(lambda v: v.rank >= 2)), "concat": (concat, 1, _any(floats)),
    "matmul": (matmul, 1.5, _any(_matrix)), "one_hot": (one_hot, 1, _any(_ids)),
    "dense": (dense, 1.5, _any(_last_static)), "two_dense": (two_dense, 0.5, _any(_last_static)),
    "softmax": (softmax, 1.5, _any(floats)), "conv2d": (conv2d, 5, _any(image)), "pool": (pool, 6, _any(image)),
    "batch_norm": (batch_norm, 1, _any(floats)), "layer_norm": (layer_norm, 1, _any(_last_static)),
    "dropout": (dropout, 1, _any(floats)), "embedding": (embedding, 1.5, _any(_ids)),
    "positions": (positions, 2.5, _any(sequence)), "recurrent": (recurrent, 5, _any(sequence)),
    "attention": (attention, 2, _any(sequence)), "user_layer": (user_layer, 1, _any(_last_static)),
    "repeat": (repeat, 1, _any(_last_static)),
}


def draw_entry(g: Gen) -> Val | None:
    """One statement from an entry the values so far can feed, by weight; None if the draws did not fit."""
    names = [n for n, (_, _, fits) in sorted(ENTRIES.items()) if fits(g)]
    if not names:
        return None
    weights = [round(2 * ENTRIES[n][1]) for n in names]
    u = g.draw(st.integers(0, sum(weights) - 1))
    for name, w in zip(names, weights, strict=True):
        if u < w:
            return ENTRIES[name][0](g)
        u -= w
    return ENTRIES[names[-1]][0](g)
