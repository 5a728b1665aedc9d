"""Early stopping: stop when a watched quantity has not improved for `patience` epochs, and give back the
parameters of its best epoch (Keras' `EarlyStopping(restore_best_weights=True)`).

The watched quantity is a column of the epoch log (bmc/train/loop.py:EpochLog.columns): `val_loss`,
`val_accuracy`, `loss`, `accuracy`, ... A name ending in `loss`, `mse`, `mae` or `perplexity` improves downwards,
any other upwards. Its state (best value, best epoch, epochs since, the best parameters) travels in checkpoints, so
a resumed run stops where the uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bmc.diagnostics import DataError

LOWER_IS_BETTER = ("loss", "mse", "mae", "perplexity")


def lower_is_better(name: str) -> bool:
    return name.endswith(LOWER_IS_BETTER)


@dataclass
class EarlyStop:
    patience: int
    on: str = "val_loss"
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int = 0
    waited: int = 0
    best_params: dict[str, np.ndarray] = field(default_factory=dict)
    best_state: dict[str, np.ndarray] = field(default_factory=dict)

    def value(self, columns: dict[str, float]) -> float:
        if self.on not in columns:
            known = ", ".join(sorted(columns))
            raise DataError(f"early stopping watches '{self.on}', which this run does not measure (it measures "
                            f"{known})", notes=("val_* needs a validation split: validation = 0.1",))
        return float(columns[self.on])

    def improved(self, value: float) -> bool:
        if self.best is None:
            return math.isfinite(value)
        if lower_is_better(self.on):
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, epoch: int, columns: dict[str, float], values) -> bool:
        """Record an epoch's log; True when training should stop. `values()` gives the parameters and state as
        they are now (copied when they improve)."""
        value = self.value(columns)
        if self.improved(value):
            params, state = values()
            self.best, self.best_epoch, self.waited = value, epoch, 0
            self.best_params = {k: np.array(v) for k, v in params.items()}
            self.best_state = {k: np.array(v) for k, v in state.items()}
            return False
        self.waited += 1
        return self.waited >= self.patience

    def to_json(self) -> dict:
        return {"patience": self.patience, "on": self.on, "min_delta": self.min_delta, "best": self.best,
                "best_epoch": self.best_epoch, "waited": self.waited}

    def restore(self, saved: dict, best_params: dict[str, np.ndarray], best_state: dict[str, np.ndarray]) -> None:
        self.best, self.best_epoch, self.waited = saved["best"], saved["best_epoch"], saved["waited"]
        self.best_params, self.best_state = best_params, best_state
