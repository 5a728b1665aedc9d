"""The `train` block: optimizer, epochs, batch, seed, metrics, data and penalties, with command-line overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bmc.diagnostics import BmcError, Span, UsageError
from bmc.frontend.lower import suggest
from bmc.syntax import ast
from bmc.train.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

OPTIMIZERS: dict[str, dict[str, float | bool]] = {
    # full-batch gradient descent: plain steps, and the batch defaults to the whole training set
    "gd": {"lr": 0.01},
    "sgd": {"lr": 0.01, "momentum": 0.0, "nesterov": False},
    # Keras' defaults (epsilon 1e-7), the seed text's worked example
    "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7},
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
            elif key in ("epochs", "batch"):
                if value < 1:
                    raise UsageError(f"--{key} must be at least 1, not {value}")
                setattr(out, key, value)
            else:
                setattr(out, key, value)
        return out


SETTINGS = ("data", "optimizer", "epochs", "batch", "seed", "metrics", "l1", "l2")


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
        elif s.key in ("epochs", "seed"):
            setattr(config, s.key, _int(v, s.key, minimum=1 if s.key == "epochs" else 0))
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


def _metric(v: ast.Expr) -> str:
    known = (*CLASSIFICATION_METRICS, *REGRESSION_METRICS)
    if not isinstance(v, ast.Name) or v.id not in known:
        name = v.id if isinstance(v, ast.Name) else "this"
        raise BmcError(f"unknown metric '{name}'", v.span,
                       notes=suggest(name, list(known)) or (f"metrics: {', '.join(known)}",))
    return v.id


def _optimizer(v: ast.Expr) -> OptimizerConfig:
    name, args, kwargs = (v.id, (), ()) if isinstance(v, ast.Name) else (
        (v.func, v.args, v.kwargs) if isinstance(v, ast.Call) else (None, (), ()))
    if name is None:
        raise BmcError("optimizer must be gd(...), sgd(...) or adam(...)", v.span)
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
