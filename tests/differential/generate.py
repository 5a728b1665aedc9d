"""The hypothesis strategy that draws whole programs: inputs, a few statements from the catalog, a loss, outputs and
a train block."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from tests.differential import catalog
from tests.differential.catalog import Gen, draw_entry
from tests.differential.program import Program, Stmt, Val

INPUTS = ("flat", "image", "sequence", "tokens", "grid")


def _inputs(g: Gen) -> list[Val]:
    kind = g.choice(INPUTS)
    size = g.size
    if kind == "flat":
        x = Val("x", "f32", ("N", size() + 1))
    elif kind == "image":
        x = Val("x", "f32", ("N", size(), g.draw(st.integers(2, 5)), g.draw(st.integers(2, 5))))
    elif kind == "sequence":
        x = Val("x", "f32", ("N", g.choice(["T", size()]), size()))
    elif kind == "tokens":
        x = Val("x", g.choice(["i64", "i32"]), ("N", g.choice(["T", size()])), ids=g.draw(st.integers(2, 6)))
    else:
        d = size()
        x = Val("x", "f32", ("N", d, d if g.flag(0.7) else size()))
    inputs = [x]
    extra = g.choice(["none", "none", "float", "f64", "mask"])
    if extra == "float":
        inputs.append(Val("x2", "f32", ("N", *([d for d in x.shape[1:] if isinstance(d, int)][-1:] or [size()]))))
    elif extra == "f64":
        inputs.append(Val("x2", "f64", ("N", size())))
    elif extra == "mask":
        inputs.append(Val("mask", "bool", x.shape if x.is_float else ("N", size())))
    return inputs


def _loss(text: str, compute, kinds: tuple[str, ...]) -> Stmt:
    return Stmt("loss", text, Val("loss", "f32", ()), compute, kinds)


def _plain(g: Gen) -> Stmt:
    """A plain reduction of any float value."""
    v = g.pick(lambda v: v.is_float and v.dtype == "f32") or g.pick(catalog.floats)
    if v is None:  # only integer values: embed them first
        v = catalog.embedding(g)
    form = g.choice(["mean_square", "sum_abs", "mean"])
    text = {"mean_square": f"mean({v.name} * {v.name})", "sum_abs": f"0.1 * sum(abs({v.name}))",
            "mean": f"mean({v.name})"}[form]
    fn = {"mean_square": lambda t: torch.mean(t * t), "sum_abs": lambda t: 0.1 * torch.sum(torch.abs(t)),
          "mean": torch.mean}[form]
    if v.dtype == "f64":
        text = f"cast({text}, f32)"
    return _loss(text, lambda c: fn(c.v(v.name)).to(c.torch_dtype("f32")), ("loss:plain",))


def _logits(g: Gen, z: Val, classes: int) -> Val:
    """dense(z, classes) on the last axis, after flattening an image or a grid to [N, features]."""
    if z.rank > 2 and not ((z.rank == 3 and z.shape[1] in ("T",)) or g.flag(0.3)):
        z = catalog.stmt(g, "f", f"flatten({z.name})", Val("", z.dtype, ("N", math.prod(z.shape[1:])), z.scale),
                         lambda c, n=z.name: c.v(n).flatten(1), ["flatten"])
    return catalog.stmt(g, "logits", f"dense({z.name}, {classes})", Val("", z.dtype, (*z.shape[:-1], classes), 2),
                        lambda c, n=z.name: c.v(n) @ c.p("W") + c.p("b"), ["dense"],
                        [catalog.Param("W", True), catalog.Param("b", False)])


def _head(g: Gen, program_targets: list[Val]) -> Stmt:
    """The loss: a real loss on a dense head over the latest batched value (every position of a sequence for
    cross-entropy over [N, T, classes]), or a plain reduction; sometimes with an L1/L2 penalty on a parameter."""
    kind = g.choice(["ce", "ce", "ce_prob", "bce", "mse", "mse_column", "plain"])
    z = g.pick(lambda v: v.is_float and v.rank >= 2 and v.shape[0] == "N" and all(
        isinstance(d, int) or (i == 1 and v.rank == 3 and d == "T") for i, d in enumerate(v.shape[1:], 1))
        and isinstance(v.shape[-1], int))
    if kind == "plain" or z is None:
        return _penalized(g, _plain(g))
    classes = g.draw(st.integers(2, 4)) if kind.startswith("ce") else 1 if kind == "mse_column" else g.size()
    if kind not in ("ce", "ce_prob") and z.rank == 3 and not isinstance(z.shape[1], int):
        kind = "ce"  # a symbolic length: the sequence head
    logits = _logits(g, z, classes)
    wide = logits.dtype == "f64"
    cast = (lambda t, c: t.to(c.torch_dtype("f32"))) if wide else (lambda t, c: t)
    wrap = (lambda text: f"cast({text}, f32)") if wide else (lambda text: text)
    n, shape = logits.name, logits.shape
    if kind == "ce":
        y = Val("label", "i64", shape[:-1], ids=classes)
        program_targets.append(y)
        flat = (lambda t: t.reshape(-1, classes), lambda t: t.reshape(-1))
        loss = _loss(wrap(f"cross_entropy({n}, label)"), lambda c: cast(F.cross_entropy(
            flat[0](c.v(n)), flat[1](c.v("label")).long()), c), ("cross_entropy",) + (
            ("cross_entropy:sequence",) if len(shape) == 3 else ()))
    elif kind == "ce_prob":
        program_targets.append(Val("soft", logits.dtype, shape, positive=True))
        loss = _loss(wrap(f"cross_entropy({n}, soft)"), lambda c: cast(F.cross_entropy(
            c.v(n).reshape(-1, classes), c.v("soft").reshape(-1, classes)), c), ("cross_entropy:probabilities",))
    elif kind == "bce":
        integer = g.flag(0.3)
        program_targets.append(Val("yes", "i64" if integer else logits.dtype, shape, ids=2))
        loss = _loss(wrap(f"binary_cross_entropy({n}, yes)"), lambda c: cast(F.binary_cross_entropy_with_logits(
            c.v(n), c.v("yes").to(c.v(n).dtype)), c), ("binary_cross_entropy",))
    elif kind == "mse_column" and len(shape) == 2:  # predictions [N, 1] against targets [N]
        program_targets.append(Val("value", logits.dtype, ("N",)))
        loss = _loss(wrap(f"mse({n}, value)"), lambda c: cast(F.mse_loss(c.v(n)[:, 0], c.v("value")), c), ("mse",))
    else:
        program_targets.append(Val("value", logits.dtype, shape))
        loss = _loss(wrap(f"mse({n}, value)"), lambda c: cast(F.mse_loss(c.v(n), c.v("value")), c), ("mse",))
    return _penalized(g, loss)


def _penalized(g: Gen, loss: Stmt) -> Stmt:
    """loss + 0.01 * l2(p) (or l1) for an explicit model parameter p, sometimes."""
    explicit = {s.name for s in g.stmts if s.decl}
    p = g.pick(lambda v: v.name in explicit and v.dtype == "f32", recent=False)
    if p is None or g.flag(0.5):
        return loss
    which = g.choice(["l1", "l2"])
    fn = (lambda t: t.abs().sum()) if which == "l1" else (lambda t: (t * t).sum())
    inner = loss.compute
    return _loss(f"{loss.expr} + 0.01 * {which}({p.name})", lambda c: inner(c) + 0.01 * fn(c.v(p.name)),
                 (*loss.kinds, which))


OPTIMIZERS = {
    "gd": lambda g: {"lr": 0.05},
    "sgd": lambda g: {"lr": 0.05, "momentum": g.choice([0.0, 0.9]), "nesterov": g.flag(0.3)},
    "adam": lambda g: {"lr": 0.01, "beta1": g.choice([0.9, 0.5]), "beta2": g.choice([0.999, 0.9]),
                       "eps": g.choice([1e-7, 1e-3])},
    "adamw": lambda g: {"lr": 0.01, "weight_decay": g.choice([0.01, 0.1]), "eps": 1e-7},
}


@st.composite
def programs(draw, max_statements: int = 6) -> Program:
    g = Gen(draw)
    inputs = _inputs(g)
    g.env = list(inputs)
    for _ in range(draw(st.integers(1, max_statements))):
        for _attempt in range(6):
            if draw_entry(g) is not None:
                break
    targets: list[Val] = []
    loss = _head(g, targets)
    batched = [s.name for s in g.stmts if s.out.batched and not s.decl]
    outputs = [batched[-1]] if batched else []
    extra = [s.name for s in g.stmts if s.name not in outputs]
    if extra and draw(st.booleans()):
        outputs.append(g.choice(extra))
    optimizer = g.choice(sorted(OPTIMIZERS))
    penalties = {}
    if g.flag(0.25):
        penalties[g.choice(["l1", "l2"])] = 0.01
    clip = g.choice([None, None, None, 1.0, 0.05])
    order = list(draw(st.permutations(range(len(g.stmts)))))
    return Program(inputs, targets, g.stmts, outputs, loss, g.layers, optimizer, OPTIMIZERS[optimizer](g), penalties,
                   clip, order, batch=draw(st.integers(1, 5)), length=draw(st.integers(1, 4)))
