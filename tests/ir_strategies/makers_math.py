"""Op makers for elementwise math, comparisons, casts and reductions, and the patterns simplify rewrites. A maker emits
a few nodes, or nothing when the pool has no fitting operand or a shape rule refuses."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from bmc import ops
from bmc.ir.types import INT_DTYPES
from bmc.ops.elementwise import COMPARISONS
from tests.ir_strategies.generator import LIMIT, SPECIAL, Generator, is_float, is_number, number_or_any
from tests.ir_strategies.makers_shape import alike_axes, permutation, reshape_target


def unary_float(g: Generator) -> None:
    x = g.pick(is_float)
    if x is None:
        return
    op = g.choice([ops.Exp, ops.Log, ops.Sqrt, ops.Tanh, ops.Sigmoid, ops.Relu, ops.Gelu] if not g.spec.smooth else
                  [ops.Exp, ops.Log, ops.Sqrt, ops.Tanh, ops.Sigmoid, ops.Gelu])
    lo, hi = g.bound[x]
    if op is ops.Exp:
        x = x if hi <= 4 else g.bounded(x, 1.0)
        lo, hi = g.bound[x]
        g.emit(op(), x, bound=(math.exp(max(lo, -700)), math.exp(hi)))
    elif op in (ops.Log, ops.Sqrt):
        x = g.positive(x)
        f = math.log if op is ops.Log else math.sqrt
        g.emit(op(), x, bound=(f(g.bound[x][0]), f(g.bound[x][1])))
    elif op is ops.Tanh:
        g.emit(op(), x, bound=(-1.0, 1.0))
    elif op is ops.Sigmoid:
        g.emit(op(), x, bound=(0.0, 1.0))
    elif op is ops.Relu:
        g.emit(op(), x, bound=(max(lo, 0.0), max(hi, 0.0)))
    else:
        g.emit(op(), x, bound=(-0.2, max(hi, 0.0)))


def unary_number(g: Generator) -> None:
    x = g.pick(number_or_any(g) if not g.spec.smooth else is_float)
    if x is None:
        return
    kinds = [ops.Neg] if g.spec.smooth else [ops.Neg, ops.Abs] if g.spec.continuous else [ops.Neg, ops.Abs, ops.Sign]
    op = g.choice(kinds)
    lo, hi = g.bound[x]
    bound = {ops.Neg: (-hi, -lo), ops.Abs: (0.0, g.mag(x)), ops.Sign: (-1.0, 1.0)}[op]
    g.emit(op(), x, bound=bound)


def binary(g: Generator) -> None:
    x = g.pick(number_or_any(g))
    if x is None:
        return
    ops_ = [ops.Add, ops.Sub, ops.Mul, ops.Div, ops.Pow]
    if not g.spec.smooth:
        ops_ += [ops.Maximum, ops.Minimum]
    op = g.choice(ops_ if x.type.is_float else [o for o in ops_ if o not in (ops.Div, ops.Pow)])
    y = g.partner(x)
    if g.flag():
        x, y = y, x  # constants and broadcasting on either side
    if op is ops.Div:
        if not (y.producer is not None and isinstance(y.producer.op, ops.Const) and y.producer.op.value != 0):
            y = g.positive(y)
    elif op is ops.Pow:
        x = g.positive(g.bounded(x, 10.0))
        y = y if y.producer is not None and isinstance(y.producer.op, ops.Const) else g.bounded(y, 2.0)
    elif op is ops.Mul:
        x, y = g.bounded(x, 30.0), g.bounded(y, 30.0)
    else:
        x, y = g.bounded(x, LIMIT / 2), g.bounded(y, LIMIT / 2)
    if x is None or y is None:
        return
    (xl, xh), (yl, yh) = g.bound[x], g.bound[y]
    if op is ops.Add:
        bound = (xl + yl, xh + yh)
    elif op is ops.Sub:
        bound = (xl - yh, xh - yl)
    elif op is ops.Mul:
        corners = [xl * yl, xl * yh, xh * yl, xh * yh]
        bound = (min(corners), max(corners))
    elif op is ops.Div:
        m = g.mag(x) / min(abs(yl), abs(yh)) if yl * yh > 0 else g.mag(x)
        bound = (-m, m)
    elif op is ops.Pow:
        e = g.mag(y)
        bound = (0.0, max(xh ** e, xl ** -e, 1.0))
    else:
        bound = (min(xl, yl), max(xh, yh))
    g.emit(op(), x, y, bound=bound)


def compare(g: Generator) -> None:
    x = g.pick(number_or_any(g))
    if x is not None:
        g.emit(ops.Compare(g.choice(COMPARISONS)), x, g.partner(x))


def where(g: Generator) -> None:
    x = g.pick(is_number)
    if x is None:
        return
    y = g.partner(x)
    c = None
    if not g.spec.smooth and g.flag():
        c = g.pick(lambda v: v.type.dtype == "bool")
    if c is None and not g.spec.continuous and g.flag():
        c = g.emit(ops.Compare(g.choice(COMPARISONS)), x, g.partner(x), pool=False)
    if c is None:
        c = g.fresh(x.type.with_dtype("bool").with_shape(g.variant(x.type.shape)), role="input")
    if g.flag():
        x, y = y, x
    (xl, xh), (yl, yh) = g.bound[x], g.bound[y]
    g.emit(ops.Where(), c, x, y, bound=(min(xl, yl), max(xh, yh)))


def cast(g: Generator) -> None:
    x = g.pick()
    if x is None:
        return
    targets = [*g.spec.floats, "i64", "i32", "bool", x.type.dtype]
    if g.spec.continuous and x.type.is_float:
        targets = list(g.spec.floats)
    dtype = g.choice(targets)
    lo, hi = g.bound[x]
    if dtype == "bool":
        bound = (0.0, 1.0)
    elif dtype in INT_DTYPES:
        bound = (math.floor(lo), math.ceil(hi))
    else:
        bound = (lo, hi)
    g.emit(ops.Cast(dtype), x, bound=bound)


def reduce_(g: Generator) -> None:
    x = g.pick(number_or_any(g))
    if x is None:
        return
    kinds = [ops.Sum] if not x.type.is_float else [ops.Sum, ops.Mean]
    if not g.spec.smooth:
        kinds.append(ops.Max)
    op = g.choice(kinds)
    r = x.type.rank
    how = g.choice(["all", "some", "none"] if r else ["all", "none"])
    if how == "all":
        axes = None if g.flag() else tuple(range(r))
    elif how == "none":
        axes = ()
    else:
        axes = tuple(a - r if g.flag() else a for a in sorted(g.draw(st.sets(st.integers(0, r - 1), min_size=1))))
    reduced = [x.type.shape[a] for a in range(r) if axes is None or a in {b % r for b in axes}]
    if op is ops.Sum:
        count = g.count_max(tuple(reduced))
        x = g.bounded(x, LIMIT / count)
        if x is None:
            return
        lo, hi = g.bound[x]
        bound = (min(lo * count, lo), max(hi * count, hi))
    else:
        bound = g.bound[x]
    g.emit(op(axes, g.flag()), x, bound=bound)


def pattern(g: Generator) -> None:
    """The shapes of graph that simplify's rules rewrite, and their near misses."""
    x = g.pick(is_number)
    if x is None:
        return
    kind = g.choice(["noop shape", "constant identity", "double neg", "sub neg", "neg mul", "chain"])
    dt = x.type.dtype
    if kind == "noop shape":  # reshape/broadcast_to to the own shape, a transpose whose type is unchanged, a cast
        how = g.choice(["transpose", "reshape", "broadcast", "cast"])
        if how == "transpose":  # the identity, or a swap of two alike axes
            perm = list(range(x.type.rank))
            if alike_axes(x.type) and g.flag():
                i, j = g.choice(alike_axes(x.type))
                perm[i], perm[j] = j, i
            g.emit(ops.Transpose(tuple(perm)), x)
        elif how == "reshape":
            g.emit(ops.Reshape(x.type.shape), x)
        elif how == "broadcast":
            g.emit(ops.BroadcastTo(x.type.shape), x)
        else:
            g.emit(ops.Cast(dt), x)
    elif kind == "constant identity":
        op, c = g.choice([(ops.Add, 0), (ops.Sub, 0), (ops.Mul, 1), (ops.Mul, -1), (ops.Div, 1)])
        if op is ops.Div and not x.type.is_float:
            return
        k = g.const(c, dt)
        lo, hi = g.bound[x]
        args = (x, k) if op is ops.Div or g.flag() else (k, x)
        g.emit(op(), *args, bound=(-max(-lo, hi), max(-lo, hi)))
    elif kind == "double neg":
        lo, hi = g.bound[x]
        g.emit(ops.Neg(), g.emit(ops.Neg(), x, bound=(-hi, -lo)))
    elif kind == "sub neg":
        y = g.bounded(g.partner(x), LIMIT / 2)
        x = g.bounded(x, LIMIT / 2)
        if x is None or y is None:
            return
        m = g.mag(x) + g.mag(y)
        ny = g.emit(ops.Neg(), y, bound=(-g.bound[y][1], -g.bound[y][0]))
        g.emit(g.choice([ops.Sub, ops.Add])(), x, ny, bound=(-m, m))
    elif kind == "neg mul":
        x = g.bounded(x, 30.0)
        if x is None:
            return
        c = g.choice(SPECIAL)
        m = g.mag(x) * abs(c)
        g.emit(ops.Neg(), g.emit(ops.Mul(), x, g.const(c, dt), bound=(-m, m)))
    else:  # reshape(reshape(x)), transpose(transpose(x))
        if g.flag() and x.type.rank >= 1:
            p = ops.Transpose(permutation(g, x.type.rank))
            y = g.emit(p, x)
            g.emit(ops.Transpose(permutation(g, x.type.rank)), y)
        elif (y := g.emit(ops.Reshape(reshape_target(g, x.type.shape)), x)) is not None:
            g.emit(ops.Reshape(reshape_target(g, y.type.shape)), y)
