"""The state of drawing one graph: its inputs and their feeds, the pool of values later ops may read with a bound on
each, the choices (through hypothesis, so failures shrink), and the outputs."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from bmc import ops
from bmc.ir import dims
from bmc.ir.graph import ROLES, Builder, Graph, Value
from bmc.ir.printer import print_graph
from bmc.ir.types import INT_DTYPES, NUMPY_NAMES, Dim, TensorType, TypeError_, broadcast_shapes
from bmc.passes import autodiff

SYMBOLS = ("N", "T")
MAX_SYMBOL = 3  # symbolic dims are 1..3 at run time
STATIC_DIMS = (2, 3, 4, 1, 8)  # shrinking prefers the first
LIMIT = 1e3  # no value of a graph exceeds this magnitude (before a tanh squashes it)
SPECIAL = (0.0, 1.0, -1.0, 2.0, 0.5, -3.0)  # constants that simplify's patterns look for, and a few others
Bound = tuple[float, float]


@dataclass(frozen=True)
class Spec:
    """What a property lets the generator draw."""

    floats: tuple[str, ...] = ("f32", "f64")  # the float dtypes of inputs (the first is the usual one)
    continuous: bool = False  # no comparisons, sign or float->int casts (results rounding can flip)
    smooth: bool = False  # also no kinks and no conditions computed from floats (gradient checks)
    max_steps: int = 10  # op makers run per graph
    recurrent: bool = True  # rnn/lstm/gru (slower: a scan per layer)
    backward: bool = True  # now and then the gradients of a loss on the outputs become outputs too (training graphs)
    makers: tuple[str, ...] | None = None  # the names of the op makers to draw from (None: all that fit the rest)

    def __post_init__(self) -> None:
        if self.smooth:  # gradient checks differentiate the graph themselves (and not every backward op again)
            object.__setattr__(self, "continuous", True)
            object.__setattr__(self, "backward", False)


class GraphCase:
    """A drawn graph, the sizes of its symbolic dims and feeds for its inputs; printed as IR text (hypothesis shows
    the shrunk failing case so)."""

    def __init__(self, graph: Graph, feeds: dict[str, np.ndarray], sizes: dict[str, int]):
        self.graph = graph
        self.feeds = feeds
        self.sizes = sizes

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {v.dtype}{list(v.shape)}" for k, v in self.feeds.items())
        return f"\n{print_graph(self.graph, locations=False)}\nsizes {self.sizes}; feeds {shapes}\n"

    def _repr_pretty_(self, p, cycle) -> None:  # hypothesis's printer
        p.text(repr(self))

    def copy_feeds(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.feeds.items()}


@dataclass
class Generator:
    """One graph being drawn. Op makers (makers_*.py) read operands from `pool` with `pick`, make new inputs with
    `fresh` and emit nodes with `emit`, keeping every value's `bound`."""

    draw: Callable
    spec: Spec
    graph: Graph = field(default_factory=lambda: Graph("random"))
    pool: list[Value] = field(default_factory=list)  # values later ops may read
    bound: dict[Value, Bound] = field(default_factory=dict)  # of an input: the range its feed is drawn from
    sizes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.b = Builder(self.graph)
        self.fdtype = self.spec.floats[0]

    # -- choices --
    def choice(self, seq, label: str = ""):
        return self.draw(st.sampled_from(list(seq)), label=label or None)

    def flag(self) -> bool:
        return self.draw(st.booleans())

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def pick(self, ok: Callable[[Value], bool] = lambda v: True) -> Value | None:
        """A value of the pool satisfying `ok`, preferring recent ones (so ops chain)."""
        candidates = [v for v in self.pool if ok(v)]
        if not candidates:
            return None
        return candidates[-1 - self.integer(0, len(candidates) - 1)]

    # -- shapes --
    def start(self) -> None:
        self.fdtype = self.choice(self.spec.floats, "float dtype")
        symbols = [s for s in SYMBOLS if self.flag()]
        self.sizes = {s: self.integer(1, MAX_SYMBOL) for s in symbols}
        base = self.shape(symbols)
        self.fresh(TensorType(self.fdtype, base))
        for _ in range(self.integer(0, 2)):
            dtype = self.choice([self.fdtype, *self.spec.floats, "i64", "bool"], "dtype")
            self.fresh(TensorType(dtype, self.variant(base)))

    def shape(self, symbols: list[str]) -> tuple[Dim, ...]:
        rank = self.integer(0, 4)
        shape: list[Dim] = [self.choice([*STATIC_DIMS, *symbols]) for _ in range(rank)]
        if rank >= 2 and self.integer(0, 3):  # square: [N, 8, 8], [4, 4]
            shape[-1] = shape[-2] = self.choice([*STATIC_DIMS, *symbols])
        if symbols and rank >= 1 and self.flag():  # a batch axis first, as models have it
            shape[0] = symbols[0]
        return tuple(shape)

    def variant(self, shape: tuple[Dim, ...]) -> tuple[Dim, ...]:
        """A shape that broadcasts with `shape`: a suffix of it, some dims set to 1."""
        out = list(shape[self.integer(0, len(shape)):]) if shape and self.flag() else list(shape)
        return tuple(1 if self.flag() and self.flag() else d for d in out)

    def bound_symbols(self) -> list[str]:
        return self.graph.symbols()

    # -- values --
    def fresh(self, t: TensorType, lo: float | None = None, hi: float | None = None, role: str | None = None,
              pool: bool = True) -> Value:
        """A new graph input whose feed is drawn from [lo, hi] (by default [-2, 2] for floats, [-3, 3] for
        integers); its role is drawn unless given (parameters are floats, hyperparameters small)."""
        if role is None:
            roles = [r for r in ROLES if (r != "param" or t.is_float) and (r != "hyper" or t.rank <= 1)
                     and r != "grad"]  # only the second half of a split train step has gradients as inputs
            role = self.choice(roles, "role")
        default = (-2.0, 2.0) if t.is_float else (0, 1) if t.dtype == "bool" else (-3, 3)
        lo, hi = default[0] if lo is None else lo, default[1] if hi is None else hi
        prefix = {"input": "x", "target": "y", "param": "w", "state": "s", "hyper": "h", "grad": "g"}[role]
        v = self.graph.add_input(t, f"{prefix}{len(self.graph.inputs)}", role)
        self.bound[v] = (lo, hi)
        if pool:
            self.pool.append(v)
        return v

    def emit(self, op: ops.Op, *xs: Value, bound: Bound | list[Bound] | None = None, pool: bool = True):
        """op(xs), or None when its shape rule rejects the operands. `bound` (one per output, or one for all)
        defaults to the first operand's."""
        try:
            out = self.b.emit(op, *xs)
        except TypeError_:
            return None
        outs = out if isinstance(out, tuple) else (out,)
        bounds = bound if isinstance(bound, list) else [bound] * len(outs)
        for o, bd in zip(outs, bounds, strict=True):
            if bd is None:
                bd = self.bound[xs[0]] if o.type.dtype != "bool" else (0, 1)
            self.bound[o] = (float(bd[0]), float(bd[1]))
            if pool:
                self.pool.append(o)
        return out

    def const(self, value: float, dtype: str) -> Value:
        value = float(value) if dtype in ("f32", "f64") else int(value)
        return self.emit(ops.Const(value, dtype), bound=(value, value), pool=False)

    def mag(self, v: Value) -> float:
        lo, hi = self.bound[v]
        return max(abs(lo), abs(hi))

    def bounded(self, v: Value, limit: float) -> Value | None:
        """v, or tanh(v) when v may exceed `limit` in magnitude (None for an integer that may)."""
        if self.mag(v) <= limit:
            return v
        if not v.type.is_float:
            return None
        return self.emit(ops.Tanh(), v, bound=(-1.0, 1.0), pool=False)

    def positive(self, v: Value) -> Value:
        """A float value >= 0.5 computed from v: v itself, abs(v) + 1, exp(v) (v bounded), or v * v + 1 (smooth)."""
        lo, hi = self.bound[v]
        if lo >= 0.5:
            return v
        how = "square" if self.spec.smooth else self.choice(["abs", "exp"])
        if how == "exp" and hi <= 3 and lo >= -0.5:
            return self.emit(ops.Exp(), v, bound=(math.exp(lo), math.exp(hi)), pool=False)
        v = self.bounded(v, 30.0)
        m = self.mag(v)
        if how == "square":
            sq = self.emit(ops.Mul(), v, v, bound=(0.0, m * m), pool=False)
            return self.emit(ops.Add(), sq, self.const(1.0, v.type.dtype), bound=(1.0, m * m + 1), pool=False)
        a = self.emit(ops.Abs(), v, bound=(0.0, m), pool=False)
        return self.emit(ops.Add(), a, self.const(1.0, v.type.dtype), bound=(1.0, m + 1), pool=False)

    def partner(self, x: Value, same_shape: bool = False, allow_const: bool = True) -> Value:
        """A second operand for x: a pool value it broadcasts with (same dtype), a scalar constant, or a new input."""
        def fits(v: Value) -> bool:
            if v.type.dtype != x.type.dtype:
                return False
            if same_shape:
                return v.type.shape == x.type.shape
            try:
                broadcast_shapes(x.type.shape, v.type.shape)
            except TypeError_:
                return False
            return True

        how = self.choice(["pool", "const", "fresh"] if allow_const and not same_shape else ["pool", "fresh"])
        if how == "pool" and (v := self.pick(fits)) is not None:
            return v
        if how == "const" or (how == "pool" and allow_const and not same_shape):
            return self.const(self.choice(SPECIAL), x.type.dtype)
        shape = x.type.shape if same_shape else self.variant(x.type.shape)
        return self.fresh(x.type.with_shape(shape))

    def choose_outputs(self) -> None:
        """Most values nothing reads (so most nodes are live), the last one always; now and then a graph input or a
        value twice (two outputs, one value)."""
        read = {v for n in self.graph.nodes for v in n.inputs}
        computed = [v for v in self.pool if v.producer is not None] or self.pool
        outs = [v for v in computed[:-1] if v not in read and self.integer(0, 3)] + [computed[-1]]
        if self.flag() and self.flag():
            outs.append(self.pick())
        self.graph.outputs = {f"out{i}": v for i, v in enumerate(outs)}

    def append_gradients(self) -> None:
        """Outputs `grad_<input>` of loss = sum(out * w) over the float outputs (w new inputs), w.r.t. every float
        input: the backward ops (conv2d_grad_input, max_pool2d_grad, batch_norm_train_grad, scatter_add, ...) in
        graphs as a train step has them. Nothing is added where autodiff declines (an op without a gradient)."""
        outs = [v for v in dict.fromkeys(self.graph.outputs.values()) if v.type.is_float]
        wrt = [v for v in self.graph.inputs if v.type.is_float]
        if not outs or not wrt:
            return
        loss = None
        for out in outs:
            w = self.fresh(out.type, role="input", pool=False)
            term = self.emit(ops.Sum(), self.emit(ops.Mul(), out, w, pool=False), pool=False)
            if term.type.dtype != "f64":  # one loss over f32 and f64 outputs
                term = self.emit(ops.Cast("f64"), term, pool=False)
            loss = term if loss is None else self.emit(ops.Add(), loss, term, pool=False)
        try:
            grads = autodiff.gradients(self.b, loss, wrt)
        except (ops.NotDifferentiable, TypeError_):
            return
        self.graph.outputs.update({f"grad_{x.name}": g for x, g in grads.items()})  # ("/" means an update)

    def finish(self) -> GraphCase:
        seed = self.draw(st.integers(0, 2**32 - 1), label="seed")
        rng = np.random.default_rng(seed)
        feeds = {}
        for v in self.graph.inputs:
            shape = tuple(self.size(d) for d in v.type.shape)
            (lo, hi), np_dtype = self.bound[v], NUMPY_NAMES[v.type.dtype]
            if v.type.dtype == "bool":
                a = rng.random(shape) < 0.5
            elif v.type.dtype in INT_DTYPES:
                a = rng.integers(int(lo), int(hi) + 1, shape)
            else:
                a = rng.uniform(lo, hi, shape)
            feeds[v.name] = np.asarray(a, dtype=np_dtype)
        return GraphCase(self.graph, feeds, dict(self.sizes))

    def size(self, d: Dim) -> int:
        static, syms = dims.factors(d)
        return static * math.prod(self.sizes[s] for s in syms)

    def dim_max(self, d: Dim) -> int:
        static, syms = dims.factors(d)
        return static * MAX_SYMBOL ** len(syms)

    def count_max(self, shape: tuple[Dim, ...]) -> int:
        return math.prod(self.dim_max(d) for d in shape)


# ---- predicates ---------------------------------------------------------------------------------------------------


def is_float(v: Value) -> bool:
    return v.type.is_float


def is_number(v: Value) -> bool:
    return v.type.dtype != "bool"


def number_or_any(g: Generator) -> Callable[[Value], bool]:
    """Numbers, or now and then any value: arithmetic on truth values must be refused by the shape rule (the
    generator then emits nothing), not computed wrongly."""
    return is_number if g.integer(0, 7) else (lambda v: True)


def has_rank(lo: int, pred: Callable[[Value], bool] = is_float) -> Callable[[Value], bool]:
    return lambda v: v.type.rank >= lo and pred(v)


def image(v: Value) -> bool:
    return v.type.rank == 4 and v.type.is_float and all(isinstance(d, int) and d >= 2 for d in v.type.shape[2:])
