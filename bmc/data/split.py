"""Deterministic train/test splits and standardization for the small bundled data sets.

Splits are written with numpy rather than sklearn.model_selection so they depend only on a fixed seed and this
code: the same spec gives the same split on every machine, whatever the sklearn version.
"""

from __future__ import annotations

import numpy as np

SEED = 0
TEST_FRACTION = 0.2


def stratified_split(
    y: np.ndarray, test_fraction: float = TEST_FRACTION, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with each class split `test_fraction` to test (rounded per class).

    Both index arrays are sorted, so samples keep their original relative order; shuffling is the trainer's job.
    """
    rng = np.random.default_rng(seed)
    test_parts = []
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        n_test = round(len(members) * test_fraction)
        test_parts.append(rng.permutation(members)[:n_test])
    test = np.sort(np.concatenate(test_parts)) if test_parts else np.zeros(0, dtype=np.int64)
    return _complement(len(y), test), test


def random_split(n: int, test_fraction: float = TEST_FRACTION, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) for an unstratified split (regression targets have no classes to stratify on)."""
    rng = np.random.default_rng(seed)
    test = np.sort(rng.permutation(n)[: round(n * test_fraction)])
    return _complement(n, test), test


def _complement(n: int, test: np.ndarray) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    mask[test] = False
    return np.flatnonzero(mask)


def standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Center and scale both arrays by the *train* mean and std (per column), so no test statistics leak in.

    Returns (train, test, mean, std). A constant column gets std 1 so it maps to zeros instead of NaN.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std, mean, std
