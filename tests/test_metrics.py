"""Streaming metrics: hand-computed cases, sklearn agreement, batch-size independence and argument errors."""

from __future__ import annotations

import numpy as np
import pytest

from bmc.diagnostics import UsageError
from bmc.train.metrics import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    ConfusionMatrix,
    RegressionMetrics,
    compute,
    new_accumulator,
)


def test_confusion_matrix_by_hand() -> None:
    # true:  0 0 0 1 1 2      pred: 0 1 0 1 2 2
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 0, 0, 1, 1, 2]), np.array([0, 1, 0, 1, 2, 2]))
    np.testing.assert_array_equal(cm.counts, [[2, 1, 0], [0, 1, 1], [0, 0, 1]])
    assert cm.accuracy() == pytest.approx(4 / 6)
    # precision per class: 2/2, 1/2, 1/2; recall: 2/3, 1/2, 1/1
    assert cm.precision() == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert cm.recall() == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    # f1 per class: 2*2/(4+1), 2*1/(2+2), 2*1/(2+1)
    assert cm.f1() == pytest.approx((4 / 5 + 2 / 4 + 2 / 3) / 3)
    assert cm.summary() == {name: compute(name, cm) for name in CLASSIFICATION_METRICS}


def test_class_never_predicted_contributes_zero_precision() -> None:
    cm = ConfusionMatrix(2)
    cm.update(np.array([0, 1, 1]), np.array([0, 0, 0]))
    np.testing.assert_allclose(cm.precision_per_class(), [1 / 3, 0.0])
    assert cm.precision() == pytest.approx(1 / 6)
    assert cm.recall() == pytest.approx(0.5)
    assert cm.f1() == pytest.approx((2 / 4 + 0) / 2)


def test_classes_absent_from_labels_and_predictions_are_skipped() -> None:
    cm = ConfusionMatrix(10)
    cm.update(np.array([0, 1]), np.array([0, 1]))
    assert cm.precision() == cm.recall() == cm.f1() == 1.0


def test_empty_matrix_is_zero() -> None:
    cm = ConfusionMatrix(4)
    cm.update(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    assert cm.total == 0
    assert cm.summary() == dict.fromkeys(CLASSIFICATION_METRICS, 0.0)


def test_streaming_equals_one_batch_and_reset() -> None:
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 5, 1000), rng.integers(0, 5, 1000)
    whole, batched = ConfusionMatrix(5), ConfusionMatrix(5)
    whole.update(y_true, y_pred)
    for start in range(0, 1000, 64):
        batched.update(y_true[start : start + 64], y_pred[start : start + 64])
    np.testing.assert_array_equal(whole.counts, batched.counts)
    batched.reset()
    assert batched.total == 0


@pytest.mark.parametrize("seed", range(5))
def test_against_sklearn(seed: int) -> None:
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(2, 8))
    n = int(rng.integers(5, 300))
    # Skewed predictions so some classes are never predicted (and, for small n, some never occur).
    y_true = rng.integers(0, num_classes, n)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, max(1, num_classes - 2), n))
    cm = ConfusionMatrix(num_classes)
    cm.update(y_true, y_pred)
    assert cm.accuracy() == pytest.approx(skm.accuracy_score(y_true, y_pred))
    macro = {"average": "macro", "zero_division": 0}
    assert cm.precision() == pytest.approx(skm.precision_score(y_true, y_pred, **macro))
    assert cm.recall() == pytest.approx(skm.recall_score(y_true, y_pred, **macro))
    assert cm.f1() == pytest.approx(skm.f1_score(y_true, y_pred, **macro))
    np.testing.assert_array_equal(cm.counts, skm.confusion_matrix(y_true, y_pred, labels=range(num_classes)))


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        ([0, 1], [0], "2 labels but y_pred has 1"),
        ([0, 3], [0, 1], r"outside \[0, 3\)"),
        ([0, -1], [0, 1], r"outside \[0, 3\)"),
        ([0.0, 1.0], [0, 1], "integer class indices"),
    ],
)
def test_confusion_matrix_rejects_bad_batches(y_true: list, y_pred: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConfusionMatrix(3).update(np.array(y_true), np.array(y_pred))


def test_regression_by_hand_and_streaming() -> None:
    acc = RegressionMetrics()
    acc.update(np.array([1.0, 2.0]), np.array([1.5, 1.0]))
    acc.update(np.array([0.0]), np.array([[-2.0]]))  # [n, 1] predictions against [n] targets
    assert acc.count == 3
    assert acc.mse() == pytest.approx((0.25 + 1 + 4) / 3)
    assert acc.mae() == pytest.approx((0.5 + 1 + 2) / 3)
    assert acc.summary() == {"mse": acc.mse(), "mae": acc.mae()}
    acc.reset()
    assert acc.mse() == 0.0 and acc.mae() == 0.0


def test_regression_against_sklearn() -> None:
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.normal(size=257).astype(np.float32), rng.normal(size=257).astype(np.float32)
    acc = RegressionMetrics()
    for start in range(0, 257, 50):
        acc.update(y_true[start : start + 50], y_pred[start : start + 50])
    assert acc.mse() == pytest.approx(skm.mean_squared_error(y_true, y_pred), rel=1e-6)
    assert acc.mae() == pytest.approx(skm.mean_absolute_error(y_true, y_pred), rel=1e-6)


def test_regression_size_mismatch() -> None:
    with pytest.raises(ValueError, match="3 values but y_pred has 2"):
        RegressionMetrics().update(np.zeros(3), np.zeros(2))


def test_registry() -> None:
    assert isinstance(new_accumulator(3), ConfusionMatrix)
    assert isinstance(new_accumulator(None), RegressionMetrics)
    assert set(HIGHER_IS_BETTER) == set(CLASSIFICATION_METRICS) | set(REGRESSION_METRICS)
    with pytest.raises(UsageError, match="unknown classification metric 'mse'"):
        compute("mse", ConfusionMatrix(2))
    with pytest.raises(UsageError, match="expected one of mse, mae"):
        compute("accuracy", RegressionMetrics())
