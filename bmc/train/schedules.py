"""Learning-rate schedules, evaluated per step by the training loop (the train step takes `lr` as an input, so a
schedule never needs recompilation)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """kind: constant, cosine (after a linear warm-up, down to final * lr), or step (lr *= gamma every `every`)."""

    kind: str = "constant"
    warmup: int = 0
    final: float = 0.0
    every: int = 1
    gamma: float = 0.1

    def lr(self, base: float, step: int, total: int) -> float:
        """The learning rate of step `step` (0-based) of `total`."""
        if self.warmup and step < self.warmup:
            return base * (step + 1) / self.warmup
        if self.kind == "cosine":
            span = max(total - self.warmup, 1)
            progress = min((step - self.warmup) / span, 1.0)
            return base * (self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * progress)))
        if self.kind == "step":
            return base * self.gamma ** ((step - self.warmup) // self.every)
        return base

    def __str__(self) -> str:
        if self.kind == "cosine":
            return f"cosine(warmup={self.warmup}, final={self.final:g})"
        if self.kind == "step":
            return f"step(every={self.every}, gamma={self.gamma:g}, warmup={self.warmup})"
        return f"constant(warmup={self.warmup})" if self.warmup else "constant"


SCHEDULES = {
    "constant": {"warmup": 0},
    "cosine": {"warmup": 0, "final": 0.0},
    "step": {"every": 1000, "gamma": 0.1, "warmup": 0},
}
