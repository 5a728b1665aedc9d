"""The `train` block: optimizer, epochs, batch, seed, metrics, data and penalties, with command-line overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bmc.diagnostics import BmcError, Span, UsageError
from bmc.frontend.lower import suggest
from bmc.syntax import ast
from bmc.train.augment import Augment
from bmc.train.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS
from bmc.train.schedules import SCHEDULES, Schedule

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
    spans: dict[str, Span] = field(default_factory=dict)

    def override(self, **values: Any) -> TrainConfig:
        """Command-line flags win over the train block. None means 'not given'."""
        out = dataclasses.replace(self, optimizer=OptimizerConfig(self.optimizer.kind, dict(self.optimizer.args)))
        for key, value in values.items():
            if value is None:
                continue
            if key == "lr":
                if value <= 0:
                    raise UsageError(f"--lr must be positive, not {value}")
                out.optimizer.args["lr"] = float(value)
            elif key == "optimizer":
                if value not in OPTIMIZERS:
                    raise UsageError(f"unknown optimizer '{value}' (known: {', '.join(OPTIMIZERS)})")
                lr = out.optimizer.args.get("lr")
                out.optimizer = OptimizerConfig(value, dict(OPTIMIZERS[value]))
                if lr is not None and "lr" not in values:
                    out.optimizer.args["lr"] = lr
            elif key in ("epochs", "batch", "steps"):
                if value < 1:
                    raise UsageError(f"--{key} must be at least 1, not {value}")
                setattr(out, key, value)
            else:
                setattr(out, key, value)
        return out


SETTINGS = ("data", "optimizer", "epochs", "steps", "batch", "seed", "metrics", "l1", "l2", "schedule", "clip",
            "validation", "normalize", "augment", "sequence")


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
        if s.key == "normalize" and len(s.values) == 2:
            config.normalize = (_number(s.values[0], "normalize's mean"), _number(s.values[1], "normalize's std"))
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
                config.batch = _int(v, "batch", minimum=1)
        elif s.key in ("epochs", "seed", "steps", "sequence"):
            setattr(config, s.key, _int(v, s.key, minimum=0 if s.key == "seed" else 1))
        elif s.key == "schedule":
            config.schedule = _schedule(v)
        elif s.key == "normalize":
            if not isinstance(v, ast.Name) or v.id not in ("true", "false"):
                raise BmcError("normalize takes true (the training set's mean and std) or two numbers: mean, std",
                               v.span)
            config.normalize = v.id == "true"
        elif s.key == "clip":
            config.clip = _number(v, "clip", minimum=0.0) or None
        elif s.key == "validation":
            config.validation = _number(v, "validation", minimum=0.0)
            if config.validation >= 1:
                raise BmcError("validation is a fraction of the training set, less than 1", v.span)
        else:
            setattr(config, s.key, _number(v, s.key, minimum=0.0))
    if config.optimizer.kind == "gd" and "batch" not in seen:
        config.batch = None
    return config


def _int(v: ast.Expr, key: str, minimum: int) -> int:
    if not isinstance(v, ast.Num) or not isinstance(v.value, int) or v.value < minimum:
        raise BmcError(f"'{key}' must be an integer of at least {minimum}, not {v.span.text()}", v.span)
    return v.value


def _number(v: ast.Expr, key: str, minimum: float | None = None) -> float:
    sign = 1
    if isinstance(v, ast.Neg):
        sign, v = -1, v.operand
    if not isinstance(v, ast.Num):
        raise BmcError(f"'{key}' must be a number", v.span)
    value = sign * float(v.value)
    if minimum is not None and value < minimum:
        raise BmcError(f"'{key}' must be at least {minimum:g}", v.span)
    return value


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
        is_int = kw.name in ("warmup", "every")
        args[kw.name] = _int(kw.value, kw.name, minimum=0) if is_int else _number(kw.value, kw.name, minimum=0.0)
    return Schedule(name, **args)


def _augment(values: tuple[ast.Expr, ...]) -> Augment:
    shift, flip = 0, False
    for v in values:
        if isinstance(v, ast.Name) and v.id == "flip":
            flip = True
        elif isinstance(v, ast.Call) and v.func == "shift" and len(v.args) == 1 and not v.kwargs:
            shift = _int(v.args[0], "shift", minimum=1)
        elif isinstance(v, ast.Name) and v.id == "none":
            continue
        else:
            raise BmcError("augment takes shift(pixels) and/or flip, e.g. augment = shift(2), flip", v.span)
    return Augment(shift, flip)


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
        out["lr"] = _number(args[0], "lr", minimum=0.0)
    for kw in kwargs:
        if kw.name not in defaults:
            raise BmcError(f"{name}() has no setting '{kw.name}'", kw.span,
                           notes=(f"settings: {', '.join(defaults)}",))
        if isinstance(defaults[kw.name], bool):
            if not isinstance(kw.value, ast.Name) or kw.value.id not in ("true", "false"):
                raise BmcError(f"'{kw.name}' must be true or false", kw.value.span)
            out[kw.name] = kw.value.id == "true"
        else:
            out[kw.name] = _number(kw.value, kw.name, minimum=0.0)
    if out["lr"] <= 0:
        raise BmcError("the learning rate must be positive", v.span)
    for key in ("beta1", "beta2", "momentum"):
        if key in out and not 0 <= float(out[key]) < 1:
            span = next((kw.value.span for kw in kwargs if kw.name == key), v.span)
            raise BmcError(f"'{key}' must be at least 0 and less than 1, not {float(out[key]):g}", span)
    return OptimizerConfig(name, out)
