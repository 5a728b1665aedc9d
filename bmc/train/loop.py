"""The training loop: batches, the generated train step, metrics per epoch, a progress bar."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from bmc.diagnostics import BmcError
from bmc.runtime import predict_batches
from bmc.train import metrics as M
from bmc.train.config import TrainConfig
from bmc.train.progress import Progress


@dataclass
class EpochLog:
    epoch: int
    loss: float
    train: dict[str, float]
    test: dict[str, float]
    seconds: float
    samples_per_second: float

    def line(self, epochs: int) -> str:
        parts = [f"epoch {self.epoch}/{epochs}", f"loss {self.loss:.4f}"]
        parts += [f"train {k} {v:.4f}" for k, v in self.train.items()]
        parts += [f"test {k} {v:.4f}" for k, v in self.test.items()]
        parts.append(f"{self.seconds:.2f}s ({self.samples_per_second:,.0f} samples/s)")
        return "  ".join(parts)


@dataclass
class History:
    epochs: list[EpochLog] = field(default_factory=list)

    @property
    def final(self) -> EpochLog:
        return self.epochs[-1]

    def as_json(self) -> list[dict]:
        return [e.__dict__ for e in self.epochs]


def predictions(scores: np.ndarray) -> np.ndarray:
    """Class predictions from an output: argmax of class scores [n, C]; a probability [n] or [n, 1] above 0.5."""
    if scores.ndim == 2 and scores.shape[1] > 1:
        return scores.argmax(axis=1)
    return (scores.reshape(len(scores)) > 0.5).astype(np.int64)


def score(names: tuple[str, ...], num_classes: int | None, outputs: np.ndarray, targets: np.ndarray,
          acc=None) -> dict[str, float]:
    acc = acc or M.new_accumulator(num_classes)
    update(acc, num_classes, outputs, targets)
    return {n: M.compute(n, acc) for n in names}


def update(acc, num_classes: int | None, outputs: np.ndarray, targets: np.ndarray) -> None:
    if num_classes is None:
        acc.update(targets.reshape(-1), outputs.reshape(-1))
    else:
        acc.update(targets.reshape(-1), predictions(outputs))


def usable_metrics(names: tuple[str, ...], num_classes: int | None) -> tuple[str, ...]:
    valid = M.CLASSIFICATION_METRICS if num_classes is not None else M.REGRESSION_METRICS
    chosen = tuple(n for n in names if n in valid)
    return chosen or (("accuracy",) if num_classes is not None else ("mse",))


def fit(module: ModuleType, config: TrainConfig, params: dict[str, np.ndarray], state: dict[str, np.ndarray],
        train: dict[str, np.ndarray], test: dict[str, np.ndarray], output: str | None, num_classes: int | None,
        log: Callable[[str], None] = print, progress: bool = True) -> History:
    """Train in place (params and state are updated) and return the per-epoch history."""
    names = usable_metrics(config.metrics, num_classes)
    target = next((k for k in train if k not in module.INPUTS), None)
    n = len(next(iter(train.values())))
    batch = n if config.batch is None else min(config.batch, n)
    steps = math.ceil(n / batch)
    lr_dtype = module.HYPER["lr"][0] if "lr" in module.HYPER else "f32"
    lr = np.asarray(config.optimizer.lr, dtype={"f32": np.float32, "f64": np.float64}[lr_dtype])
    history = History()
    log_every = max(1, config.epochs // 20)  # at most about 20 lines for long runs
    rng = np.random.default_rng(config.seed)
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(n) if batch < n else np.arange(n)
        acc = M.new_accumulator(num_classes)
        bar = Progress(f"epoch {epoch}/{config.epochs}", steps, enabled=progress)
        start = time.perf_counter()
        total_loss, seen = 0.0, 0
        for step in range(steps):
            idx = order[step * batch:(step + 1) * batch]
            feed = {k: v[idx] for k, v in train.items()} if batch < n else train
            result = module.train_step(params, state, feed, lr)
            loss = float(result["loss"])
            if not math.isfinite(loss):
                bar.close()
                raise BmcError(f"the loss became {loss} at epoch {epoch}, step {step + 1}; training stopped "
                               f"(try a smaller learning rate than {config.optimizer.lr:g})")
            total_loss += loss * len(idx)
            seen += len(idx)
            if output is not None and target is not None:
                update(acc, num_classes, np.asarray(result[output]), feed[target])
            bar.update(step + 1, seen, total_loss / seen)
        seconds = time.perf_counter() - start
        bar.close()
        train_scores = {k: M.compute(k, acc) for k in names} if output is not None else {}
        test_scores = evaluate(module, params, test, output, num_classes, names) if test else {}
        entry = EpochLog(epoch, total_loss / seen, train_scores, test_scores, seconds, seen / seconds)
        history.epochs.append(entry)
        if epoch % log_every == 0 or epoch in (1, config.epochs):
            log(entry.line(config.epochs))
    return history


def evaluate(module: ModuleType, params: dict[str, np.ndarray], data: dict[str, np.ndarray], output: str | None,
             num_classes: int | None, names: tuple[str, ...]) -> dict[str, float]:
    if output is None:
        return {}
    inputs = {k: v for k, v in data.items() if k in module.INPUTS}
    target = next(k for k in data if k not in module.INPUTS)
    outputs = predict_batches(module, params, inputs)
    return score(names, num_classes, outputs[output], data[target])
