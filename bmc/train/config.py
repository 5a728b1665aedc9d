"""The `train` block: optimizer, epochs, batch, seed, metrics, data and penalties, with command-line overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bmc.diagnostics import BmcError, Span, UsageError, suggest
from bmc.frontend.domains import (
    COUNT,
    FINITE,
    FRACTION,
    MAX_SIZE,
    NON_NEGATIVE,
    POSITIVE,
    SEED,
    SIZE,
    Number,
)
from bmc.syntax import ast
from bmc.train.augment import Augment
from bmc.train.checkpoint import Policy
from bmc.train.freeze import Pattern, from_flag
from bmc.train.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS
from bmc.train.schedules import SCHEDULES, Schedule

# the values of every setting, checked where the setting is written (and for the command-line flags)
DOMAINS: dict[str, Number] = {
    "lr": POSITIVE, "momentum": FRACTION, "beta1": FRACTION, "beta2": FRACTION, "eps": POSITIVE,
    "weight_decay": NON_NEGATIVE, "epochs": COUNT, "steps": COUNT, "batch": SIZE, "seed": SEED, "sequence": SIZE,
    "l1": NON_NEGATIVE, "l2": NON_NEGATIVE, "clip": NON_NEGATIVE, "validation": FRACTION,
    "warmup": Number(0, integer=True), "every": COUNT, "gamma": NON_NEGATIVE, "final": NON_NEGATIVE,
    "shift": Number(1, MAX_SIZE, integer=True), "mean": FINITE, "std": POSITIVE,
    "keep": COUNT, "patience": COUNT, "min_delta": NON_NEGATIVE,
}
# the epoch-log columns early stopping and checkpoints may watch (bmc/train/loop.py:EpochLog.columns)
SCORES = ("loss", *CLASSIFICATION_METRICS, *REGRESSION_METRICS, "perplexity")
COLUMNS = (*SCORES, *(f"val_{k}" for k in SCORES), *(f"test_{k}" for k in SCORES))
OPTIMIZERS: dict[str, dict[str, float | bool]] = {
    # full-batch gradient descent: plain steps, and the batch defaults to the whole training set
    "gd": {"lr": 0.01},
    "sgd": {"lr": 0.01, "momentum": 0.0, "nesterov": False},
    # Keras' defaults (epsilon 1e-7), the seed text's worked example
    "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7},
    # Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's defaults; decays weights, not biases or norms
    "adamw": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01},
}


@dataclass
class OptimizerConfig:
    kind: str = "adam"
    args: dict[str, float | bool] = field(default_factory=lambda: dict(OPTIMIZERS["adam"]))

    @property
    def lr(self) -> float:
        return float(self.args["lr"])

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(f'{k}={v}' for k, v in self.args.items())})"


@dataclass(frozen=True)
class EarlyStopSpec:
    patience: int
    on: str = "val_loss"
    min_delta: float = 0.0

    def __str__(self) -> str:
        return f"patience {self.patience} on {self.on}" + (f", min_delta {self.min_delta:g}" if self.min_delta else "")


@dataclass
class TrainConfig:
    data: str = "digits"
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    epochs: int = 5
    batch: int | None = 64  # None: the whole training set (full-batch)
    seed: int = 0
    metrics: tuple[str, ...] = ("accuracy",)
    l1: float = 0.0
    l2: float = 0.0
    steps: int | None = None  # a step budget: train this many steps (epochs then only bound the data passes)
    schedule: Schedule = field(default_factory=Schedule)
    clip: float | None = None  # clip the gradients' global norm to this
    validation: float = 0.0  # hold out this fraction of the training set (text: of the first file) for validation
    normalize: bool | tuple[float, float] = False  # standardize inputs: true (train mean/std) or (mean, std)
    augment: Augment = field(default_factory=Augment)
    sequence: int | None = None  # the window length of text batches (default: the model's `context`)
    checkpoint: Policy | None = None  # checkpoints: how often, how many to keep
    early_stop: EarlyStopSpec | None = None
    test_every_epoch: bool = False  # score the test set every epoch, not only after the last
    target: str | None = None  # a CSV file's target column
    freeze: tuple[Pattern, ...] = ()  # the parameters training leaves as they are (bmc/train/freeze.py)
    spans: dict[str, Span] = field(default_factory=dict)

    def override(self, **values: Any) -> TrainConfig:
        """Command-line flags win over the train block. None means 'not given'. `optimizer` starts from that
        optimizer's defaults; `lr` then sets its learning rate (in either order of the flags)."""
        out = dataclasses.replace(self, optimizer=OptimizerConfig(self.optimizer.kind, dict(self.optimizer.args)))
        if values.get("optimizer") is not None:
            if values["optimizer"] not in OPTIMIZERS:
                raise UsageError(f"unknown optimizer '{values['optimizer']}' (known: {', '.join(OPTIMIZERS)})")
            out.optimizer = OptimizerConfig(values["optimizer"], dict(OPTIMIZERS[values["optimizer"]]))
        for key, value in values.items():
            if value is None or key == "optimizer":
                continue
            if key in DOMAINS:
                value = _flag(key, value)
            if key == "lr":
                out.optimizer.args["lr"] = float(value)
            elif key == "freeze":
                out.freeze = from_flag(value)
            else:
                setattr(out, key, value)
        return out


def _flag(key: str, value: Any) -> Any:
    try:
        return DOMAINS[key].check(value, f"--{key}", None)
    except BmcError as e:
        raise UsageError(e.message) from None


SETTINGS = ("data", "optimizer", "epochs", "steps", "batch", "seed", "metrics", "l1", "l2", "schedule", "clip",
            "validation", "normalize", "augment", "sequence", "checkpoint", "early_stop", "test", "target", "freeze")


def parse_train_block(block: ast.TrainDef | None) -> TrainConfig:
    config = TrainConfig()
    if block is None:
        return config
    seen: dict[str, Span] = {}
    for s in block.settings:
        if s.key not in SETTINGS:
            raise BmcError(f"unknown training setting '{s.key}'", s.key_span,
                           notes=suggest(s.key, list(SETTINGS)) or (f"settings: {', '.join(SETTINGS)}",))
        if s.key in seen:
            raise BmcError(f"'{s.key}' is set twice", s.key_span, notes=(f"first set at {seen[s.key]}",))
        seen[s.key] = s.key_span
        config.spans[s.key] = s.span
        if s.key == "metrics":
            config.metrics = tuple(_metric(v) for v in s.values)
            continue
        if s.key == "augment":
            config.augment = _augment(s.values)
            continue
        if s.key == "freeze":
            config.freeze = tuple(_freeze_pattern(v) for v in s.values)
            continue
        if s.key == "normalize" and len(s.values) == 2:
            config.normalize = (float(_number(s.values[0], "mean", "normalize's mean")),
                                float(_number(s.values[1], "std", "normalize's std")))
            continue
        if len(s.values) != 1:
            raise BmcError(f"'{s.key}' takes one value", s.values[1].span)
        v = s.values[0]
        if s.key == "data":
            config.data = _data(v)
        elif s.key == "optimizer":
            config.optimizer = _optimizer(v)
        elif s.key == "batch":
            if isinstance(v, ast.Name) and v.id == "full":
                config.batch = None
            else:
                config.batch = _number(v, "batch")
        elif s.key in ("epochs", "seed", "steps", "sequence"):
            setattr(config, s.key, _number(v, s.key))
        elif s.key == "schedule":
            config.schedule = _schedule(v)
        elif s.key == "checkpoint":
            config.checkpoint = _checkpoint(v)
        elif s.key == "early_stop":
            config.early_stop = _early_stop(v)
        elif s.key == "target":
            if not isinstance(v, ast.Str | ast.Name):
                raise BmcError('target takes the name of a CSV column, e.g. target = "price"', v.span)
            config.target = v.value if isinstance(v, ast.Str) else v.id
        elif s.key == "test":
            if not isinstance(v, ast.Name) or v.id not in ("end", "every_epoch"):
                raise BmcError("test takes end (the test set scored after the last epoch, the default) or "
                               "every_epoch", v.span)
            config.test_every_epoch = v.id == "every_epoch"
        elif s.key == "normalize":
            if not isinstance(v, ast.Name) or v.id not in ("true", "false"):
                raise BmcError("normalize takes true (the training set's mean and std) or two numbers: mean, std",
                               v.span)
            config.normalize = v.id == "true"
        elif s.key == "clip":
            config.clip = float(_number(v, "clip")) or None
        else:
            setattr(config, s.key, float(_number(v, s.key)))
    if config.optimizer.kind == "gd" and "batch" not in seen:
        config.batch = None
    return config


def _number(v: ast.Expr, key: str, what: str | None = None) -> int | float:
    """A setting's number (a literal, possibly negated), checked against the setting's domain at its span."""
    sign, e = (-1, v.operand) if isinstance(v, ast.Neg) else (1, v)
    if not isinstance(e, ast.Num):
        raise BmcError(f"'{what or key}' must be a number", v.span)
    return DOMAINS[key].check(sign * e.value, f"'{what or key}'", v.span)


def _data(v: ast.Expr) -> str:
    if isinstance(v, ast.Name | ast.Str):
        return v.id if isinstance(v, ast.Name) else v.value
    raise BmcError('data must be a data-set name (digits, fashion_mnist) or a path in quotes ("data/my.npz")', v.span)


def _schedule(v: ast.Expr) -> Schedule:
    name, kwargs = (v.id, ()) if isinstance(v, ast.Name) else ((v.func, v.kwargs) if isinstance(v, ast.Call)
                                                                else (None, ()))
    if name not in SCHEDULES:
        raise BmcError(f"unknown schedule '{name or v.span.text()}'", v.span,
                       notes=("schedules: " + ", ".join(f"{k}({', '.join(a)})" for k, a in SCHEDULES.items()),))
    if isinstance(v, ast.Call) and v.args:
        raise BmcError(f"{name}() takes keyword settings only, e.g. {name}(warmup = 100)", v.args[0].span)
    args: dict[str, Any] = {}
    for kw in kwargs:
        if kw.name not in SCHEDULES[name]:
            raise BmcError(f"{name}() has no setting '{kw.name}'", kw.span,
                           notes=(f"settings: {', '.join(SCHEDULES[name])}",))
        args[kw.name] = _number(kw.value, kw.name)
    return Schedule(name, **args)


def _call(v: ast.Expr, name: str, example: str) -> ast.Call:
    if isinstance(v, ast.Name) and v.id == name:
        return ast.Call(name, v.span, (), (), v.span)
    if not isinstance(v, ast.Call) or v.func != name:
        written = v.func if isinstance(v, ast.Call) else v.id if isinstance(v, ast.Name) else ""
        raise BmcError(f"expected {example}", v.span, notes=suggest(written, [name]) if written else ())
    return v


def _kwargs(call: ast.Call, allowed: tuple[str, ...]) -> dict[str, ast.Expr]:
    out = {}
    for kw in call.kwargs:
        if kw.name not in allowed:
            raise BmcError(f"{call.func}() has no setting '{kw.name}'", kw.span,
                           notes=suggest(kw.name, list(allowed)) or (f"settings: {', '.join(allowed)}",))
        out[kw.name] = kw.value
    return out


def column(v: ast.Expr, what: str) -> str:
    """An epoch-log column (val_loss, accuracy, ...), checked where it is written."""
    if not isinstance(v, ast.Name) or v.id not in COLUMNS:
        name = v.id if isinstance(v, ast.Name) else v.span.text()
        raise BmcError(f"{what} watches '{name}', which is not a quantity training measures", v.span,
                       notes=suggest(name, list(COLUMNS)) or ("e.g. val_loss, val_accuracy, loss, accuracy",))
    return v.id


def _checkpoint(v: ast.Expr) -> Policy:
    example = "checkpoint = every(1) (epochs), every(500, unit = steps), with keep = 3 and best = val_loss"
    call = _call(v, "every", example)
    if len(call.args) > 1:
        raise BmcError("every() takes the count as its only positional argument", call.args[1].span)
    kw = _kwargs(call, ("unit", "keep", "best"))
    every = _number(call.args[0], "every") if call.args else 1
    unit = "epochs"
    if "unit" in kw:
        u = kw["unit"]
        if not isinstance(u, ast.Name) or u.id not in ("epochs", "steps"):
            raise BmcError("unit takes epochs or steps", u.span)
        unit = u.id
    keep = _number(kw["keep"], "keep") if "keep" in kw else 3
    best = column(kw["best"], "checkpoint's best") if "best" in kw else None
    return Policy(int(every), unit, int(keep), best)


def _early_stop(v: ast.Expr) -> EarlyStopSpec:
    call = _call(v, "patience", "early_stop = patience(5, on = val_loss, min_delta = 0)")
    if len(call.args) != 1:
        raise BmcError("patience() takes the number of epochs without improvement, e.g. patience(5)", call.span)
    kw = _kwargs(call, ("on", "min_delta"))
    on = column(kw["on"], "early_stop") if "on" in kw else "val_loss"
    min_delta = float(_number(kw["min_delta"], "min_delta")) if "min_delta" in kw else 0.0
    return EarlyStopSpec(int(_number(call.args[0], "patience")), on, min_delta)


def _augment(values: tuple[ast.Expr, ...]) -> Augment:
    shift, flip = 0, False
    for v in values:
        if isinstance(v, ast.Name) and v.id == "flip":
            flip = True
        elif isinstance(v, ast.Call) and v.func == "shift" and len(v.args) == 1 and not v.kwargs:
            shift = _number(v.args[0], "shift")
        elif isinstance(v, ast.Name) and v.id == "none":
            continue
        else:
            raise BmcError("augment takes shift(pixels) and/or flip, e.g. augment = shift(2), flip", v.span)
    return Augment(shift, flip)


def _freeze_pattern(v: ast.Expr) -> Pattern:
    """A statement or layer name (`stem`), or a parameter name or glob pattern in quotes (`"layer1.*"`)."""
    if isinstance(v, ast.Name):
        return Pattern(v.id, v.span)
    if isinstance(v, ast.Str) and v.value.strip():
        return Pattern(v.value.strip(), v.span)
    raise BmcError("freeze takes statement names or parameter names and glob patterns in quotes, e.g. "
                   "freeze = stem, \"layer1.*\"", v.span)


def _metric(v: ast.Expr) -> str:
    known = (*CLASSIFICATION_METRICS, *REGRESSION_METRICS, "perplexity")
    if not isinstance(v, ast.Name) or v.id not in known:
        name = v.id if isinstance(v, ast.Name) else "this"
        raise BmcError(f"unknown metric '{name}'", v.span,
                       notes=suggest(name, list(known)) or (f"metrics: {', '.join(known)}",))
    return v.id


def _optimizer(v: ast.Expr) -> OptimizerConfig:
    name, args, kwargs = (v.id, (), ()) if isinstance(v, ast.Name) else (
        (v.func, v.args, v.kwargs) if isinstance(v, ast.Call) else (None, (), ()))
    if name is None:
        raise BmcError("optimizer must be gd(...), sgd(...), adam(...) or adamw(...)", v.span)
    if name not in OPTIMIZERS:
        raise BmcError(f"unknown optimizer '{name}'", v.func_span if isinstance(v, ast.Call) else v.span,
                       notes=suggest(name, list(OPTIMIZERS)) or (f"optimizers: {', '.join(OPTIMIZERS)}",))
    defaults = OPTIMIZERS[name]
    out = dict(defaults)
    if len(args) > 1:
        raise BmcError(f"{name}() takes the learning rate as its only positional argument", args[1].span)
    if args:
        out["lr"] = float(_number(args[0], "lr"))
    for kw in kwargs:
        if kw.name not in defaults:
            raise BmcError(f"{name}() has no setting '{kw.name}'", kw.span,
                           notes=(f"settings: {', '.join(defaults)}",))
        if isinstance(defaults[kw.name], bool):
            if not isinstance(kw.value, ast.Name) or kw.value.id not in ("true", "false"):
                raise BmcError(f"'{kw.name}' must be true or false", kw.value.span)
            out[kw.name] = kw.value.id == "true"
        else:
            out[kw.name] = float(_number(kw.value, kw.name))
    return OptimizerConfig(name, out)
