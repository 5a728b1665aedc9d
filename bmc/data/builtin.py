"""Data sets known by name: scikit-learn's bundled sets, Fashion-MNIST from its Debian package, and MNIST's hint.

The scikit-learn sets ship inside the sklearn wheel (no download), which makes them the quickest way to try a model.
Splits are deterministic (see `bmc.data.split`), so the same spec gives the same numbers everywhere.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from bmc.data.dataset import Dataset
from bmc.data.idx import EXPECTED_NAMES, IDX_FILES, load_idx_dir
from bmc.data.split import SEED, TEST_FRACTION, random_split, standardize, stratified_split
from bmc.diagnostics import DataError

FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
# Where the Debian/Ubuntu package puts the files (checked with `dpkg -L`), plus likely local installs. Checking
# these first avoids running dpkg on every load; `dpkg -L` is the fallback for a relocated install.
FASHION_MNIST_DIRS = (
    Path("/usr/share/datasets/fashion-mnist"),
    Path("/usr/local/share/datasets/fashion-mnist"),
    Path("/usr/share/fashion-mnist"),
)
_SPLIT = f"{round((1 - TEST_FRACTION) * 100)}/{round(TEST_FRACTION * 100)} split, seed {SEED}"


def _sklearn_datasets() -> ModuleType:
    try:
        import sklearn.datasets
    except ImportError:
        raise DataError(
            "scikit-learn is not installed; the built-in data sets digits, diabetes and breast_cancer come with it",
            notes=("install it with `pip install scikit-learn`",),
        ) from None
    return sklearn.datasets


def load_digits() -> Dataset:
    """sklearn's 8x8 handwritten digits (1797 samples), shape [n, 64]: pixels 0..16 as sklearn stores them, with
    scale 1/16."""
    bunch = _sklearn_datasets().load_digits()
    x = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.int64)
    train, test = stratified_split(y)
    return Dataset(
        "digits",
        x[train],
        y[train],
        x[test],
        y[test],
        10,
        f"digits (scikit-learn, 8x8 as 64 pixels 0..16): {len(train)} train / {len(test)} test, "
        f"10 classes, stratified {_SPLIT}",
        1 / 16,
        "pixels 0..16 (as sklearn.datasets.load_digits() gives them)",
    )


def load_breast_cancer() -> Dataset:
    """sklearn's Wisconsin breast cancer set (569 samples, 30 features, binary), features standardized."""
    bunch = _sklearn_datasets().load_breast_cancer()
    y = bunch.target.astype(np.int64)
    train, test = stratified_split(y)
    x_train, x_test, _, _ = standardize(bunch.data[train], bunch.data[test])
    return Dataset(
        "breast_cancer",
        x_train.astype(np.float32),
        y[train],
        x_test.astype(np.float32),
        y[test],
        2,
        f"breast_cancer (scikit-learn): {len(train)} train / {len(test)} test, 30 features standardized with "
        f"train mean/std, 2 classes, stratified {_SPLIT}",
        raw_format="30 features, each standardized by the loader with the train split's mean and std",
    )


def load_diabetes() -> Dataset:
    """sklearn's diabetes regression set (442 samples, 10 features).

    Features and target are both standardized with train statistics: a raw target (25..346) would make the MSE of
    an untrained model ~30000 and force users to tune the learning rate to the target's scale. The description
    gives the target's mean and std so predictions and MSE can be converted back (MSE scales by std**2).
    """
    bunch = _sklearn_datasets().load_diabetes()
    train, test = random_split(len(bunch.target))
    x_train, x_test, _, _ = standardize(bunch.data[train], bunch.data[test])
    y_train, y_test, y_mean, y_std = standardize(bunch.target[train], bunch.target[test])
    return Dataset(
        "diabetes",
        x_train.astype(np.float32),
        y_train.astype(np.float32),
        x_test.astype(np.float32),
        y_test.astype(np.float32),
        None,
        f"diabetes (scikit-learn, regression): {len(train)} train / {len(test)} test, 10 features standardized; "
        f"target standardized as (y - {float(y_mean):.2f}) / {float(y_std):.2f} with train mean/std, {_SPLIT}",
        raw_format="10 features, each standardized by the loader with the train split's mean and std",
    )


def find_fashion_mnist() -> Path | None:
    """The directory of the installed Fashion-MNIST IDX files, or None if the package is not installed."""
    for directory in FASHION_MNIST_DIRS:
        if _has_train_images(directory):
            return directory
    try:
        listing = subprocess.run(
            ["dpkg", "-L", FASHION_MNIST_PACKAGE], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None  # no dpkg (not Debian-like) or it hung
    if listing.returncode != 0:
        return None
    for line in listing.stdout.splitlines():
        path = Path(line.strip())
        if path.name.startswith(IDX_FILES["train images"]) and _has_train_images(path.parent):
            return path.parent
    return None


def _has_train_images(directory: Path) -> bool:
    stem = IDX_FILES["train images"]
    return (directory / stem).is_file() or (directory / f"{stem}.gz").is_file()


def load_fashion_mnist() -> Dataset:
    """Fashion-MNIST (Zalando; 60000 train / 10000 test 28x28 grayscale images, 10 classes) from its package."""
    directory = find_fashion_mnist()
    if directory is None:
        raise DataError(
            f"Fashion-MNIST is not installed: `apt-get install {FASHION_MNIST_PACKAGE}`, "
            "or pass a directory of IDX files",
            notes=(
                f"looked in {', '.join(map(str, FASHION_MNIST_DIRS))} and `dpkg -L {FASHION_MNIST_PACKAGE}`",
                f"a directory must hold {EXPECTED_NAMES}",
            ),
        )
    return load_idx_dir(directory, name="fashion_mnist", label="Fashion-MNIST")


def load_mnist() -> Dataset:
    """MNIST is not packaged anywhere we can rely on, so name the files to fetch instead of failing obscurely."""
    raise DataError(
        "MNIST is not bundled with bmc or any system package: download its IDX files and pass their directory",
        notes=(
            f"the directory must hold {EXPECTED_NAMES}",
            f"or use `fashion_mnist` (same format and shapes): `apt-get install {FASHION_MNIST_PACKAGE}`",
        ),
    )


BUILTIN: dict[str, Callable[[], Dataset]] = {
    "digits": load_digits,
    "diabetes": load_diabetes,
    "breast_cancer": load_breast_cancer,
    "fashion_mnist": load_fashion_mnist,
    "mnist": load_mnist,
}
