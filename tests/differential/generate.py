"""The hypothesis strategy that draws whole programs: inputs, a few statements from the catalog, a loss, outputs and
a train block."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from tests.differential import catalog
from tests.differential.catalog import ENTRIES, Gen
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


def _head(g: Gen, program_targets: list[Val]) -> Stmt:
    """The loss: a real loss on a head of the last batched value, or a plain reduction of any value."""
    kind = g.choice(["ce", "ce", "ce_prob", "bce", "mse", "mse_column", "plain"])
    z = g.pick(lambda v: v.is_float and v.rank >= 2 and v.shape[0] == "N" and all(isinstance(d, int) for d in
                                                                                  v.shape[1:]))
    if kind == "plain" or z is None:
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
        return Stmt("loss", text, Val("loss", "f32", ()), lambda c: fn(c.v(v.name)).to(c.torch_dtype("f32")),
                    ("loss:plain",))
    flat = z if z.rank == 2 else catalog.stmt(g, "f", f"flatten({z.name})",
                                              Val("", z.dtype, ("N", math.prod(z.shape[1:])), z.scale),
                                              lambda c: c.v(z.name).flatten(1), ["flatten"])
    classes = g.draw(st.integers(2, 4)) if kind.startswith("ce") else g.size()
    if kind == "mse_column":
        classes = 1
    logits = catalog.stmt(g, "logits", f"dense({flat.name}, {classes})", Val("", flat.dtype, ("N", classes), 2),
                          lambda c: c.v(flat.name) @ c.p("W") + c.p("b"), ["dense"],
                          [catalog.Param("W", True), catalog.Param("b", False)])
    cast = (lambda t, c: t.to(c.torch_dtype("f32"))) if logits.dtype == "f64" else (lambda t, c: t)
    wrap = (lambda text: f"cast({text}, f32)") if logits.dtype == "f64" else (lambda text: text)
    n = logits.name
    if kind == "ce":
        y = Val("label", "i64", ("N",), ids=classes)
        program_targets.append(y)
        return Stmt("loss", wrap(f"cross_entropy({n}, label)"), Val("loss", "f32", ()),
                    lambda c: cast(F.cross_entropy(c.v(n), c.v("label")), c), ("cross_entropy",))
    if kind == "ce_prob":
        program_targets.append(Val("soft", logits.dtype, ("N", classes), positive=True))
        return Stmt("loss", wrap(f"cross_entropy({n}, soft)"), Val("loss", "f32", ()),
                    lambda c: cast(F.cross_entropy(c.v(n), c.v("soft")), c), ("cross_entropy:probabilities",))
    if kind == "bce":
        integer = g.flag(0.3)
        program_targets.append(Val("yes", "i64" if integer else logits.dtype, ("N", classes), ids=2))
        return Stmt("loss", wrap(f"binary_cross_entropy({n}, yes)"), Val("loss", "f32", ()),
                    lambda c: cast(F.binary_cross_entropy_with_logits(c.v(n), c.v("yes").to(c.v(n).dtype)), c),
                    ("binary_cross_entropy",))
    if kind == "mse_column":  # predictions [N, 1] against targets [N]
        program_targets.append(Val("value", logits.dtype, ("N",)))
        return Stmt("loss", wrap(f"mse({n}, value)"), Val("loss", "f32", ()),
                    lambda c: cast(F.mse_loss(c.v(n)[:, 0], c.v("value")), c), ("mse",))
    program_targets.append(Val("value", logits.dtype, ("N", classes)))
    penalty = g.pick(lambda v: v.name.startswith("p") and v.is_float and v.dtype == logits.dtype and v.rank >= 1
                     and v.name in {s.name for s in g.stmts if s.decl})
    if penalty is not None and g.flag(0.5):
        which = g.choice(["l1", "l2"])
        fn = (lambda t: t.abs().sum()) if which == "l1" else (lambda t: (t * t).sum())
        return Stmt("loss", wrap(f"mse({n}, value) + 0.01 * {which}({penalty.name})"), Val("loss", "f32", ()),
                    lambda c: cast(F.mse_loss(c.v(n), c.v("value")) + 0.01 * fn(c.v(penalty.name)), c),
                    ("mse", which))
    return Stmt("loss", wrap(f"mse({n}, value)"), Val("loss", "f32", ()),
                lambda c: cast(F.mse_loss(c.v(n), c.v("value")), c), ("mse",))


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
            entry = ENTRIES[g.choice(sorted(ENTRIES))]
            if entry(g) is not None:
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
