"""The `Dataset` record every loader returns, and the checks shared by loaders of arbitrary user arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bmc.diagnostics import DataError


@dataclass
class Dataset:
    """A train/test split: samples as the data set stores them, and how to read them.

    `x_*` are the raw samples with shape [n, ...sample shape] (e.g. uint8 [n, 28, 28] for IDX images, float32
    [n, 64] for digits): what a user of a trained build has at hand and feeds it. `scale` is the factor that brings
    them to the units the model is trained in (1/255 for uint8 pixels, 1/16 for digits, 1 for a user's own numbers);
    `raw_format` says in words what a raw sample is. Training records both in the build's preprocessing contract
    (`bmc.frontend.preprocess`), and every artifact applies the scale itself, so nothing outside the model ever
    rescales the data. `y_*` are int64 class indices for classification (`num_classes` set) or float32 targets for
    regression (`num_classes` None). `description` is one line for logs and `bmc` output, naming the source.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int | None
    description: str
    scale: float = 1.0
    raw_format: str = "numbers, as given"
    class_names: list[str] = field(default_factory=list)  # the classes' names, where the data names them
    columns: list[str] = field(default_factory=list)  # a CSV file's feature columns, in order
    target_column: str | None = None  # a CSV file's target column
    image: dict | None = None  # an image folder's {"mode": "L" or "RGB", "size": [width, height]}
    # a model with several inputs: each input's (train, test) arrays by name (x_train, x_test are the first's)
    inputs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one input sample (the model's input shape without the batch dimension)."""
        return tuple(self.x_train.shape[1:])

    @property
    def is_classification(self) -> bool:
        return self.num_classes is not None


def classification_labels(y: np.ndarray, what: str) -> np.ndarray:
    """Validate integer class labels (one per sample, or one per position of a sequence: [n, T]; non-negative) and
    return them as int64."""
    if y.ndim not in (1, 2):
        raise DataError(f"{what}: expected class indices per sample [n] or per position [n, T], got shape {y.shape}")
    if y.dtype.kind not in "iub":
        raise DataError(f"{what}: expected integer class indices, got dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise DataError(f"{what}: class indices must be >= 0, found {int(y.min())}")
    return y.astype(np.int64)


def regression_targets(y: np.ndarray, what: str) -> np.ndarray:
    """Validate regression targets (1-D, finite floats) and return them as float32."""
    if y.ndim != 1:
        raise DataError(f"{what}: expected a 1-D array of regression targets, got shape {y.shape}")
    out = y.astype(np.float32)
    if not np.isfinite(out).all():
        raise DataError(f"{what}: contains NaN or infinite values (or values too large for float32)")
    return out


def features(x: np.ndarray, what: str) -> np.ndarray:
    """Validate inputs (numeric, rank >= 2 so there is a sample dimension, finite) and return them as float32."""
    if x.dtype.kind not in "iubf":
        raise DataError(f"{what}: expected numeric inputs, got dtype {x.dtype}")
    if x.ndim < 2:
        raise DataError(
            f"{what}: expected shape [n, ...sample shape], got shape {x.shape}",
            notes=("a single feature per sample needs shape [n, 1]: use x.reshape(-1, 1)",),
        )
    out = x.astype(np.float32)
    if not np.isfinite(out).all():
        raise DataError(f"{what}: contains NaN or infinite values (or values too large for float32)")
    return out
