"""Optimizer updates written as IR, so the update is part of the one train-step graph every backend compiles.

Each optimizer declares the state it keeps per parameter (and globally), then emits the update from the parameter,
its gradient, its state and the learning rate (a scalar graph input, so schedules need no recompilation).
"""

from __future__ import annotations

from dataclasses import dataclass

from bmc.ir.graph import Builder, Value
from bmc.ir.types import TensorType, scalar
from bmc.ops import emit as E
from bmc.ops.elementwise import Pow, Sqrt
from bmc.train.config import OptimizerConfig


@dataclass(frozen=True)
class StateSpec:
    name: str  # e.g. "adam.m/h.W" or "adam.t"
    type: TensorType


class Optimizer:
    def __init__(self, config: OptimizerConfig):
        self.config = config
        self.args = config.args

    def state(self, params: list[Value]) -> list[StateSpec]:
        return []

    def update(self, b: Builder, params: list[Value], grads: dict[Value, Value], state: dict[str, Value],
               lr: Value) -> tuple[dict[Value, Value], dict[str, Value]]:
        raise NotImplementedError

    def start(self, b: Builder, p: Value, lr: Value) -> Value:
        """The value the step is taken from: the parameter itself (AdamW first decays it)."""
        return p


def at(b: Builder, v: Value, p: Value) -> Value:
    """A scalar of the step (the learning rate, a bias correction) at parameter p's precision: a model may mix f32
    and f64 parameters, and the step's scalars have the loss's dtype."""
    return E.cast(b, v, p.type.dtype)


class GradientDescent(Optimizer):
    """p <- p - lr g (full-batch gradient descent when the batch is the whole set)."""

    def update(self, b, params, grads, state, lr):
        new_params = {p: E.sub(b, p, E.mul(b, at(b, lr, p), grads[p])) for p in params}
        for p, v in new_params.items():
            v.name = f"{p.name}.new"
        return new_params, {}


class SGD(Optimizer):
    """Momentum SGD as in PyTorch: v <- mu v + g; p <- p - lr v (Nesterov: p <- p - lr (g + mu v))."""

    def state(self, params):
        if float(self.args["momentum"]) == 0:
            return []
        return [StateSpec(f"sgd.velocity/{p.name}", p.type) for p in params]

    def update(self, b, params, grads, state, lr):
        mu = float(self.args["momentum"])
        if mu == 0:
            return GradientDescent(self.config).update(b, params, grads, state, lr)
        new_params, new_state = {}, {}
        for p in params:
            g = grads[p]
            v = E.add(b, E.mul(b, E.like(b, mu, p), state[f"sgd.velocity/{p.name}"]), g)
            step = E.add(b, g, E.mul(b, E.like(b, mu, p), v)) if self.args["nesterov"] else v
            new_params[p] = E.sub(b, p, E.mul(b, at(b, lr, p), step))
            v.name, new_params[p].name = f"{p.name}.velocity", f"{p.name}.new"
            new_state[f"sgd.velocity/{p.name}"] = v
        return new_params, new_state


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, in PyTorch's form: p <- p - lr m^ / (sqrt(v^) + eps)."""

    def state(self, params):
        specs = [StateSpec("adam.t", scalar("f32"))]  # the step count; retyped with the build's precision
        for p in params:
            specs += [StateSpec(f"adam.m/{p.name}", p.type), StateSpec(f"adam.v/{p.name}", p.type)]
        return specs

    def update(self, b, params, grads, state, lr):
        b1, b2, eps = float(self.args["beta1"]), float(self.args["beta2"]), float(self.args["eps"])
        t = E.add(b, state["adam.t"], E.like(b, 1.0, state["adam.t"]))
        # bias corrections, once per step for all parameters, in f64 as PyTorch computes them (in float32,
        # 1 - 0.999^t keeps only about four digits)
        t64 = E.cast(b, t, "f64")
        one = E.like(b, 1.0, t64)
        c1 = E.sub(b, one, b.emit(Pow(), E.like(b, b1, t64), t64))
        c2 = E.sub(b, one, b.emit(Pow(), E.like(b, b2, t64), t64))
        step = E.div(b, E.cast(b, lr, "f64"), c1)
        new_params, new_state = {}, {"adam.t": t}
        for p in params:
            g = grads[p]
            m = E.add(b, E.mul(b, E.like(b, b1, p), state[f"adam.m/{p.name}"]),
                      E.mul(b, E.like(b, _complement(b1), p), g))
            v = E.add(b, E.mul(b, E.like(b, b2, p), state[f"adam.v/{p.name}"]),
                      E.mul(b, E.like(b, _complement(b2), p), E.mul(b, g, g)))
            denom = E.add(b, b.emit(Sqrt(), E.div(b, v, at(b, c2, p))), E.like(b, eps, p))
            new_params[p] = E.sub(b, self.start(b, p, lr), E.mul(b, at(b, step, p), E.div(b, m, denom)))
            m.name, v.name, new_params[p].name = f"{p.name}.m", f"{p.name}.v", f"{p.name}.new"
            new_state[f"adam.m/{p.name}"], new_state[f"adam.v/{p.name}"] = m, v
        return new_params, new_state


def _complement(beta: float) -> float:
    """1 - beta without binary noise in the generated code (0.1, not 0.09999999999999998)."""
    return float(f"{1.0 - beta:.12g}")


class AdamW(Adam):
    """Adam with decoupled weight decay: p <- p (1 - lr wd), then the Adam step (as PyTorch's AdamW). Only weights
    eligible for decay (matrices and kernels, not biases or normalization scales) decay."""

    def __init__(self, config: OptimizerConfig, decay: set):
        super().__init__(config)
        self.decay = decay

    def start(self, b, p, lr):
        wd = float(self.args["weight_decay"])
        if not wd or p not in self.decay:
            return p
        return E.mul(b, p, E.sub(b, E.like(b, 1.0, p), E.mul(b, at(b, lr, p), E.like(b, wd, p))))


OPTIMIZER_CLASSES = {"gd": GradientDescent, "sgd": SGD, "adam": Adam, "adamw": AdamW}


def make_optimizer(config: OptimizerConfig, decay: set | None = None) -> Optimizer:
    if config.kind == "adamw":
        return AdamW(config, decay or set())
    return OPTIMIZER_CLASSES[config.kind](config)
