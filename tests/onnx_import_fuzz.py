"""Random ONNX graphs through `bmc import`, against onnxruntime: a search for silent wrong results.

Each graph is made from one integer seed: one or two graph inputs (a dynamic batch dim "N" or static ones), then
3 to 25 nodes drawn from the ops the importer has rules for (elementwise ops with broadcasting, reductions, softmax,
shape ops, Shape -> Gather -> Concat -> Reshape over the batch, dense layers, convolutions, pooling, normalization,
resizing, recurrences, casts), each reading tensors made before it, so the graph is a chain or a DAG. The generator
tracks every tensor's shape (a dim is static or a multiple of N) and a bound on its values, so every graph is valid
ONNX: Log and Sqrt read positive values, Div a divisor away from zero, Exp bounded inputs, and values stay small
enough that f32 rounding cannot look like a wrong result. Each graph ends as one of

    pass            onnxruntime and the imported model (NumPy backend, f32) agree
    refused         the importer refused it with a BmcError; its reason is counted
    compile error   bmc rejected the text the importer wrote (an importer bug)
    traceback       the importer, the compiler or the generated module raised something else (a bug)
    wrong values    the outputs differ (the worst): shrunk to a minimal graph and reported with its seed
    invalid         onnxruntime rejected the graph: a bug of this generator, never of bmc

    python -m tests.onnx_import_fuzz --seed S --graphs N [--show] [--shrink] [--save DIR]

Graph k of a run has the seed S + k, so `--seed S+k --graphs 1 --show` replays one graph."""

from __future__ import annotations

import argparse
import math
import random
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper as h
from onnx import numpy_helper as nh

TP = TensorProto

PASS, REFUSED, COMPILE, TRACEBACK, WRONG, INVALID = (
    "pass", "refused", "compile error", "traceback", "wrong values", "invalid")
CLASSES = (PASS, REFUSED, COMPILE, TRACEBACK, WRONG, INVALID)
RTOL, ATOL = 1e-4, 1e-5
INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)
NP = {TP.FLOAT: np.float32, TP.DOUBLE: np.float64}
BOUND = 8.0  # values above this are squashed before the next op reads them

# ---- dims: an int (static) or ("N", k), k times the batch --------------------------------------------------------


def is_sym(d) -> bool:
    return isinstance(d, tuple)


def dim_value(d, n: int) -> int:
    return d[1] * n if is_sym(d) else d


def product(ds):
    """The product of dims, or None when it would hold N twice."""
    k, syms = 1, 0
    for d in ds:
        if is_sym(d):
            k, syms = k * d[1], syms + 1
        else:
            k *= d
    if syms > 1:
        return None
    return ("N", k) if syms else k


def info_dim(d):
    if is_sym(d):
        return "N" if d[1] == 1 else None
    return d


@dataclass
class Tensor:
    name: str
    shape: tuple
    lo: float
    hi: float
    dtype: int = TP.FLOAT

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def bound(self) -> float:
        return max(abs(self.lo), abs(self.hi))

    def static(self, i: int) -> bool:
        return not is_sym(self.shape[i])


def broadcastable(a: tuple, b: tuple) -> tuple | None:
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None
    return tuple(reversed(out))


def _interval(values) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    return min(values), max(values)


# ---- the generator ------------------------------------------------------------------------------------------------


class Skip(Exception):  # noqa: N818 - an op that does not apply to the tensor drawn: draw another
    pass


@dataclass
class Built:
    seed: int
    model: onnx.ModelProto
    feeds: dict[str, np.ndarray]
    ops: list[str] = field(default_factory=list)


class Generator:
    def __init__(self, seed: int, avoid: frozenset[str] = frozenset()):
        self.seed, self.avoid = seed, avoid  # avoid: features that trigger bugs already reported (AVOIDABLE)
        self.r = random.Random(seed)
        self.np = np.random.default_rng(seed)
        self.opset = self.r.randint(13, 21)
        self.dynamic = self.r.random() < 0.5
        self.n = self.r.choice([1, 2, 3])
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.feeds: dict[str, np.ndarray] = {}
        self.pool: list[Tensor] = []
        self.used: set[str] = set()
        self.count = 0

    # ---- plumbing

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}{self.count}"

    def const(self, value, hint="c") -> str:
        name = self.fresh(hint)
        self.inits.append(nh.from_array(np.asarray(value), name))
        return name

    def i64(self, values, hint="k") -> str:
        return self.const(np.asarray(values, np.int64), hint)

    def weight(self, shape, scale=None, dtype=np.float32) -> np.ndarray:
        fan = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        scale = scale if scale is not None else 1.0 / math.sqrt(max(fan, 1))
        return (self.np.standard_normal(shape) * scale).astype(dtype)

    def node(self, op, inputs, n_out=1, **attrs) -> list[str]:
        outs = [self.fresh(op.lower()[:6] + "_") for _ in range(n_out)]
        self.nodes.append(h.make_node(op, list(inputs), outs, name=f"{op}_{len(self.nodes)}", **attrs))
        self.used.update(i for i in inputs if i)
        return outs

    def add(self, name, shape, lo, hi, dtype=TP.FLOAT) -> Tensor:
        t = Tensor(name, tuple(shape), float(lo), float(hi), dtype)
        self.pool.append(t)
        return t

    def pick(self, pred=lambda t: True) -> Tensor:
        ts = [t for t in self.pool if pred(t)]
        if not ts:
            raise Skip
        if self.r.random() < 0.6:
            return ts[-1] if self.r.random() < 0.5 else self.r.choice(ts[-3:])
        return self.r.choice(ts)

    def f32(self, t: Tensor) -> Tensor:
        """The tensor as float32 (the ops onnxruntime computes only in float32 read it)."""
        if t.dtype == TP.FLOAT:
            return t
        (o,) = self.node("Cast", [t.name], to=TP.FLOAT)
        return self.add(o, t.shape, t.lo, t.hi)

    def small(self, t: Tensor, limit=BOUND) -> Tensor:
        """The tensor with values at most `limit` in magnitude: squashed or scaled when its bound is larger."""
        if t.bound <= limit:
            return t
        how = self.r.choice(["tanh", "scale", "clip"])
        if how == "tanh":
            (o,) = self.node("Tanh", [t.name])
            return self.add(o, t.shape, -1, 1, t.dtype)
        if how == "scale":
            s = limit / t.bound
            (o,) = self.node("Mul", [t.name, self.const(np.asarray(s, NP[t.dtype]))])
            return self.add(o, t.shape, t.lo * s, t.hi * s, t.dtype)
        lo, hi = -limit / 2, limit / 2
        ins = [t.name, self.const(np.asarray(lo, NP[t.dtype])), self.const(np.asarray(hi, NP[t.dtype]))]
        (o,) = self.node("Clip", ins)
        return self.add(o, t.shape, max(t.lo, lo), min(t.hi, hi), t.dtype)

    def positive(self, t: Tensor, at_least=0.05) -> Tensor:
        """The tensor with values at least `at_least`: itself, sigmoid + c, or |x| + c."""
        if t.lo >= at_least:
            return t
        c = max(self.r.choice([0.1, 0.5, 1.0]), at_least)
        if self.r.random() < 0.5 and t.dtype == TP.FLOAT:
            (s,) = self.node("Sigmoid", [t.name])
            lo, hi = 0.0, 1.0
        else:
            (s,) = self.node("Abs", [t.name])
            lo, hi = 0.0, t.bound
        (o,) = self.node("Add", [s, self.const(np.asarray(c, NP[t.dtype]))])
        return self.add(o, t.shape, lo + c, hi + c, t.dtype)

    def partner(self, a: Tensor, positive=False, allow_const=True) -> tuple[str, tuple, float, float]:
        """A second operand for an elementwise op on `a`: another computed tensor it broadcasts with, or a constant.
        Returns (name, shape, lo, hi)."""
        others = [t for t in self.pool if t is not a and t.dtype == a.dtype and broadcastable(a.shape, t.shape)
                  is not None and len(broadcastable(a.shape, t.shape)) <= 5]
        if others and (self.r.random() < 0.5 or not allow_const):
            b = self.r.choice(others)
            b = self.positive(b, 0.5) if positive else self.small(b)
            return b.name, b.shape, b.lo, b.hi
        if not allow_const:
            raise Skip
        # a constant: a suffix of a's shape with some dims 1 (always for symbolic ones), maybe an extra leading 1
        k = self.r.randint(0, a.rank)
        shape = [1 if is_sym(d) or self.r.random() < 0.3 else d for d in a.shape[a.rank - k:]]
        if self.r.random() < 0.1 and a.rank < 4:
            shape = [1, *shape]
        if "size1" in self.avoid and int(np.prod(shape)) == 1:
            shape = []
        v = self.np.uniform(-2, 2, shape)
        if positive:
            v = np.sign(v + 1e-9) * (0.5 + np.abs(v) * 0.75) if self.r.random() < 0.5 else 0.5 + np.abs(v)
        v = v.astype(NP[a.dtype])
        lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
        return self.const(v), tuple(shape), lo, hi

    # ---- graph inputs

    def graph_input(self) -> Tensor:
        kind = self.r.choice(["flat", "flat", "image", "sequence"])
        if kind == "flat":
            rank = self.r.randint(1, 4)
            shape = [self.r.randint(1, 6) for _ in range(rank)]
        elif kind == "image":
            shape = [self.n, self.r.randint(1, 4), self.r.randint(3, 8), self.r.randint(3, 8)]
        else:
            shape = [self.n, self.r.randint(1, 5), self.r.randint(1, 6)]
        batch = self.dynamic and (len(shape) >= 2 or self.r.random() < 0.3)
        if batch:
            shape[0] = self.n
        name = f"x{len(self.inputs)}"
        dims = [("N", 1) if batch and i == 0 else d for i, d in enumerate(shape)]
        self.inputs.append(h.make_tensor_value_info(name, TP.FLOAT, ["N" if is_sym(d) else d for d in dims]))
        self.feeds[name] = self.np.uniform(-2, 2, shape).astype(np.float32)
        return self.add(name, dims, -2, 2)

    # ---- one graph

    def build(self) -> Built:
        for _ in range(1 if self.r.random() < 0.6 else 2):
            self.graph_input()
        target = self.r.randint(3, 25)
        ops = list(OPS)
        weights = [OPS[o][1] for o in ops]
        names: list[str] = []
        tries = 0
        while len(self.nodes) < target and tries < 400:
            tries += 1
            op = self.r.choices(ops, weights)[0]
            mark = (len(self.nodes), len(self.inits), len(self.pool), set(self.used), self.count)
            try:
                OPS[op][0](self)
                names.append(op)
            except Skip:
                n, i, p, u, c = mark
                del self.nodes[n:], self.inits[i:], self.pool[p:]
                self.used, self.count = u, c
        outs = self.outputs()
        graph = h.make_graph(self.nodes, f"fuzz{self.seed}", self.inputs, outs, self.inits)
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", self.opset)], ir_version=8)
        return Built(self.seed, model, self.feeds, names)

    def outputs(self) -> list[onnx.ValueInfoProto]:
        computed = [t for t in self.pool if not any(t.name == i.name for i in self.inputs)]
        if not computed:  # nothing applied: one Identity
            a = self.pool[-1]
            (o,) = self.node("Relu", [a.name])
            computed = [self.add(o, a.shape, 0, a.hi)]
        chosen = [computed[-1]]
        leaves = [t for t in computed[:-1] if t.name not in self.used]
        self.r.shuffle(leaves)
        chosen += leaves[:self.r.randint(0, 2)]
        return [h.make_tensor_value_info(t.name, t.dtype, [info_dim(d) for d in t.shape]) for t in chosen]


# ---- the ops: each draws its operands from the pool and adds its results (Skip when it does not apply) -------------


def _unary(op, lo_hi, needs=None, f32_only=False, min_opset=13):
    def gen(g: Generator):
        if g.opset < min_opset:
            raise Skip
        a = g.pick()
        a = g.f32(a) if f32_only else a
        a = needs(g, a) if needs else g.small(a)
        (o,) = g.node(op, [a.name])
        lo, hi = lo_hi(a)
        g.add(o, a.shape, lo, hi, a.dtype)
    return gen


def _attr_unary(op, make, lo_hi, f32_only=True, min_opset=13):
    def gen(g: Generator):
        if g.opset < min_opset:
            raise Skip
        a = g.small(g.f32(g.pick()) if f32_only else g.pick())
        kw = make(g)
        (o,) = g.node(op, [a.name], **kw)
        lo, hi = lo_hi(a, kw)
        g.add(o, a.shape, lo, hi, a.dtype)
    return gen


def _sig(x):
    return 1 / (1 + math.exp(-x))


def _bounded_exp(g, a):
    a = g.small(a, 3.0)
    return a


def _log_input(g, a):
    return g.positive(g.small(a), 0.05)


def _sqrt_input(g, a):
    a = g.small(a)
    if a.lo >= 0:
        return a
    (o,) = g.node(g.r.choice(["Abs", "Relu"]), [a.name])
    return g.add(o, a.shape, 0, a.bound, a.dtype)


def gen_binary(g: Generator):
    op = g.r.choice(["Add", "Sub", "Mul", "Div", "Add", "Mul"])
    a = g.small(g.pick())
    b, bshape, blo, bhi = g.partner(a, positive=op == "Div")
    shape = broadcastable(a.shape, bshape)
    if shape is None:
        raise Skip
    first, second = (a.name, b) if g.r.random() < 0.8 or op == "Div" else (b, a.name)
    (o,) = g.node(op, [first, second])
    if op == "Add":
        lo, hi = a.lo + blo, a.hi + bhi
    elif op == "Sub":
        lo, hi = (a.lo - bhi, a.hi - blo) if first == a.name else (blo - a.hi, bhi - a.lo)
    elif op == "Mul":
        lo, hi = _interval([a.lo * blo, a.lo * bhi, a.hi * blo, a.hi * bhi])
    else:
        m = 1 / 0.5
        lo, hi = -a.bound * m, a.bound * m
    g.add(o, shape, lo, hi, a.dtype)


def gen_pow(g: Generator):
    a = g.positive(g.small(g.pick(), 4.0), 0.05)
    if a.hi > 5:
        raise Skip
    kind = g.r.random()
    if kind < 0.6:
        e = g.r.choice([0.5, 2.0, 3.0, -1.0, 1.5, -0.5, g.r.uniform(-1.5, 2.5)])
        name, elo, ehi = g.const(np.asarray(e, NP[a.dtype])), e, e
    elif kind < 0.8 and a.rank:
        v = g.np.uniform(-1, 2, (a.shape[-1] if a.static(-1) else 1,)).astype(NP[a.dtype])
        name, elo, ehi = g.const(v), float(v.min()), float(v.max())
    else:  # a computed exponent in [-1, 1]
        b, bshape, _, _ = g.partner(a)
        if broadcastable(a.shape, bshape) != a.shape:
            raise Skip
        (t,) = g.node("Tanh", [b])
        name, elo, ehi = t, -1.0, 1.0
    (o,) = g.node("Pow", [a.name, name])
    vals = [a.lo**elo, a.lo**ehi, a.hi**elo, a.hi**ehi, 1.0]
    g.add(o, a.shape, 0, max(vals), a.dtype)


def gen_variadic(g: Generator):
    op = g.r.choice(["Max", "Min", "Sum"])
    a = g.small(g.pick())
    names, shape, los, his = [a.name], a.shape, [a.lo], [a.hi]
    for _ in range(g.r.randint(0, 3)):
        b, bshape, blo, bhi = g.partner(a)
        shape = broadcastable(shape, bshape)
        if shape is None:
            raise Skip
        names.append(b)
        los.append(blo)
        his.append(bhi)
    g.r.shuffle(names)
    if "consts" in g.avoid:
        names.remove(a.name)
        names.insert(0, a.name)
    (o,) = g.node(op, names)
    if op == "Sum":
        lo, hi = sum(los), sum(his)
    elif op == "Max":
        lo, hi = max(los), max(his)
    else:
        lo, hi = min(los), min(his)
    g.add(o, shape, lo, hi, a.dtype)


def gen_where(g: Generator):
    a = g.small(g.pick())
    b, bshape, _, _ = g.partner(a)
    cmp = g.r.choice(["Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Equal"])
    if cmp == "Equal":  # an equality that holds somewhere: a value compared with its own relu
        (r,) = g.node("Relu", [a.name])
        (c,) = g.node("Equal", [a.name, r])
        cshape = a.shape
    else:
        (c,) = g.node(cmp, [a.name, b] if g.r.random() < 0.5 else [b, a.name])
        cshape = broadcastable(a.shape, bshape)
    x, xshape, xlo, xhi = g.partner(a)
    shape = broadcastable(cshape, a.shape) if g.r.random() < 0.5 else broadcastable(cshape, xshape)
    pair = [a.name, x] if g.r.random() < 0.5 else [x, a.name]
    shape = broadcastable(broadcastable(cshape, a.shape), xshape)
    if shape is None:
        raise Skip
    (o,) = g.node("Where", [c, *pair])
    g.add(o, shape, min(a.lo, xlo), max(a.hi, xhi), a.dtype)


def gen_clip(g: Generator):
    a = g.small(g.pick())
    lo = g.r.uniform(-2, 0.5) if g.r.random() < 0.8 else None
    hi = g.r.uniform(-0.5, 2) if g.r.random() < 0.8 else None
    if lo is not None and hi is not None and lo > hi and g.r.random() < 0.7:
        lo, hi = hi, lo
    dt = NP[a.dtype]
    ins = [a.name, "" if lo is None else g.const(np.asarray(lo, dt)), "" if hi is None else g.const(np.asarray(hi, dt))]
    while ins and ins[-1] == "":
        ins.pop()
    (o,) = g.node("Clip", ins)
    nlo = a.lo if lo is None else max(a.lo, lo)
    nhi = a.hi if hi is None else min(a.hi, hi)
    if lo is not None and hi is not None and lo > hi:
        nlo, nhi = hi, hi
    g.add(o, a.shape, min(nlo, nhi), max(nlo, nhi), a.dtype)


def gen_reduce(g: Generator):
    op = g.r.choice(["ReduceMean", "ReduceSum", "ReduceMax"])
    a = g.small(g.f32(g.pick(lambda t: t.rank >= 1)) if op == "ReduceMax" else g.pick(lambda t: t.rank >= 1))
    axes = sorted(g.r.sample(range(a.rank), g.r.randint(1, a.rank)))
    if g.r.random() < 0.15:
        axes = None  # every axis
    keep = g.r.choice([0, 1])
    kw = {"keepdims": keep} if keep == 0 or g.r.random() < 0.5 else {}
    shown = None if axes is None else [x - a.rank if g.r.random() < 0.3 else x for x in axes]
    as_input = (op == "ReduceSum") or g.opset >= 18
    ins = [a.name]
    if shown is not None:
        if as_input:
            ins.append(g.i64(shown))
        else:
            kw["axes"] = shown
    (o,) = g.node(op, ins, **kw)
    red = list(range(a.rank)) if axes is None else axes
    shape = tuple((1,) if i in red else (d,) for i, d in enumerate(a.shape)) if keep else \
        tuple((d,) for i, d in enumerate(a.shape) if i not in red)
    shape = tuple(x[0] for x in shape)
    count = int(np.prod([dim_value(a.shape[i], g.n) for i in red]))
    lo, hi = (a.lo * count, a.hi * count) if op == "ReduceSum" else (a.lo, a.hi)
    g.add(o, shape, min(lo, hi), max(lo, hi), a.dtype)


def gen_softmax(g: Generator):
    op = g.r.choice(["Softmax", "LogSoftmax"])
    a = g.small(g.pick(lambda t: t.rank >= 1))
    ax = g.r.randint(-a.rank, a.rank - 1)
    kw = {} if ax == -1 and g.r.random() < 0.5 else {"axis": ax}
    (o,) = g.node(op, [a.name], **kw)
    d = dim_value(a.shape[ax], g.n)
    if op == "Softmax":
        g.add(o, a.shape, 0, 1, a.dtype)
    else:
        g.add(o, a.shape, a.lo - a.hi - math.log(d) - 1, 0, a.dtype)


def gen_reshape(g: Generator):
    a = g.pick(lambda t: t.rank >= 1)
    s = list(a.shape)
    how = g.r.choice(["merge", "split", "flat", "flat0"])
    if how == "merge" and len(s) >= 2:
        i = g.r.randrange(len(s) - 1)
        j = g.r.randint(i + 1, min(len(s) - 1, i + 2))
        out = [*s[:i], product(s[i:j + 1]), *s[j + 1:]]
    elif how == "split":
        cands = [i for i, d in enumerate(s) if not is_sym(d) and any(d % f == 0 for f in range(2, d))]
        if not cands:
            raise Skip
        i = g.r.choice(cands)
        f = g.r.choice([f for f in range(2, s[i]) if s[i] % f == 0])
        out = [*s[:i], f, s[i] // f, *s[i + 1:]]
    elif how == "flat0" and len(s) >= 2:
        out = [s[0], product(s[1:])]
    else:
        out = [product(s)]
    if any(d is None for d in out) or len(out) > 6:
        raise Skip
    target: list[int] = []
    minus = False
    for i, d in enumerate(out):
        if i < len(s) and s[i] == d and (is_sym(d) or g.r.random() < 0.3):
            target.append(0)
        elif is_sym(d) or (not minus and g.r.random() < 0.2 and not any(is_sym(e) for e in out)):
            if minus:
                raise Skip
            target.append(-1)
            minus = True
        else:
            target.append(d)
    (o,) = g.node("Reshape", [a.name, g.i64(target)])
    g.add(o, out, a.lo, a.hi, a.dtype)


def gen_shape_reshape(g: Generator):
    """Shape -> Gather (or Slice) -> Concat -> Reshape: a reshape that keeps the batch, as exporters write it."""
    a = g.pick(lambda t: t.rank >= 2 and is_sym(t.shape[0]) and product(t.shape[1:]) is not None
               and not is_sym(product(t.shape[1:])))
    rest = product(a.shape[1:])
    how = g.r.choice(["gather", "gather1", "slice", "shape_end"])
    if how == "shape_end" and g.opset < 15:
        how = "gather"
    (s,) = g.node("Shape", [a.name], **({"start": 0, "end": 1} if how == "shape_end" else {}))
    if how == "gather":
        (n,) = g.node("Gather", [s, g.i64(0)], axis=0)
        (n,) = g.node("Unsqueeze", [n, g.i64([0])])
    elif how == "gather1":
        (n,) = g.node("Gather", [s, g.i64([0])], axis=0)
    elif how == "slice":
        (n,) = g.node("Slice", [s, g.i64([0]), g.i64([1])])
    else:
        n = s
    factors = [f for f in range(2, rest) if rest % f == 0]
    tail = [rest] if not factors or g.r.random() < 0.4 else [g.r.choice(factors)]
    if len(tail) == 1 and tail[0] != rest:
        tail.append(rest // tail[0])
    if g.r.random() < 0.3:
        tail[-1] = -1
    (shape,) = g.node("Concat", [n, g.i64(tail)], axis=0)
    (o,) = g.node("Reshape", [a.name, shape])
    g.add(o, [a.shape[0], *[rest // int(np.prod(tail[:-1])) if d == -1 else d for d in tail]], a.lo, a.hi, a.dtype)


def gen_flatten(g: Generator):
    a = g.pick(lambda t: t.rank >= 1)
    ax = g.r.randint(-a.rank, a.rank)
    k = ax + a.rank if ax < 0 else ax
    left, right = product(a.shape[:k]), product(a.shape[k:])
    if left is None or right is None:
        raise Skip
    (o,) = g.node("Flatten", [a.name], **({} if ax == 1 and g.r.random() < 0.5 else {"axis": ax}))
    g.add(o, [left, right], a.lo, a.hi, a.dtype)


def gen_transpose(g: Generator):
    a = g.pick(lambda t: t.rank >= 2)
    perm = list(range(a.rank))
    g.r.shuffle(perm)
    if g.r.random() < 0.15:
        (o,) = g.node("Transpose", [a.name])
        perm = list(range(a.rank))[::-1]
    else:
        (o,) = g.node("Transpose", [a.name], perm=perm)
    g.add(o, [a.shape[p] for p in perm], a.lo, a.hi, a.dtype)


def gen_unsqueeze(g: Generator):
    a = g.pick(lambda t: t.rank <= 4)
    k = g.r.randint(1, 2)
    rank = a.rank + k
    axes = sorted(g.r.sample(range(rank), k))
    shown = [x - rank if g.r.random() < 0.3 else x for x in axes]
    g.r.shuffle(shown)
    (o,) = g.node("Unsqueeze", [a.name, g.i64(shown)])
    rest = iter(a.shape)
    g.add(o, [1 if i in axes else next(rest) for i in range(rank)], a.lo, a.hi, a.dtype)


def gen_squeeze(g: Generator):
    a = g.pick(lambda t: any(d == 1 for d in t.shape))
    ones = [i for i, d in enumerate(a.shape) if d == 1]
    if g.r.random() < 0.25 and not any(is_sym(d) for d in a.shape):
        (o,) = g.node("Squeeze", [a.name])
        axes = ones
    else:
        axes = sorted(g.r.sample(ones, g.r.randint(1, len(ones))))
        (o,) = g.node("Squeeze", [a.name, g.i64([x - a.rank if g.r.random() < 0.3 else x for x in axes])])
    g.add(o, [d for i, d in enumerate(a.shape) if i not in axes], a.lo, a.hi, a.dtype)


def gen_concat(g: Generator):
    a = g.pick(lambda t: t.rank >= 1 and any(t.static(i) for i in range(t.rank)))
    ax = g.r.choice([i for i in range(a.rank) if a.static(i)])
    parts = [a]
    for _ in range(g.r.randint(1, 3)):
        same = [t for t in g.pool if t.dtype == a.dtype and t.rank == a.rank and all(
            t.shape[i] == a.shape[i] for i in range(a.rank) if i != ax) and t.static(ax)]
        if same and g.r.random() < 0.7:
            parts.append(g.r.choice(same))
        elif not any(is_sym(d) for d in a.shape):
            shape = list(a.shape)
            shape[ax] = g.r.randint(1, 3)
            if "size1" in g.avoid and int(np.prod(shape)) == 1:
                shape[ax] = 2
            v = g.np.uniform(-1, 1, shape).astype(NP[a.dtype])
            parts.append(Tensor(g.const(v), tuple(shape), -1, 1, a.dtype))
    if len(parts) == 1:
        raise Skip
    g.r.shuffle(parts)
    (o,) = g.node("Concat", [p.name for p in parts], axis=ax - a.rank if g.r.random() < 0.3 else ax)
    shape = list(a.shape)
    shape[ax] = sum(p.shape[ax] for p in parts)
    g.add(o, shape, min(p.lo for p in parts), max(p.hi for p in parts), a.dtype)


def gen_split(g: Generator):
    a = g.pick(lambda t: any(t.static(i) and t.shape[i] >= 2 for i in range(t.rank)))
    ax = g.r.choice([i for i in range(a.rank) if a.static(i) and a.shape[i] >= 2])
    d = a.shape[ax]
    shown = ax - a.rank if g.r.random() < 0.3 else ax
    if g.r.random() < 0.5:  # explicit sizes
        k = g.r.randint(2, min(d, 4))
        cuts = sorted(g.r.sample(range(1, d), k - 1))
        sizes = [b - c for c, b in zip([0, *cuts], [*cuts, d], strict=True)]
        outs = g.node("Split", [a.name, g.i64(sizes)], n_out=k, axis=shown)
    elif g.opset >= 18:
        k = g.r.randint(2, min(d, 4))
        each = -(-d // k)
        sizes = [min(each, d - i * each) for i in range(k)]
        if sizes[-1] <= 0:
            raise Skip
        outs = g.node("Split", [a.name], n_out=k, axis=shown, num_outputs=k)
    else:
        ks = [k for k in range(2, min(d, 4) + 1) if d % k == 0]
        if not ks:
            raise Skip
        k = g.r.choice(ks)
        sizes = [d // k] * k
        outs = g.node("Split", [a.name], n_out=k, axis=shown)
    for o, size in zip(outs, sizes, strict=True):
        shape = list(a.shape)
        shape[ax] = size
        g.add(o, shape, a.lo, a.hi, a.dtype)


def _onnx_slice(start, end, step, d) -> int:
    """The length ONNX Slice gives one axis."""
    start = start + d if start < 0 else start
    end = end + d if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), d), min(max(end, 0), d)
    else:
        start, end = min(max(start, -1), d - 1), min(max(end, -1), d - 1)
    return len(range(start, end, step))


def gen_slice(g: Generator):
    a = g.pick(lambda t: any(t.static(i) and t.shape[i] >= 2 for i in range(t.rank)))
    static = [i for i in range(a.rank) if a.static(i) and a.shape[i] >= 2]
    axes = g.r.sample(static, g.r.randint(1, len(static)))
    if any(is_sym(d) for d in a.shape) and g.r.random() < 0.3:  # the whole symbolic axis, as exporters write it
        axes.append(next(i for i, d in enumerate(a.shape) if is_sym(d)))
    starts, ends, steps = [], [], []
    shape = list(a.shape)
    for ax in axes:
        d = a.shape[ax]
        if is_sym(d):
            starts.append(0)
            ends.append(INT64_MAX)
            steps.append(1)
            continue
        for _ in range(20):
            step = g.r.choice([1, 1, 1, 2, 3, -1, -1, -2])
            s = g.r.randint(-d - 1, d)
            if step > 0:
                e = g.r.choice([INT64_MAX, g.r.randint(-d, d + 2)])
            else:
                e = g.r.choice([INT64_MIN, -d - 1, g.r.randint(-d - 1, d)])
            n = _onnx_slice(s, e, step, d)
            if n > 0:
                break
        else:
            raise Skip
        starts.append(s)
        ends.append(e)
        steps.append(step)
        shape[ax] = n
    ins = [a.name, g.i64(starts), g.i64(ends)]
    default_axes = axes == list(range(len(axes)))
    all_one = all(s == 1 for s in steps)
    if not (default_axes and all_one and g.r.random() < 0.5):
        ins.append(g.i64([x - a.rank if g.r.random() < 0.3 else x for x in axes]))
        if not all_one or g.r.random() < 0.5:
            ins.append(g.i64(steps))
    (o,) = g.node("Slice", ins)
    g.add(o, shape, a.lo, a.hi, a.dtype)


def gen_gather(g: Generator):
    a = g.pick(lambda t: any(t.static(i) for i in range(t.rank)))
    ax = g.r.choice([i for i in range(a.rank) if a.static(i)])
    d = a.shape[ax]
    kind = g.r.random()
    if kind < 0.4:
        k = g.r.randint(-d, d - 1)
        idx, shape = g.i64(k), [x for i, x in enumerate(a.shape) if i != ax]
    elif kind < 0.95:  # a regular progression
        step = g.r.choice([1, 1, 2, -1])
        start = g.r.randrange(d)
        vals = list(range(start, -1 if step < 0 else d, step))[:g.r.randint(1, d)]
        vals = [v - d if g.r.random() < 0.3 else v for v in vals]
        idx = g.i64(vals)
        shape = [*a.shape[:ax], len(vals), *a.shape[ax + 1:]]
    else:  # irregular (refused by the importer)
        vals = [g.r.randrange(d) for _ in range(g.r.randint(1, 4))]
        idx = g.i64(vals)
        shape = [*a.shape[:ax], len(vals), *a.shape[ax + 1:]]
    (o,) = g.node("Gather", [a.name, idx], **({"axis": ax - a.rank if g.r.random() < 0.3 else ax}
                                               if ax or g.r.random() < 0.5 else {}))
    g.add(o, shape, a.lo, a.hi, a.dtype)


def gen_expand(g: Generator):
    a = g.pick()
    shape = [1 if is_sym(d) or g.r.random() < 0.3 else d for d in a.shape]
    shape = shape[g.r.randint(0, len(shape)):] if shape else shape
    out = a.shape
    if g.r.random() < 0.1 and a.rank >= 1 and a.shape[0] == 1:  # a real broadcast (refused)
        shape = [3, *shape[1:]] if len(shape) == a.rank else [*shape]
        out = broadcastable(a.shape, tuple(shape))
        if out is None:
            raise Skip
    (o,) = g.node("Expand", [a.name, g.i64(shape)])
    g.add(o, out, a.lo, a.hi, a.dtype)


def gen_matmul(g: Generator):
    a = g.small(g.f32(g.pick(lambda t: t.rank >= 2 and t.static(-1))))
    if g.r.random() < 0.2:  # two computed tensors: x @ transpose(x)
        perm = list(range(a.rank))
        perm[-1], perm[-2] = perm[-2], perm[-1]
        (t,) = g.node("Transpose", [a.name], perm=perm)
        (o,) = g.node("MatMul", [a.name, t])
        k = dim_value(a.shape[-1], g.n)
        g.add(o, [*a.shape[:-1], a.shape[-2]], -a.bound**2 * k, a.bound**2 * k)
        return
    k, m = a.shape[-1], g.r.randint(1, 8)
    w = g.weight((k, m), 1 / math.sqrt(k))
    (o,) = g.node("MatMul", [a.name, g.const(w)])
    bound = a.bound * float(np.abs(w).sum(0).max())
    if g.r.random() < 0.6:
        b = g.weight((m,), 0.5)
        (o,) = g.node("Add", [o, g.const(b)] if g.r.random() < 0.7 else [g.const(b), o])
        bound += float(np.abs(b).max())
    g.add(o, [*a.shape[:-1], m], -bound, bound)


def gen_gemm(g: Generator):
    a = g.small(g.f32(g.pick(lambda t: t.rank == 2 and t.static(1))))
    trans_a = int(a.static(0) and g.r.random() < 0.3)
    trans_b = g.r.choice([0, 1])
    rows, k = (a.shape[1], a.shape[0]) if trans_a else (a.shape[0], a.shape[1])
    m = g.r.randint(1, 8)
    alpha, beta = g.r.choice([1.0, g.r.uniform(-2, 2)]), g.r.choice([1.0, g.r.uniform(-2, 2)])
    w = g.weight((m, k) if trans_b else (k, m), 1 / math.sqrt(k))
    ins = [a.name, g.const(w)]
    c = g.r.choice([None, (), (m,), (1, m)])
    bias = 0.0
    if c is not None:
        cv = g.weight(c, 0.5)
        ins.append(g.const(cv))
        bias = abs(beta) * float(np.abs(cv).max())
    defaults = {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0}
    kw = {k_: v for k_, v in (("alpha", alpha), ("beta", beta), ("transA", trans_a), ("transB", trans_b))
          if v != defaults[k_] or g.r.random() < 0.2}
    (o,) = g.node("Gemm", ins, **kw)
    bound = abs(alpha) * a.bound * float(np.abs(w).sum(1 if trans_b else 0).max()) + bias
    g.add(o, [rows, m], -bound, bound)


def _image(g: Generator, max_hw=16) -> Tensor:
    return g.small(g.f32(g.pick(lambda t: t.rank == 4 and all(t.static(i) for i in (1, 2, 3))
                                and t.shape[2] <= max_hw and t.shape[3] <= max_hw and t.shape[1] <= 16)))


def gen_conv(g: Generator):
    a = _image(g)
    c = a.shape[1]
    kind = g.r.random()
    if kind < 0.2:
        group, m = c, c * g.r.choice([1, 2])  # depthwise
    elif kind < 0.4:
        group = g.r.choice([d for d in range(1, c + 1) if c % d == 0])
        m = group * g.r.randint(1, 3)
    else:
        group, m = 1, g.r.randint(1, 6)
    kh, kw = g.r.randint(1, 3), g.r.randint(1, 3)
    stride = [g.r.choice([1, 1, 2]), g.r.choice([1, 1, 2])]
    dil = [g.r.choice([1, 1, 2]), g.r.choice([1, 1, 2])]
    w = g.weight((m, c // group, kh, kw))
    attrs: dict = {"group": group} if group != 1 or g.r.random() < 0.2 else {}
    if stride != [1, 1] or g.r.random() < 0.2:
        attrs["strides"] = stride
    auto = g.r.choice(["NOTSET", "NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"])
    if auto.startswith("SAME"):  # onnxruntime pads SAME only without dilations
        dil = [1, 1]
    if dil != [1, 1]:
        attrs["dilations"] = dil
    hw = a.shape[2:]
    if auto == "NOTSET":
        pads = [g.r.randint(0, 2) for _ in range(4)]
        if any(pads):
            attrs["pads"] = pads
        out = [(hw[i] + pads[i] + pads[i + 2] - dil[i] * (k - 1) - 1) // stride[i] + 1 for i, k in enumerate((kh, kw))]
    else:
        attrs["auto_pad"] = auto
        if auto == "VALID":
            out = [(hw[i] - dil[i] * (k - 1) - 1) // stride[i] + 1 for i, k in enumerate((kh, kw))]
        else:
            out = [-(-hw[i] // stride[i]) for i in range(2)]
    if min(out) < 1:
        raise Skip
    ins = [a.name, g.const(w)]
    bound = a.bound * float(np.abs(w).reshape(m, -1).sum(1).max())
    if g.r.random() < 0.6:
        b = g.weight((m,), 0.5)
        ins.append(g.const(b))
        bound += float(np.abs(b).max())
    (o,) = g.node("Conv", ins, **attrs)
    g.add(o, [a.shape[0], m, *out], -bound, bound)


def gen_conv_transpose(g: Generator):
    a = _image(g, 8)
    c = a.shape[1]
    group = g.r.choice([d for d in range(1, c + 1) if c % d == 0]) if g.r.random() < 0.3 else 1
    per = g.r.randint(1, 3)
    kh, kw = g.r.randint(1, 3), g.r.randint(1, 3)
    stride = [g.r.choice([1, 2, 2]), g.r.choice([1, 2])]
    dil = [1, 1] if g.r.random() < 0.8 else [g.r.choice([1, 2]), 1]
    pads = [g.r.randint(0, k - 1) for k in (kh, kw)] * 2 if g.r.random() < 0.5 else [0, 0, 0, 0]
    if g.r.random() < 0.3:
        pads = [g.r.randint(0, kh - 1), g.r.randint(0, kw - 1), g.r.randint(0, kh - 1), g.r.randint(0, kw - 1)]
    extra = [g.r.randint(0, stride[i] - 1) if g.r.random() < 0.4 else 0 for i in range(2)]
    w = g.weight((c, per, kh, kw), 1 / math.sqrt(c * kh * kw / max(stride[0] * stride[1], 1)))
    attrs: dict = {}
    if group != 1:
        attrs["group"] = group
    if stride != [1, 1]:
        attrs["strides"] = stride
    if dil != [1, 1]:
        attrs["dilations"] = dil
    if any(pads):
        attrs["pads"] = pads
    if any(extra):
        attrs["output_padding"] = extra
    size = [stride[i] * (a.shape[2 + i] - 1) + extra[i] + ((kh, kw)[i] - 1) * dil[i] + 1 - pads[i] - pads[2 + i]
            for i in range(2)]
    if min(size) < 1:
        raise Skip
    ins = [a.name, g.const(w)]
    m = per * group
    bound = a.bound * float(np.abs(w).sum()) / max(m, 1) * 2 + 1
    if g.r.random() < 0.5:
        b = g.weight((m,), 0.5)
        ins.append(g.const(b))
    (o,) = g.node("ConvTranspose", ins, **attrs)
    wsum = float(np.abs(w).reshape(c, -1).sum())
    g.add(o, [a.shape[0], m, *size], -a.bound * wsum - 1, a.bound * wsum + 1)
    del bound


def gen_batch_norm(g: Generator):
    a = g.small(g.f32(g.pick(lambda t: 2 <= t.rank <= 4 and t.static(1))))
    c = a.shape[1]
    scale, bias = g.weight((c,), 1.0), g.weight((c,), 0.5)
    mean, var = g.weight((c,), 0.5), g.np.uniform(0.5, 2.0, c).astype(np.float32)
    eps = g.r.choice([1e-5, 1e-3, g.r.uniform(1e-6, 0.1)])
    kw = {"epsilon": eps} if eps != 1e-5 or g.r.random() < 0.3 else {}
    if g.r.random() < 0.2:
        kw["momentum"] = g.r.uniform(0.5, 0.99)
    (o,) = g.node("BatchNormalization", [a.name, *(g.const(v) for v in (scale, bias, mean, var))], **kw)
    bound = (a.bound + 0.5 * 3) / math.sqrt(0.5) * float(np.abs(scale).max()) + float(np.abs(bias).max())
    g.add(o, a.shape, -bound, bound)


def gen_layer_norm(g: Generator):
    if g.opset < 17:
        raise Skip
    a = g.small(g.f32(g.pick(lambda t: t.rank >= 1 and t.static(-1) and t.shape[-1] >= 2)))
    d = a.shape[-1]
    ax = -1 if g.r.random() < 0.9 else g.r.randint(-a.rank, -1)
    if not all(a.static(i) for i in range(ax + a.rank, a.rank)):
        raise Skip
    norm = [a.shape[i] for i in range(ax + a.rank, a.rank)]
    # a ramp added first keeps every normalized group's variance away from 0: with a constant group (a clipped
    # tensor's), (x - mean) / sqrt(eps) magnifies the f32 rounding of the mean 300 times, in any implementation
    (a_,) = g.node("Add", [a.name, g.const(np.linspace(-1, 1, int(np.prod(norm))).reshape(norm).astype(np.float32))])
    a = g.add(a_, a.shape, a.lo - 1, a.hi + 1)
    scale = g.weight(norm, 1.0)
    ins = [a.name, g.const(scale)]
    if g.r.random() < 0.7:
        ins.append(g.const(g.weight(norm, 0.5)))
    kw = {"axis": ax} if ax != -1 or g.r.random() < 0.5 else {}
    if g.r.random() < 0.4:
        kw["epsilon"] = g.r.choice([1e-6, 1e-3, 1e-12])
    (o,) = g.node("LayerNormalization", ins, **kw)
    bound = math.sqrt(int(np.prod(norm))) * float(np.abs(scale).max()) + 1.5
    g.add(o, a.shape, -bound, bound)
    del d


def gen_pool(g: Generator):
    op = g.r.choice(["MaxPool", "AveragePool"])
    a = _image(g)
    hw = a.shape[2:]
    k = [g.r.randint(1, min(3, hw[0])), g.r.randint(1, min(3, hw[1]))]
    stride = [g.r.choice([1, 2, 2, 3]), g.r.choice([1, 2, 2])]
    attrs: dict = {"kernel_shape": k}
    if stride != k or g.r.random() < 0.3:
        attrs["strides"] = stride
    else:
        stride = [1, 1]
    if "strides" not in attrs:
        stride = [1, 1]
    pads = [g.r.randint(0, k[i % 2] - 1) for i in range(4)] if g.r.random() < 0.5 else [0, 0, 0, 0]
    auto = "NOTSET" if g.r.random() < 0.85 else g.r.choice(["SAME_UPPER", "SAME_LOWER", "VALID"])
    if auto.startswith("SAME") and any(stride[i] > k[i] for i in range(2)):  # onnxruntime: negative padding
        auto = "VALID"
    if auto != "NOTSET":
        attrs["auto_pad"] = auto
        pads = [0, 0, 0, 0]
        if auto != "VALID":
            for i in range(2):
                out = -(-hw[i] // stride[i])
                total = max((out - 1) * stride[i] + k[i] - hw[i], 0)
                small, big = total // 2, total - total // 2
                pads[i], pads[i + 2] = (small, big) if auto == "SAME_UPPER" else (big, small)
    elif any(pads):
        attrs["pads"] = pads
    ceil = g.r.random() < 0.3 and auto == "NOTSET"
    if ceil:
        attrs["ceil_mode"] = 1
    if op == "AveragePool":
        if g.r.random() < 0.5:
            attrs["count_include_pad"] = 0
        elif g.r.random() < 0.3:
            attrs["count_include_pad"] = 1
    if op == "MaxPool" and g.r.random() < 0.05 and auto == "NOTSET":
        attrs["dilations"] = [2, 1]  # refused by the importer
    out = []
    dil = attrs.get("dilations", [1, 1])
    for i in range(2):
        span = hw[i] + pads[i] + pads[i + 2] - ((k[i] - 1) * dil[i] + 1)
        if span < 0:
            raise Skip
        n = (-(-span // stride[i]) if ceil else span // stride[i]) + 1
        if ceil and (n - 1) * stride[i] >= hw[i] + pads[i]:
            raise Skip  # a last window starting in the padding: onnx's shape inference and onnxruntime disagree
        out.append(n)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = [-(-hw[i] // stride[i]) for i in range(2)]
    (o,) = g.node(op, [a.name], **attrs)
    g.add(o, [a.shape[0], a.shape[1], *out], a.lo, a.hi)


def gen_global_pool(g: Generator):
    ranks = (4,) if "gap3" in g.avoid else (3, 4)
    a = g.small(g.f32(g.pick(lambda t: t.rank in ranks and all(t.static(i) for i in range(1, t.rank)))))
    (o,) = g.node("GlobalAveragePool", [a.name])
    g.add(o, [a.shape[0], a.shape[1], *[1] * (a.rank - 2)], a.lo, a.hi)


def gen_resize(g: Generator):
    a = _image(g, 8)
    mode = g.r.choice(["nearest", "linear"])
    coords = g.r.choice(["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"])
    attrs: dict = {"mode": mode}
    if coords != "half_pixel" or g.r.random() < 0.3:
        attrs["coordinate_transformation_mode"] = coords
    if mode == "nearest":
        nearest = g.r.choice(["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
        if nearest != "round_prefer_floor" or g.r.random() < 0.3:
            attrs["nearest_mode"] = nearest
    hw = a.shape[2:]
    roi = "" if g.r.random() < 0.7 else g.const(np.zeros(0, np.float32))
    if g.r.random() < 0.6 or is_sym(a.shape[0]):
        scales = [float(g.r.choice([1, 2, 2, 3])) for _ in range(2)]
        if g.r.random() < 0.2 and hw[0] % 2 == 0:
            scales[0] = 0.5
        ins = [a.name, roi, g.const(np.asarray([1.0, 1.0, *scales], np.float32))]
        out = [int(hw[i] * scales[i]) for i in range(2)]
    else:
        out = [g.r.randint(1, 2 * hw[0] + 1), g.r.randint(1, 2 * hw[1] + 1)]
        ins = [a.name, roi, "", g.i64([a.shape[0], a.shape[1], *out])]
    (o,) = g.node("Resize", ins, **attrs)
    g.add(o, [a.shape[0], a.shape[1], *out], a.lo, a.hi)


def gen_recurrent(g: Generator):
    op = g.r.choice(["LSTM", "GRU", "RNN"])
    a = g.small(g.f32(g.pick(lambda t: t.rank == 3 and t.static(2) and t.shape[2] <= 16)), 3.0)
    layout = g.r.choice([0, 1]) if g.opset >= 14 else 0
    if is_sym(a.shape[1 - layout]):  # the sequence axis: make it static, with the batch where layout wants it
        perm = [1, 0, 2]
        (t,) = g.node("Transpose", [a.name], perm=perm)
        a = g.add(t, [a.shape[p] for p in perm], a.lo, a.hi)
    seq_len, batch = (a.shape[1], a.shape[0]) if layout else (a.shape[0], a.shape[1])
    if is_sym(seq_len) or (is_sym(batch) and batch[1] != 1):
        raise Skip
    direction = g.r.choice(["forward", "reverse", "bidirectional"])
    dirs = 2 if direction == "bidirectional" else 1
    hidden = g.r.randint(1, 6)
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    f = a.shape[2]
    w = g.weight((dirs, gates * hidden, f), 1 / math.sqrt(f))
    r = g.weight((dirs, gates * hidden, hidden), 1 / math.sqrt(hidden))
    ins = [a.name, g.const(w), g.const(r)]
    if g.r.random() < 0.7:
        ins.append(g.const(g.weight((dirs, 2 * gates * hidden), 0.3)))
    if not is_sym(batch) and g.r.random() < 0.2:  # zero initial states
        while len(ins) < 4:
            ins.append("")
        ins += ["", g.const(np.zeros((dirs, batch, hidden), np.float32) if layout == 0 else
                            np.zeros((batch, dirs, hidden), np.float32))]
    attrs: dict = {"hidden_size": hidden}
    if direction != "forward" or g.r.random() < 0.3:
        attrs["direction"] = direction
    if layout or (g.opset >= 14 and g.r.random() < 0.2):
        attrs["layout"] = layout
    if op == "GRU" and g.r.random() < 0.6:
        attrs["linear_before_reset"] = g.r.choice([0, 1])
    use = g.r.choice(["y", "yh", "both"])
    n_out = 2
    if op == "LSTM" and g.r.random() < 0.05:
        n_out = 3  # Y_c used (refused)
    outs = g.node(op, ins, n_out=n_out, **attrs)
    if use == "y":
        g.nodes[-1].output[1] = ""
        outs[1] = ""
    y_shape = [batch, seq_len, dirs, hidden] if layout else [seq_len, dirs, batch, hidden]
    yh_shape = [batch, dirs, hidden] if layout else [dirs, batch, hidden]
    if use == "yh":
        g.nodes[-1].output[0] = ""
    else:
        g.add(outs[0], y_shape, -1, 1)
    if use != "y":
        g.add(outs[1], yh_shape, -1, 1)
    if n_out == 3:
        g.add(outs[2], yh_shape, -5, 5)


def gen_dropout(g: Generator):
    a = g.pick()
    ins = [a.name]
    if g.r.random() < 0.4:
        ins.append(g.const(np.asarray(g.r.uniform(0.1, 0.6), np.float32)))
        if g.r.random() < 0.5:
            ins.append(g.const(np.asarray(False)))
    n_out = 2 if g.r.random() < 0.3 else 1
    outs = g.node("Dropout", ins, n_out=n_out)
    g.add(outs[0], a.shape, a.lo, a.hi, a.dtype)


def gen_identity(g: Generator):
    a = g.pick()
    (o,) = g.node("Identity", [a.name])
    g.add(o, a.shape, a.lo, a.hi, a.dtype)


def gen_cast(g: Generator):
    a = g.pick()
    to = g.r.choice([TP.DOUBLE] * 4 + [TP.FLOAT] * 3 + [TP.FLOAT16]) if a.dtype == TP.FLOAT else \
        g.r.choice([TP.FLOAT, TP.FLOAT, TP.DOUBLE])
    (o,) = g.node("Cast", [a.name], to=to)
    if to == TP.FLOAT16:  # refused by the importer (the language has no f16); back to f32 for the next ops
        (o,) = g.node("Cast", [o], to=TP.FLOAT)
        to = TP.FLOAT
    g.add(o, a.shape, a.lo, a.hi, to)


UNARIES = {
    "Relu": _unary("Relu", lambda a: (max(a.lo, 0), max(a.hi, 0))),
    "Sigmoid": _unary("Sigmoid", lambda a: (_sig(a.lo), _sig(a.hi))),
    "Tanh": _unary("Tanh", lambda a: (math.tanh(a.lo), math.tanh(a.hi))),
    "Exp": _unary("Exp", lambda a: (math.exp(a.lo), math.exp(a.hi)), needs=_bounded_exp),
    "Log": _unary("Log", lambda a: (math.log(a.lo), math.log(a.hi)), needs=_log_input),
    "Sqrt": _unary("Sqrt", lambda a: (math.sqrt(max(a.lo, 0)), math.sqrt(a.hi)), needs=_sqrt_input),
    "Abs": _unary("Abs", lambda a: (0, a.bound)),
    "Neg": _unary("Neg", lambda a: (-a.hi, -a.lo)),
    "Erf": _unary("Erf", lambda a: (math.erf(a.lo), math.erf(a.hi)), f32_only=True),
    "HardSwish": _unary("HardSwish", lambda a: (-0.375, max(a.hi, 0)), f32_only=True, min_opset=14),
}


def _leaky(a, alpha):
    f = lambda x: x if x >= 0 else alpha * x  # noqa: E731
    return _interval([f(a.lo), f(a.hi), 0.0 if a.lo < 0 < a.hi else f(a.lo)])


def _alpha(g):
    return {"alpha": g.r.choice([0.01, 0.1, g.r.uniform(0.0, 0.9)])} if g.r.random() < 0.8 else {}


def _hard_sigmoid(g):
    kw = {}
    if g.r.random() < 0.8:
        kw["alpha"] = g.r.uniform(0.05, 0.6)
    if g.r.random() < 0.8:
        kw["beta"] = g.r.uniform(0.1, 0.9)
    return kw


def _gelu(g):
    return {"approximate": g.r.choice(["none", "tanh"])} if g.r.random() < 0.7 else {}


ATTR_UNARIES = {
    "LeakyRelu": _attr_unary("LeakyRelu", _alpha, lambda a, kw: _leaky(a, kw.get("alpha", 0.01))),
    "HardSigmoid": _attr_unary("HardSigmoid", _hard_sigmoid, lambda a, kw: (0, 1)),
    "Gelu": _attr_unary("Gelu", _gelu, lambda a, kw: (-0.2, max(a.hi, 0)), min_opset=20),
}


def gen_any_unary(g: Generator):
    table = {**UNARIES, **ATTR_UNARIES}
    table[g.r.choice(sorted(table))](g)


OPS = {  # name -> (generator, weight)
    "unary": (gen_any_unary, 10), "binary": (gen_binary, 8), "pow": (gen_pow, 2), "variadic": (gen_variadic, 2),
    "where": (gen_where, 2), "clip": (gen_clip, 2), "reduce": (gen_reduce, 3), "softmax": (gen_softmax, 2),
    "reshape": (gen_reshape, 3), "shape_reshape": (gen_shape_reshape, 2), "flatten": (gen_flatten, 2),
    "transpose": (gen_transpose, 3), "unsqueeze": (gen_unsqueeze, 2), "squeeze": (gen_squeeze, 2),
    "concat": (gen_concat, 2), "split": (gen_split, 2), "slice": (gen_slice, 3), "gather": (gen_gather, 2),
    "expand": (gen_expand, 1), "matmul": (gen_matmul, 3), "gemm": (gen_gemm, 2), "conv": (gen_conv, 3),
    "conv_transpose": (gen_conv_transpose, 2), "batch_norm": (gen_batch_norm, 2), "layer_norm": (gen_layer_norm, 2),
    "pool": (gen_pool, 3), "global_pool": (gen_global_pool, 1), "resize": (gen_resize, 2),
    "recurrent": (gen_recurrent, 3), "dropout": (gen_dropout, 1), "identity": (gen_identity, 1),
    "cast": (gen_cast, 1),
}


AVOIDABLE = {
    "size1": "constants of one value and rank >= 1 (imported as scalar literals: rank lost)",
    "consts": "Max/Min/Sum with two constants as the first operands (maximum(c1, c2) is rejected)",
    "gap3": "GlobalAveragePool of a rank-3 tensor (with a Squeeze after it, written as a 4-D global_avg_pool)",
}
# what the suite avoids while the importer has a known bug there (test_onnx_import_fuzz); the three above are fixed
KNOWN_BUGS: frozenset[str] = frozenset()


def generate(seed: int, avoid: frozenset[str] = frozenset()) -> Built:
    return Generator(seed, avoid).build()


# ---- running one graph ----------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    seed: int
    status: str
    reason: str = ""
    detail: str = ""
    source: str = ""
    ops: list[str] = field(default_factory=list)


def time_major(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its batch-first recurrences (layout 1), which onnxruntime's CPU kernels lack, written as
    time-major ones between transposes: the same function."""
    if not any(n.op_type in ("LSTM", "GRU", "RNN") and any(a.name == "layout" and a.i == 1 for a in n.attribute)
               for n in model.graph.node):
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = []
    for j, n in enumerate(model.graph.node):
        if not (n.op_type in ("LSTM", "GRU", "RNN") and any(a.name == "layout" and a.i == 1 for a in n.attribute)):
            nodes.append(n)
            continue
        ins, outs = list(n.input), list(n.output)
        for k in (0, 5, 6):
            if len(ins) > k and ins[k]:
                nodes.append(h.make_node("Transpose", [ins[k]], [f"{ins[k]}__tm{j}"], perm=[1, 0, 2]))
                ins[k] = f"{ins[k]}__tm{j}"
        moved = [f"{o}__tm{j}" if o else "" for o in outs]
        attrs = {a.name: h.get_attribute_value(a) for a in n.attribute if a.name != "layout"}
        nodes.append(h.make_node(n.op_type, ins, moved, name=n.name, **attrs))
        for k, o in enumerate(outs):
            if o:
                nodes.append(h.make_node("Transpose", [moved[k]], [o], perm=[2, 0, 1, 3] if k == 0 else [1, 0, 2]))
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    model = time_major(model)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def bmc_outputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray], workdir: Path):
    """(stage, imported, outputs): runs the import, the build and the module; raises what they raise, with the stage
    reached in `stage[0]`."""
    import bmc
    from bmc.onnx_import import import_onnx, importer
    from bmc.runtime import load_source

    path = workdir / "fuzz.onnx"
    onnx.save(model, str(path))
    state = {"stage": "import", "imp": None}
    verify = importer._verify

    def keep(imported, p):  # the text the importer wrote, for the report, even when bmc rejects it
        state["imp"] = imported
        verify(imported, p)

    importer._verify = keep
    try:
        imp = import_onnx(path)
        state.update(stage="compile", imp=imp)
        compiled = bmc.compile_string(imp.source, filename="fuzz.bm", dtype="f32", warnings="ignore")
        module = load_source(compiled.generate("numpy", train=False))
        state["stage"] = "run"
        by_name = dict(zip(imp.inputs, feeds.values(), strict=True))
        params = {k: np.asarray(v) for k, v in imp.params.items()}
        with np.errstate(all="ignore"):
            out = module.forward(params, *(by_name[k] for k in module.INPUTS))
        names = list(module.OUTPUTS)
        got = [np.asarray(out[o] if o in out else out[names[i]]) for i, o in enumerate(imp.outputs)]
        return state, got
    except BaseException as e:
        e.fuzz_state = state  # type: ignore[attr-defined]
        raise
    finally:
        importer._verify = verify


def compare(got: list[np.ndarray], want: list[np.ndarray]) -> str:
    if len(got) != len(want):
        return f"{len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if g.shape != w.shape:
            return f"output {i}: shape {list(g.shape)}, expected {list(w.shape)}"
        if g.dtype != w.dtype:
            return f"output {i}: dtype {g.dtype}, expected {w.dtype}"
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        scale = float(np.nanmax(np.abs(w64))) if w64.size and not np.all(np.isnan(w64)) else 0.0
        tol = ATOL + RTOL * scale
        with np.errstate(all="ignore"):
            bad = ~((np.abs(g64 - w64) <= tol) | (np.isnan(g64) & np.isnan(w64)))
        if bad.any():
            at = tuple(int(j) for j in np.argwhere(bad)[0])
            err = float(np.nanmax(np.abs(g64 - w64)))
            return (f"output {i}: {int(bad.sum())} of {bad.size} values differ (max |diff| {err:.3g}, tolerance "
                    f"{tol:.3g}); at {list(at)} got {g[at]!r}, expected {w[at]!r}")
    return ""


def plain(reason: str) -> str:
    """A refusal's reason without node names, numbers and paths, so equal reasons count together."""
    reason = re.sub(r"node '[^']*' \(([^,]*), [^)]*\): ", r"\1: ", reason)
    reason = re.sub(r"\S*/fuzz\.onnx:? ?", "", reason)
    reason = re.sub(r"'[^']*'", "'_'", reason)
    reason = re.sub(r"\[[^\]]*\]", "[..]", reason)
    return re.sub(r"-?\d+(\.\d+)?", "#", reason)[:160]


def check(model: onnx.ModelProto, feeds: dict[str, np.ndarray], workdir: Path, seed: int = -1,
          ops: list[str] | None = None) -> Outcome:
    from bmc.diagnostics import BmcError

    try:
        want = reference(model, feeds)
    except Exception as e:
        return Outcome(seed, INVALID, f"onnxruntime: {type(e).__name__}: {str(e)[:300]}", ops=ops or [])
    try:
        state, got = bmc_outputs(model, feeds, workdir)
    except BmcError as e:
        state = getattr(e, "fuzz_state", {"stage": "import", "imp": None})
        source = state["imp"].source if state["imp"] is not None else ""
        if "bmc rejects" in e.message or state["stage"] == "compile":
            m = re.search(r"error: (.*)", e.message)
            return Outcome(seed, COMPILE, plain(m.group(1) if m else e.message), e.render(), source, ops or [])
        if state["stage"] == "run":
            return Outcome(seed, TRACEBACK, f"run: {e.message[:200]}", e.render(), source, ops or [])
        return Outcome(seed, REFUSED, plain(e.notes[0] if e.notes else e.message), e.render(), source, ops or [])
    except Exception as e:
        state = getattr(e, "fuzz_state", {"stage": "?", "imp": None})
        source = state["imp"].source if state["imp"] is not None else ""
        return Outcome(seed, TRACEBACK, f"{state['stage']}: {type(e).__name__}: {str(e)[:200]}",
                       traceback.format_exc(), source, ops or [])
    wrong = compare(got, want)
    if wrong:
        return Outcome(seed, WRONG, wrong, "", state["imp"].source, ops or [])
    return Outcome(seed, PASS, ops=ops or [])


def run_seed(seed: int, workdir: Path, avoid: frozenset[str] = frozenset()) -> Outcome:
    built = generate(seed, avoid)
    return check(built.model, built.feeds, workdir, seed, built.ops)


# ---- shrinking --------------------------------------------------------------------------------------------------


def _prune(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model without the nodes, initializers and inputs its outputs do not need."""
    g = model.graph
    need = {o.name for o in g.output}
    keep = []
    for n in reversed(g.node):
        if any(o in need for o in n.output if o):
            keep.append(n)
            need.update(i for i in n.input if i)
    keep.reverse()
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    out.graph.node.extend(keep)
    inits = [i for i in g.initializer if i.name in need]
    del out.graph.initializer[:]
    out.graph.initializer.extend(inits)
    inputs = [i for i in g.input if i.name in need]
    del out.graph.input[:]
    out.graph.input.extend(inputs)
    return out


def _intermediates(model: onnx.ModelProto, feeds) -> dict[str, np.ndarray]:
    """Every computed tensor's value, by onnxruntime."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    names = [o for n in m.graph.node for o in n.output if o]
    del m.graph.output[:]
    m.graph.output.extend(h.make_empty_tensor_value_info(n) for n in names)
    return dict(zip(names, reference(m, feeds), strict=True))


def shrink(model: onnx.ModelProto, feeds: dict[str, np.ndarray], status: str, workdir: Path, budget=300):
    """A smaller graph failing the same way: one output at a time, then computed tensors cut into graph inputs fed
    their onnxruntime values, to a fixpoint."""
    tries = 0

    def fails(m, f):
        nonlocal tries
        tries += 1
        return signature(check(m, f, workdir)) == status

    def with_outputs(m, names):
        out = onnx.ModelProto()
        out.CopyFrom(m)
        vis = {o.name: o for o in m.graph.output}
        del out.graph.output[:]
        out.graph.output.extend(vis.get(n) or h.make_empty_tensor_value_info(n) for n in names)
        return _prune(out)

    changed = True
    while changed and tries < budget:
        changed = False
        if len(model.graph.output) > 1:
            for o in [o.name for o in model.graph.output]:
                m = with_outputs(model, [o])
                if fails(m, {k: v for k, v in feeds.items() if k in {i.name for i in m.graph.input}}):
                    model, changed = m, True
                    feeds = {k: v for k, v in feeds.items() if k in {i.name for i in model.graph.input}}
                    break
        values = _intermediates(model, feeds)
        outs = {o.name for o in model.graph.output}
        for n in list(model.graph.node):
            if tries >= budget:
                break
            for name in [o for o in n.output if o and o not in outs and o in values]:
                v = values[name]
                for symbolic in (False, True):
                    m = _cut(model, name, v, symbolic)
                    if m is None:
                        continue
                    f = {**{k: x for k, x in feeds.items()}, name: v}
                    f = {i.name: f[i.name] for i in m.graph.input}
                    if fails(m, f):
                        model, feeds, changed = m, f, True
                        break
                if changed:
                    break
            if changed:
                break
        if not changed:  # drop a node whose output has its input's type
            for n in list(model.graph.node):
                if not n.input or not n.output[0] or n.output[0] in outs or tries >= budget:
                    continue
                m = _bypass(model, n)
                if m is not None and fails(m, {i.name: feeds[i.name] for i in m.graph.input}):
                    model, changed = m, True
                    feeds = {i.name: feeds[i.name] for i in model.graph.input}
                    break
    return model, feeds


def signature(o: Outcome) -> str:
    """What a shrink keeps: the class, and the kind of difference, the error, or the exception."""
    if o.status == WRONG:
        return f"{o.status}: {next((k for k in ('shape', 'dtype', 'outputs') if k in o.reason), 'values')}"
    if o.status == TRACEBACK:
        return f"{o.status}: {o.reason.split(':')[0]}: {o.reason.split(':')[1] if ':' in o.reason else ''}"
    if o.status == COMPILE:
        return f"{o.status}: {o.reason}"
    return o.status


def _cut(model, name, value, symbolic):
    if value.dtype not in (np.float32, np.float64) or (value.ndim == 0 and symbolic):
        return None
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = [n for n in out.graph.node if name not in n.output]
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    dims = ["N" if symbolic and i == 0 else d for i, d in enumerate(value.shape)]
    dt = TP.FLOAT if value.dtype == np.float32 else TP.DOUBLE
    out.graph.input.append(h.make_tensor_value_info(name, dt, dims))
    return _prune(out)


def _bypass(model, node):
    """The model with `node` replaced by its first input, when onnxruntime accepts it and keeps the output shapes."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    src, dst = node.input[0], node.output[0]
    nodes = []
    for n in out.graph.node:
        if n.name == node.name and list(n.output) == list(node.output):
            continue
        for i, x in enumerate(n.input):
            if x == dst:
                n.input[i] = src
        nodes.append(n)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return _prune(out)


# ---- reporting --------------------------------------------------------------------------------------------------


def helper_code(model: onnx.ModelProto) -> str:
    """The model as onnx.helper code (initializers of up to 24 values written out, larger ones seeded random)."""
    g = model.graph
    lines = ["import numpy as np, onnx", "from onnx import TensorProto as TP, helper as h, numpy_helper as nh",
             "rng = np.random.default_rng(0)", "nodes = ["]
    for n in g.node:
        attrs = "".join(f", {a.name}={h.get_attribute_value(a)!r}" for a in n.attribute)
        attrs = attrs.replace("b'", "'")
        lines.append(f"    h.make_node({n.op_type!r}, {list(n.input)!r}, {list(n.output)!r}{attrs}),")
    lines.append("]")
    lines.append("inits = [")
    for i in g.initializer:
        a = nh.to_array(i)
        if a.size <= 24:
            lines.append(f"    nh.from_array(np.array({a.tolist()!r}, np.{a.dtype}), {i.name!r}),")
        else:
            lines.append(f"    nh.from_array(rng.standard_normal({list(a.shape)}).astype(np.{a.dtype}), {i.name!r}),")
    lines.append("]")

    def vi(v):
        t = v.type.tensor_type
        dims = [d.dim_param if d.dim_param else (d.dim_value if d.HasField("dim_value") else None) for d in t.shape.dim]
        return f"h.make_tensor_value_info({v.name!r}, {t.elem_type}, {dims if t.HasField('shape') else None!r})"

    lines.append(f"inputs = [{', '.join(vi(v) for v in g.input)}]")
    lines.append(f"outputs = [{', '.join(vi(v) for v in g.output)}]")
    op = model.opset_import[0].version
    lines.append(f"model = h.make_model(h.make_graph(nodes, 'g', inputs, outputs, inits), "
                 f"opset_imports=[h.make_opsetid('', {op})], ir_version=8)")
    return "\n".join(lines)


def campaign(seed: int, graphs: int, do_shrink=True, progress=None, save: Path | None = None,
             avoid: frozenset[str] = frozenset()):
    outcomes: list[Outcome] = []
    shrunk: dict[int, tuple[onnx.ModelProto, Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="bmc-fuzz-") as d:
        work = Path(d)
        for s in range(seed, seed + graphs):
            o = run_seed(s, work, avoid)
            outcomes.append(o)
            if o.status in (WRONG, TRACEBACK, COMPILE):
                built = generate(s, avoid)
                model = built.model
                if do_shrink:
                    model, feeds = shrink(built.model, built.feeds, signature(o), work)
                    o2 = check(model, feeds, work, s)
                    shrunk[s] = (model, o2)
                if save is not None:
                    save.mkdir(parents=True, exist_ok=True)
                    onnx.save(model, str(save / f"seed{s}.onnx"))
            if progress:
                progress(o)
    return outcomes, shrunk


def report(outcomes: list[Outcome], shrunk) -> str:
    counts = Counter(o.status for o in outcomes)
    lines = [f"{len(outcomes)} graphs: " + ", ".join(f"{c} {counts.get(c, 0)}" for c in CLASSES)]
    reasons = Counter(o.reason for o in outcomes if o.status == REFUSED)
    if reasons:
        lines.append("refusals by reason:")
        lines += [f"  {n:5d}  {r}" for r, n in reasons.most_common()]
    for o in outcomes:
        if o.status in (WRONG, TRACEBACK, COMPILE, INVALID):
            lines.append(f"\n=== seed {o.seed}: {o.status}: {o.reason}")
            if o.seed in shrunk:
                m, o2 = shrunk[o.seed]
                lines.append(f"--- shrunk to {len(m.graph.node)} nodes ({o2.status}: {o2.reason})")
                lines.append(helper_code(m))
                lines.append("--- imported .bm")
                lines.append(o2.source or o.source)
                if o2.status == TRACEBACK:
                    lines.append(o2.detail[-1500:])
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--graphs", type=int, default=100)
    p.add_argument("--no-shrink", action="store_true")
    p.add_argument("--show", action="store_true", help="print each graph's helper code and imported text")
    p.add_argument("--save", type=Path, help="save the (shrunk) failing graphs here")
    p.add_argument("--avoid", default="", help=f"comma-separated features not to generate: {', '.join(AVOIDABLE)}")
    args = p.parse_args(argv)
    avoid = frozenset(a for a in args.avoid.split(",") if a)
    if avoid - set(AVOIDABLE):
        p.error(f"--avoid takes {', '.join(AVOIDABLE)}")
    start = time.perf_counter()

    def progress(o: Outcome):
        if args.show:
            print(f"--- seed {o.seed}: {o.status} {o.reason}\n{helper_code(generate(o.seed, avoid).model)}\n{o.source}")
        elif o.status not in (PASS, REFUSED):
            print(f"seed {o.seed}: {o.status}: {o.reason}", flush=True)

    outcomes, shrunk = campaign(args.seed, args.graphs, not args.no_shrink, progress, args.save, avoid)
    print(report(outcomes, shrunk))
    print(f"{time.perf_counter() - start:.1f} s")
    return 1 if any(o.status in (WRONG, TRACEBACK, COMPILE, INVALID) for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
