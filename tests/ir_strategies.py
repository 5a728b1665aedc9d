"""Random well-typed IR graphs, as hypothesis strategies, for property tests of passes and backends.

`graphs(spec)` draws a `GraphCase`: a graph built through `bmc.ir.graph.Builder` (so every type comes from the op's
shape rule; an op whose rule raises `TypeError_` is simply not emitted) and feeds for its inputs. Graphs mix symbolic
dims (N, T) and static ones, f32/f64/i64/bool values, square shapes such as [N, 8, 8] and [4, 4], inputs of every
role, and the op patterns the passes look for (x * 1, -(-x), reshape chains, transposes whose output type equals
their input type, casts to the same dtype, ...).

Values stay in safe ranges: every value carries a bound [lo, hi] (interval arithmetic over the ops), an operand that
would overflow an op is squashed by tanh first, and log, sqrt, division and pow read positive values (abs(x) + 1 or
exp(x), or x * x + 1 where the graph must be smooth). Comparisons then mean something, and NaN appears only where
an op defines it.

`Spec` says what a property may draw: `continuous` leaves out what rounding can flip (comparisons, sign, casts of
floats to integers), for passes and backends that change the arithmetic; `smooth` also leaves out kinks (relu, abs,
max, ...) and conditions computed from parameters, for gradient checks against finite differences.

The module also holds what the properties share: the reference evaluation (`reference`), the scale of each output
(`output_scales`: the largest magnitude and the least precise dtype of the values it is computed from) and
`assert_close`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from bmc.backends.numpy.interpret import run_graph
from bmc.backends.numpy.rules import supports
from hypothesis import strategies as st

from bmc import ops
from bmc.ir import dims
from bmc.ir.graph import ROLES, Builder, Graph, Value
from bmc.ir.printer import print_graph
from bmc.ir.types import INT_DTYPES, NUMPY_NAMES, Dim, TensorType, TypeError_, broadcast_shapes
from bmc.ops.elementwise import COMPARISONS
from bmc.passes import autodiff, decompose

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


# ---- the reference semantics and comparisons -------------------------------------------------------------------


def reference(graph: Graph, feeds: dict) -> dict[str, np.ndarray]:
    """The graph on the reference interpreter (after decomposing the few ops without a NumPy rule)."""
    with np.errstate(all="ignore"):
        return run_graph(decompose.run(graph, supports), feeds)


@dataclass(frozen=True)
class Scale:
    """What an output's rounding errors scale with: the largest finite magnitude among the values it is computed
    from (a difference of large values can be small), and the least precise float dtype among them (an f32 value
    cast to f64 keeps its f32 error)."""

    magnitude: float
    dtype: str  # "float32" or "float64"


def output_scales(graph: Graph, feeds: dict) -> dict[str, Scale]:
    graph = decompose.run(graph, supports)
    values = [*graph.inputs, *(o for n in graph.nodes for o in n.outputs)]
    everything = Graph(graph.name, list(graph.inputs), dict(graph.roles), list(graph.nodes),
                       {str(i): v for i, v in enumerate(values)})
    with np.errstate(all="ignore"):
        env = dict(zip(values, run_graph(everything, feeds).values(), strict=True))

    def own(v: Value) -> Scale:
        a = np.asarray(env[v])
        finite = np.abs(a[np.isfinite(a)]) if a.dtype.kind == "f" else np.abs(a.astype(np.float64))
        return Scale(float(finite.max(initial=0.0)), "float32" if v.type.dtype == "f32" else "float64")

    def widest(scales: list[Scale]) -> Scale:
        return Scale(max(s.magnitude for s in scales),
                     "float32" if any(s.dtype == "float32" for s in scales) else "float64")

    scale = {v: own(v) for v in graph.inputs}
    for n in graph.nodes:
        for o in n.outputs:
            scale[o] = widest([own(o), *(scale[v] for v in n.inputs)])
    return {k: scale[v] for k, v in graph.outputs.items()}


TOLERANCE = {"float32": 3e-5, "float64": 1e-11}


def assert_close(got: dict, want: dict, scales: dict[str, Scale], tol: float | None = None,
                 same_dtype: bool = True) -> float:
    """Every output of `want` in `got`, of the same shape (and dtype), equal where integer or bool, close where
    float (rtol tol, atol tol * magnitude; tol by default the tolerance of the scale's dtype) with NaN and
    infinities in the same places. Returns the largest error seen, relative to max(1, magnitude)."""
    worst = 0.0
    for key, w in want.items():
        w, g = np.asarray(w), np.asarray(got[key])
        assert g.shape == w.shape, f"{key}: shape {g.shape}, expected {w.shape}"
        if same_dtype:
            assert g.dtype == w.dtype, f"{key}: dtype {g.dtype}, expected {w.dtype}"
        if w.dtype.kind != "f":
            np.testing.assert_array_equal(g, w, err_msg=key)
            continue
        t = TOLERANCE[scales[key].dtype] if tol is None else tol
        scale = max(1.0, scales[key].magnitude)
        np.testing.assert_allclose(g, w, rtol=t, atol=t * scale, equal_nan=True, err_msg=key)
        finite = np.isfinite(w) & np.isfinite(g)
        if finite.any():
            worst = max(worst, float(np.abs(g[finite].astype(np.float64) - w[finite]).max()) / scale)
    return worst


# ---- drawing graphs ----------------------------------------------------------------------------------------------


def graphs(spec: Spec = Spec()) -> st.SearchStrategy[GraphCase]:
    return _graph_case(spec)


@st.composite
def _graph_case(draw, spec: Spec) -> GraphCase:
    gen = Generator(draw, spec)
    gen.start()
    for _ in range(draw(st.integers(1, spec.max_steps), label="steps")):
        maker = draw(st.sampled_from(gen.makers), label="op")
        maker(gen)
    gen.choose_outputs()
    if spec.backward and draw(st.integers(0, 3), label="backward") == 3:  # (shrinks to no gradients)
        gen.append_gradients()
    return gen.finish()


@dataclass
class Generator:
    draw: Callable
    spec: Spec
    graph: Graph = field(default_factory=lambda: Graph("random"))
    pool: list[Value] = field(default_factory=list)  # values later ops may read
    bound: dict[Value, Bound] = field(default_factory=dict)  # of an input: the range its feed is drawn from
    sizes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.b = Builder(self.graph)
        self.fdtype = self.spec.floats[0]
        self.makers = [m for m, continuous, smooth in MAKERS
                       if (continuous or not self.spec.continuous) and (smooth or not self.spec.smooth)
                       and (self.spec.recurrent or m is not recurrent)
                       and (self.spec.makers is None or m.__name__ in self.spec.makers)]

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
            roles = [r for r in ROLES if (r != "param" or t.is_float) and (r != "hyper" or t.rank <= 1)]
            role = self.choice(roles, "role")
        default = (-2.0, 2.0) if t.is_float else (0, 1) if t.dtype == "bool" else (-3, 3)
        lo, hi = default[0] if lo is None else lo, default[1] if hi is None else hi
        prefix = {"input": "x", "target": "y", "param": "w", "state": "s", "hyper": "h"}[role]
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


# ---- predicates ----------------------------------------------------------------------------------------------------


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


# ---- op makers: each emits a few nodes, or nothing when the pool has no fitting operand ----------------------------


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


def matmul(g: Generator) -> None:
    a = g.pick(has_rank(2))
    if a is None:
        return
    ta, tb = g.flag(), g.flag()
    k = a.type.shape[-2] if ta else a.type.shape[-1]

    def fits(v: Value) -> bool:
        return v.type.rank >= 2 and v.type.dtype == a.type.dtype and (v.type.shape[-1] if tb else v.type.shape[-2]) == k

    b = g.pick(fits) if g.flag() else None
    if b is None:
        n = g.choice([1, 2, 3, 4, k])
        batch = g.variant(a.type.shape[:-2]) if g.flag() else ()  # batch dims broadcast
        b = g.fresh(a.type.with_shape((*batch, n, k) if tb else (*batch, k, n)), role="param")
    limit = math.sqrt(LIMIT / g.dim_max(k))
    a, b = g.bounded(a, limit), g.bounded(b, limit)
    m = g.dim_max(k) * g.mag(a) * g.mag(b)
    g.emit(ops.MatMul(ta, tb), a, b, bound=(-m, m))


def dense(g: Generator) -> None:
    x = g.pick(has_rank(1))
    if x is None:
        return
    k = x.type.shape[-1]
    w = g.fresh(x.type.with_shape((k, g.integer(1, 4))), role="param")
    bias = g.fresh(x.type.with_shape(w.type.shape[1:]), role="param")
    x = g.bounded(x, math.sqrt(LIMIT / g.dim_max(k)))
    m = g.dim_max(k) * g.mag(x) * g.mag(w) + g.mag(bias)
    g.emit(ops.Dense(), x, w, bias, bound=(-m, m))


def softmax(g: Generator) -> None:
    x = g.pick(has_rank(1))
    if x is None:
        return
    axis = g.integer(-x.type.rank, x.type.rank - 1)
    if g.flag():
        g.emit(ops.Softmax(axis), x, bound=(0.0, 1.0))
    else:
        lo, hi = g.bound[x]
        g.emit(ops.LogSoftmax(axis), x, bound=(-(hi - lo) - math.log(g.dim_max(x.type.shape[axis])), 0.0))


def loss(g: Generator) -> None:
    z = g.pick(has_rank(1))
    if z is None:
        return
    kind = g.choice(["cross entropy", "mse", "binary cross entropy", "cross entropy probabilities"])
    span = g.mag(z) * 2 + 5
    if kind == "cross entropy":
        c = z.type.shape[-1]
        if not isinstance(c, int):
            return
        labels = g.pick(lambda v: v.type.dtype in INT_DTYPES and v.type.shape == z.type.shape[:-1]
                        and g.bound[v][0] >= 0 and g.bound[v][1] <= c - 1)
        if labels is None or g.flag():
            labels = g.fresh(TensorType("i64", z.type.shape[:-1]), 0, c - 1, role="target")
        g.emit(ops.CrossEntropy(), z, labels, bound=(0.0, span + math.log(c)))
    elif kind == "cross entropy probabilities":
        p = g.emit(ops.Softmax(-1), g.partner(z, same_shape=True), bound=(0.0, 1.0), pool=False)
        g.emit(ops.CrossEntropy(), z, p, bound=(0.0, span + math.log(g.dim_max(z.type.shape[-1]))))
    elif kind == "binary cross entropy":
        if g.flag():
            y = g.fresh(z.type, 0, 1, role="target") if g.flag() else g.fresh(z.type.with_dtype("i64"), 0, 1)
        else:
            y = g.emit(ops.Sigmoid(), g.partner(z, same_shape=True), bound=(0.0, 1.0), pool=False)
        g.emit(ops.BinaryCrossEntropy(), z, y, bound=(0.0, span))
    else:
        t = g.partner(z, same_shape=True)
        m = (g.mag(z) + g.mag(t)) ** 2
        g.emit(ops.MeanSquaredError(), z, t, bound=(0.0, m))


def one_hot(g: Generator) -> None:
    labels = g.pick(lambda v: v.type.dtype in INT_DTYPES)
    if labels is None:
        labels = g.fresh(TensorType("i64", g.variant(g.graph.inputs[0].type.shape)), -1, 4)
    g.emit(ops.OneHot(g.integer(1, 4), g.choice(g.spec.floats)), labels, bound=(0.0, 1.0))


def gather(g: Generator) -> None:
    table = g.pick(lambda v: v.type.rank >= 1 and isinstance(v.type.shape[0], int) and v.type.is_float)
    if table is None:
        return
    rows = table.type.shape[0]
    ids = g.pick(lambda v: v.type.dtype in INT_DTYPES and -rows <= g.bound[v][0] and g.bound[v][1] <= rows - 1)
    if ids is None or g.flag():
        shape = g.variant(g.graph.inputs[0].type.shape)[:2]
        ids = g.fresh(TensorType("i64", shape), -rows if g.flag() else 0, rows - 1)
    g.emit(ops.Gather(), table, ids, bound=g.bound[table])


def scatter_add(g: Generator) -> None:
    updates = g.pick(has_rank(1))
    if updates is None:
        return
    rows = g.integer(1, 4)
    lead = updates.type.shape[:g.integer(0, min(2, updates.type.rank))]
    ids = g.fresh(TensorType("i64", lead), 0, rows - 1, role="input")
    m = g.mag(updates) * g.count_max(lead)
    if m > LIMIT:
        return
    g.emit(ops.ScatterAdd(rows), ids, updates, bound=(-m, m))


def size_of(g: Generator) -> None:
    x = g.pick()
    if x is None:
        return
    r = x.type.rank
    axes = None if g.flag() or not r else tuple(sorted(g.draw(st.sets(st.integers(0, r - 1), min_size=1))))
    dtype = g.choice([g.fdtype, "i64"])
    g.emit(ops.SizeOf(axes, dtype), x, bound=(1.0, float(g.count_max(x.type.shape))))


def random_uniform(g: Generator) -> None:
    x = g.pick(is_float)
    if x is None:
        return
    key = g.pick(lambda v: v.type.dtype in INT_DTYPES and v.type.rank == 0 and v.producer is None)
    if key is None:
        key = g.fresh(TensorType("i64", ()), 0, 1000, role="hyper")
    g.emit(ops.RandomUniformLike(g.integer(0, 3)), x, key, bound=(0.0, 1.0))


def gelu_grad(g: Generator) -> None:
    x = g.pick(is_float)
    if x is None:
        return
    grad = g.partner(x, same_shape=True)
    g.emit(ops.GeluGrad(), x, grad, bound=(-1.2 * g.mag(grad), 1.2 * g.mag(grad)))


def causal_mask(g: Generator) -> None:
    x = g.pick(lambda v: v.type.is_float and v.type.rank >= 2 and v.type.shape[-1] == v.type.shape[-2])
    if x is None:  # scores of attention: q k^T
        q = g.pick(has_rank(2))
        if q is None:
            return
        q = g.bounded(q, math.sqrt(LIMIT / g.dim_max(q.type.shape[-1])))
        m = g.dim_max(q.type.shape[-1]) * g.mag(q) ** 2
        x = g.emit(ops.MatMul(False, True), q, q, bound=(-m, m))
    fill = g.choice([0.0, -1.0, -math.inf])
    lo, hi = g.bound[x]
    if fill == -math.inf:  # only through a softmax, as attention reads it
        masked = g.emit(ops.CausalMask(fill), x, pool=False)
        g.emit(ops.Softmax(-1), masked, bound=(0.0, 1.0))
    else:
        g.emit(ops.CausalMask(fill), x, bound=(min(lo, fill), max(hi, fill)))


def layer_norm(g: Generator) -> None:
    x = g.pick(has_rank(1))
    if x is None:
        return
    t = x.type.with_shape(x.type.shape[-1:])
    gamma, beta = g.fresh(t, role="param"), g.fresh(t, role="param")
    m = math.sqrt(g.dim_max(t.shape[0])) * g.mag(gamma) + g.mag(beta)
    g.emit(ops.LayerNorm(g.choice([1e-5, 1e-3])), x, gamma, beta, bound=(-m, m))


def batch_norm(g: Generator) -> None:
    x = g.pick(has_rank(2))
    if x is None:
        return
    batch_norm_of(g, x)


def batch_norm_of(g: Generator, x: Value) -> None:
    t = x.type.with_shape(x.type.shape[1:2])
    eps = g.choice([1e-5, 1e-3])
    if g.flag():  # running statistics (inference)
        scale, bias, mean = (g.fresh(t, role=g.choice(["param", "state"])) for _ in range(3))
        var = g.fresh(t, 0.5, 2.0, role="state")
        m = (g.mag(x) + g.mag(mean)) / math.sqrt(0.5) * g.mag(scale) + g.mag(bias)
        g.emit(ops.BatchNormInference(eps), x, scale, bias, mean, var, bound=(-m, m))
    else:  # the batch's statistics
        gamma, beta = g.fresh(t, role="param"), g.fresh(t, role="param")
        m = math.sqrt(g.count_max(x.type.shape) / g.dim_max(t.shape[0])) * g.mag(gamma) + g.mag(beta)
        mx = g.mag(x)
        g.emit(ops.BatchNormTrain(eps), x, gamma, beta, bound=[(-m, m), (-mx, mx), (0.0, mx * mx)])


def conv(g: Generator) -> None:
    x = g.pick(image)
    if x is None or g.flag():
        shape = (g.choice([*g.bound_symbols(), 2]), g.integer(1, 3), g.integer(2, 6), g.integer(2, 6))
        x = g.fresh(TensorType(g.fdtype, shape), role="input")
    kind = g.choice(["conv", "max pool", "avg pool"] if not g.spec.smooth else ["conv", "avg pool"])
    kernel = (g.integer(1, 3), g.integer(1, 3))
    stride = (g.integer(1, 2), g.integer(1, 2))
    padding = tuple(g.integer(0, k - 1) for k in (*kernel, *kernel))
    if kind == "conv":
        c = x.type.shape[1]
        w = g.fresh(x.type.with_shape((g.integer(1, 3), c, *kernel)), role="param")
        bias = g.fresh(x.type.with_shape(w.type.shape[:1]), role="param")
        x = g.bounded(x, 10.0)
        m = g.dim_max(c) * kernel[0] * kernel[1] * g.mag(x) * g.mag(w) + g.mag(bias)
        y = g.emit(ops.Conv2d(stride, padding, (g.integer(1, 2), g.integer(1, 2))), x, w, bias, bound=(-m, m))
        if y is not None and g.flag():
            batch_norm_of(g, y)  # folded into the convolution by the ONNX export
    elif kind == "max pool":
        g.emit(ops.MaxPool2d(kernel, stride, padding), x)
    else:
        lo, hi = g.bound[x]
        g.emit(ops.AvgPool2d(kernel, stride, padding), x, bound=(min(lo, 0.0), max(hi, 0.0)))


def recurrent(g: Generator) -> None:
    x = g.pick(lambda v: v.type.rank == 3 and v.type.is_float and isinstance(v.type.shape[2], int))
    if x is None or g.flag():  # a batch of sequences [N, T, features]
        symbols = g.bound_symbols()
        x = g.fresh(TensorType(g.fdtype, (g.choice([*symbols, 2]), g.choice([*symbols[::-1], 3]), g.integer(1, 3))),
                    role="input")
    op = g.choice([ops.RNN, ops.LSTM, ops.GRU])
    hidden = g.integer(1, 3)
    layer = op(hidden, g.flag()) if op is not ops.GRU else op(hidden, g.flag(), g.flag())
    gh = layer.gates * hidden
    w = g.fresh(x.type.with_shape((gh, x.type.shape[2])), role="param")
    r = g.fresh(x.type.with_shape((gh, hidden)), role="param")
    bias = g.fresh(x.type.with_shape((2 * gh,)), role="param")
    g.emit(layer, g.bounded(x, 10.0), w, r, bias, bound=(-1.0, 1.0))


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


# (maker, allowed in continuous graphs, allowed in smooth graphs); shrinking prefers the first ones
MAKERS: list[tuple[Callable[[Generator], None], bool, bool]] = [
    (unary_float, True, True),
    (transpose, True, True),
    (binary, True, True),
    (pattern, True, True),
    (unary_number, True, True),
    (reshape, True, True),
    (reduce_, True, True),
    (broadcast, True, True),
    (compare, False, False),
    (where, True, True),
    (cast, True, True),
    (concat, True, True),
    (slice_, True, True),
    (split, True, True),
    (pad_end, True, True),
    (matmul, True, True),
    (dense, True, True),
    (softmax, True, True),
    (loss, True, True),
    (one_hot, True, True),
    (gather, True, True),
    (scatter_add, True, False),  # a gradient op: not differentiable itself
    (size_of, True, True),
    (layer_norm, True, True),
    (batch_norm, True, True),
    (conv, True, True),
    (causal_mask, True, True),
    (gelu_grad, True, True),
    (random_uniform, True, True),
    (recurrent, True, True),
]
