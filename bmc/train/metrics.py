"""Evaluation metrics that stream over batches: a confusion matrix for classification, error sums for regression.

Both accumulate exact counts/sums per batch, so metrics over a whole test set do not depend on the batch size
(averaging per-batch F1 scores, by contrast, would be wrong). Every metric is then a cheap function of the counts.

Conventions follow scikit-learn's `average="macro", zero_division=0`, so numbers can be checked against it:
  * a class that is never predicted has precision 0, a class that never occurs has recall 0;
  * the macro average runs over the classes that occur in the labels *or* the predictions seen so far (sklearn's
    default label set); classes absent from both are skipped, since they say nothing about the model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bmc.diagnostics import UsageError

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1")
REGRESSION_METRICS = ("mse", "mae")


class ConfusionMatrix:
    """Counts `counts[true, predicted]` over all batches seen since construction or `reset()`."""

    def __init__(self, num_classes: int):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.counts = np.zeros((num_classes, num_classes), dtype=np.int64)

    def reset(self) -> None:
        self.counts[...] = 0

    def update(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        """Add a batch of integer class indices (same length, each in [0, num_classes))."""
        y_true = np.asarray(y_true).reshape(-1)
        y_pred = np.asarray(y_pred).reshape(-1)
        if y_true.shape != y_pred.shape:
            raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
        if y_true.size == 0:
            return
        c = self.num_classes
        for what, y in (("y_true", y_true), ("y_pred", y_pred)):
            if y.dtype.kind not in "iub":
                raise ValueError(f"{what} must hold integer class indices, got dtype {y.dtype}")
            if y.min() < 0 or y.max() >= c:
                raise ValueError(f"{what} has class indices outside [0, {c}): min {y.min()}, max {y.max()}")
        flat = y_true.astype(np.int64) * c + y_pred.astype(np.int64)
        self.counts += np.bincount(flat, minlength=c * c).reshape(c, c)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def to_json(self) -> dict:
        return {"counts": self.counts.tolist()}

    def restore(self, saved: dict) -> None:
        self.counts[...] = np.asarray(saved["counts"], dtype=np.int64)

    def accuracy(self) -> float:
        """Fraction of samples predicted correctly (0.0 before any update)."""
        total = self.total
        return float(np.trace(self.counts)) / total if total else 0.0

    def precision_per_class(self) -> np.ndarray:
        """tp / predicted count per class; 0 for a class that was never predicted (zero_division=0)."""
        return _safe_divide(np.diag(self.counts), self.counts.sum(axis=0))

    def recall_per_class(self) -> np.ndarray:
        """tp / true count per class; 0 for a class that never occurred (zero_division=0)."""
        return _safe_divide(np.diag(self.counts), self.counts.sum(axis=1))

    def f1_per_class(self) -> np.ndarray:
        """2tp / (2tp + fp + fn) per class: the harmonic mean of precision and recall, 0 where both are 0."""
        tp = np.diag(self.counts)
        return _safe_divide(2 * tp, self.counts.sum(axis=0) + self.counts.sum(axis=1))

    def precision(self) -> float:
        """Macro precision: the unweighted mean over present classes; a class never predicted contributes 0."""
        return self._macro(self.precision_per_class())

    def recall(self) -> float:
        """Macro recall: the unweighted mean over present classes; a class never occurring contributes 0."""
        return self._macro(self.recall_per_class())

    def f1(self) -> float:
        """Macro F1: the mean of per-class F1, as sklearn computes it (not the F1 of macro precision and recall)."""
        return self._macro(self.f1_per_class())

    def _macro(self, per_class: np.ndarray) -> float:
        present = (self.counts.sum(axis=0) + self.counts.sum(axis=1)) > 0
        return float(per_class[present].mean()) if present.any() else 0.0

    def summary(self) -> dict[str, float]:
        return {name: compute(name, self) for name in CLASSIFICATION_METRICS}


class RegressionMetrics:
    """Sums of squared and absolute errors over all target values seen (targets may be [n] or [n, k])."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.sum_squared_error = 0.0
        self.sum_absolute_error = 0.0

    def update(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        y_true = np.asarray(y_true, dtype=np.float64)
        y_pred = np.asarray(y_pred, dtype=np.float64)
        if y_true.size != y_pred.size:
            raise ValueError(f"y_true has {y_true.size} values but y_pred has {y_pred.size}")
        # Compare flat so a model's [n, 1] output matches [n] targets instead of broadcasting to [n, n].
        err = y_pred.reshape(-1) - y_true.reshape(-1)
        self.count += err.size
        self.sum_squared_error += float(np.dot(err, err))
        self.sum_absolute_error += float(np.abs(err).sum())

    def to_json(self) -> dict:
        return {"count": self.count, "sum_squared_error": self.sum_squared_error,
                "sum_absolute_error": self.sum_absolute_error}

    def restore(self, saved: dict) -> None:
        self.count, self.sum_squared_error = int(saved["count"]), float(saved["sum_squared_error"])
        self.sum_absolute_error = float(saved["sum_absolute_error"])

    def mse(self) -> float:
        """Mean squared error (0.0 before any update)."""
        return self.sum_squared_error / self.count if self.count else 0.0

    def mae(self) -> float:
        """Mean absolute error (0.0 before any update)."""
        return self.sum_absolute_error / self.count if self.count else 0.0

    def summary(self) -> dict[str, float]:
        return {name: compute(name, self) for name in REGRESSION_METRICS}


Accumulator = ConfusionMatrix | RegressionMetrics

_CLASSIFICATION: dict[str, Callable[[ConfusionMatrix], float]] = {
    "accuracy": ConfusionMatrix.accuracy,
    "precision": ConfusionMatrix.precision,
    "recall": ConfusionMatrix.recall,
    "f1": ConfusionMatrix.f1,
}
_REGRESSION: dict[str, Callable[[RegressionMetrics], float]] = {
    "mse": RegressionMetrics.mse,
    "mae": RegressionMetrics.mae,
}
HIGHER_IS_BETTER = {"accuracy": True, "precision": True, "recall": True, "f1": True, "mse": False, "mae": False}


def new_accumulator(num_classes: int | None) -> Accumulator:
    """A confusion matrix for classification (`num_classes` set), error sums for regression (None)."""
    return RegressionMetrics() if num_classes is None else ConfusionMatrix(num_classes)


def compute(name: str, accumulator: Accumulator) -> float:
    """The metric `name` from an accumulator; UsageError if the name is unknown or the wrong kind of task."""
    if isinstance(accumulator, ConfusionMatrix) and name in _CLASSIFICATION:
        return _CLASSIFICATION[name](accumulator)
    if isinstance(accumulator, RegressionMetrics) and name in _REGRESSION:
        return _REGRESSION[name](accumulator)
    task, valid = (
        ("classification", CLASSIFICATION_METRICS)
        if isinstance(accumulator, ConfusionMatrix)
        else ("regression", REGRESSION_METRICS)
    )
    raise UsageError(f"unknown {task} metric {name!r}: expected one of {', '.join(valid)}")


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
