"""Op makers that move data: reshape, transpose (square shapes whose type a transpose keeps), broadcast, concat,
slice, pad and split."""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

from bmc import ops
from bmc.ir import dims
from bmc.ir.graph import Value
from bmc.ir.types import Dim, TensorType
from tests.ir_strategies.generator import MAX_SYMBOL, Generator


def reshape(g: Generator) -> None:
    x = g.pick()
    if x is None:
        return
    g.emit(ops.Reshape(reshape_target(g, x.type.shape)), x)


def reshape_target(g: Generator, shape: tuple[Dim, ...]) -> tuple[Dim, ...]:
    s = list(shape)
    how = g.choice(["same", "merge", "split", "unit", "flat"])
    if how == "merge" and len(s) >= 2:
        i = g.integer(0, len(s) - 2)
        s[i:i + 2] = [dims.product(s[i:i + 2])]
    elif how == "split" and any(isinstance(d, int) for d in s):
        i = g.choice([i for i, d in enumerate(s) if isinstance(d, int)])
        d = s[i]
        a = g.choice([f for f in range(1, d + 1) if d % f == 0])
        s[i:i + 1] = [a, d // a]
    elif how == "unit":
        if 1 in s and g.flag():
            s.remove(1)
        else:
            s.insert(g.integer(0, len(s)), 1)
    elif how == "flat":
        s = [dims.product(s)] if s or g.flag() else [1]
    if s and g.flag() and g.flag():
        s[g.integer(0, len(s) - 1)] = -1
    return tuple(s)


def alike_axes(t: TensorType) -> list[tuple[int, int]]:
    """Pairs of axes with the same dim (not 1): swapping them keeps the type and still moves data."""
    return [(i, j) for i in range(t.rank) for j in range(i + 1, t.rank) if t.shape[i] == t.shape[j] != 1]


def transpose(g: Generator) -> None:
    x = g.pick(lambda v: bool(alike_axes(v.type))) if g.integer(0, 3) else None
    if x is not None:  # [N, 8, 8] -> perm [0, 2, 1]: the type is unchanged, the data is not
        i, j = g.choice(alike_axes(x.type))
        perm = list(range(x.type.rank))
        perm[i], perm[j] = j, i
        g.emit(ops.Transpose(tuple(perm)), x)
    elif (x := g.pick(lambda v: v.type.rank >= 1)) is not None:
        g.emit(ops.Transpose(permutation(g, x.type.rank)), x)


def permutation(g: Generator, rank: int) -> tuple[int, ...]:
    how = g.choice(["swap last", "random", "identity"])
    if how == "identity" or rank < 2:
        return tuple(range(rank))
    if how == "swap last":
        return (*range(rank - 2), rank - 1, rank - 2)
    return tuple(g.draw(st.permutations(range(rank))))


def broadcast(g: Generator) -> None:
    x = g.pick()
    if x is None:
        return
    extra = [g.choice([2, 3, *g.bound_symbols()]) for _ in range(g.integer(0, 2))]
    shape = [*extra, *(g.choice([1, 2, 3, *g.bound_symbols()]) if d == 1 and g.flag() else d for d in x.type.shape)]
    g.emit(ops.BroadcastTo(tuple(shape)), x)


def concat(g: Generator) -> None:
    x = g.pick(lambda v: any(isinstance(d, int) for d in v.type.shape))
    if x is None:
        return
    r = x.type.rank
    axis = g.choice([i for i, d in enumerate(x.type.shape) if isinstance(d, int)])

    def fits(v: Value) -> bool:
        return v.type.dtype == x.type.dtype and v.type.rank == r and isinstance(v.type.shape[axis], int) and all(
            a == b for i, (a, b) in enumerate(zip(v.type.shape, x.type.shape, strict=True)) if i != axis)

    others = []
    for _ in range(g.integer(1, 2)):
        if g.flag() and (v := g.pick(fits)) is not None:
            others.append(v)  # x itself among them
        else:
            shape = tuple(g.integer(1, 3) if i == axis else d for i, d in enumerate(x.type.shape))
            others.append(g.fresh(x.type.with_shape(shape)))
    xs = [x, *others]
    lo, hi = min(g.bound[v][0] for v in xs), max(g.bound[v][1] for v in xs)
    g.emit(ops.Concat(axis - r if g.flag() else axis), *xs, bound=(lo, hi))


def slice_(g: Generator) -> None:
    x = g.pick(lambda v: any(isinstance(d, int) for d in v.type.shape))
    if x is None:
        return
    r = x.type.rank
    axis = g.choice([i for i, d in enumerate(x.type.shape) if isinstance(d, int)])
    n = x.type.shape[axis]
    symbols = g.bound_symbols()
    if n >= MAX_SYMBOL and symbols and g.flag() and g.flag():
        start, stop = 0, g.choice(symbols)  # the first T rows of a table
    else:
        start = g.integer(0, n - 1)
        stop = g.integer(start + 1, n)
    g.emit(ops.Slice(axis - r if g.flag() else axis, start, stop), x)


def pad_end(g: Generator) -> None:
    x = g.pick(lambda v: v.type.rank >= 1 and v.type.is_float)
    if x is None:
        return
    axis = g.integer(0, x.type.rank - 1)
    d = x.type.shape[axis]
    if isinstance(d, str) and "*" in d:
        return
    size = (d if isinstance(d, int) else MAX_SYMBOL) + g.integer(0, 2)
    lo, hi = g.bound[x]
    g.emit(ops.PadEnd(axis, size), x, bound=(min(lo, 0.0), max(hi, 0.0)))


def split(g: Generator) -> None:
    x = g.pick(lambda v: any(isinstance(d, int) for d in v.type.shape))
    if x is None:
        return
    axis = g.choice([i for i, d in enumerate(x.type.shape) if isinstance(d, int)])
    n = x.type.shape[axis]
    if n < 2:
        return
    cuts = sorted(g.draw(st.sets(st.integers(1, n - 1), min_size=1, max_size=2)))
    bounds = [0, *cuts, n]
    sizes = tuple(b - a for a, b in itertools.pairwise(bounds))
    g.emit(ops.Split(axis, sizes), x, bound=g.bound[x])
