"""The `.bm` elementwise functions (`exp`, `tanh`, ...: every unary op with `builtin`), one row each: where its
operand is drawn and how PyTorch computes it.

tests/test_gradients.py checks each differentiable row's gradient against finite differences in float64, and the
random programs of tests/differential compare bmc with the row's PyTorch formula. A new unary builtin is one row
here; tests/test_gradients.py fails until it has one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bmc import ops

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the gradient checks need no PyTorch; only the random programs call the formulas
    torch = F = None

DOMAINS = ("real", "wide", "positive", "nonzero")


@dataclass(frozen=True)
class Row:
    op: type[ops.Op]
    torch: Callable[[Any], Any]  # PyTorch's formula, in the dtype of its operand
    # where x is drawn: "real" (standard normal), "wide" (3 times that: saturating ops), "positive" (x > 0; random
    # programs feed abs(x) + 0.5), "nonzero" (|x| >= 0.2: a kink or jump at 0 stays out of finite differences)
    domain: str = "real"
    scale: Callable[[float], float] = float  # how large y gets when |x| is up to s
    max_scale: float = math.inf  # the largest |x| random programs feed it (exp overflows f32 past 88)
    positive: bool = False  # y > 0 for every x of the domain
    note: str = ""  # what the gradient case checks besides the rule
    # the op's attributes, which are the `.bm` function's keyword arguments too (clip's min and max)
    attrs: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.op.name

    def instance(self) -> ops.Op:
        return self.op(**self.attrs)

    def call(self, operand: str) -> str:
        """The `.bm` call of the function on `operand`, with the row's attributes."""
        return f"{self.name}({', '.join([operand, *(f'{k} = {v!r}' for k, v in self.attrs.items())])})"


def one(_: float) -> float:
    return 1.0


ROWS = [
    Row(ops.Exp, lambda t: torch.exp(t), scale=lambda s: math.exp(min(s, 80.0)), max_scale=3.0, positive=True),
    Row(ops.Log, lambda t: torch.log(t), "positive", scale=lambda s: s + 3),
    Row(ops.Sqrt, lambda t: torch.sqrt(t), "positive", scale=lambda s: s + 3, positive=True),
    Row(ops.Tanh, lambda t: torch.tanh(t), scale=one),
    Row(ops.Sigmoid, lambda t: torch.sigmoid(t), "wide", scale=one, positive=True),
    Row(ops.Relu, lambda t: torch.relu(t), "nonzero"),
    Row(ops.Gelu, lambda t: F.gelu(t, approximate="tanh"), "wide", note="through GeluGrad"),
    Row(ops.Abs, lambda t: torch.abs(t), "nonzero"),
    Row(ops.Sign, lambda t: torch.sign(t), "nonzero", scale=one),
    Row(ops.LeakyRelu, lambda t: F.leaky_relu(t, 0.2), "nonzero", attrs={"alpha": 0.2}),
    Row(ops.HardSigmoid, lambda t: torch.clamp(0.2 * t + 0.5, 0.0, 1.0), "wide", scale=one),
    Row(ops.HardSwish, lambda t: F.hardswish(t), "wide"),
    Row(ops.Clip, lambda t: torch.clamp(t, -0.5, 1.0), "wide", scale=lambda s: min(s, 1.0),
        attrs={"min": -0.5, "max": 1.0}),
    Row(ops.Erf, lambda t: torch.erf(t), scale=one),
]
assert all(r.domain in DOMAINS for r in ROWS)
BY_NAME = {r.name: r for r in ROWS}
