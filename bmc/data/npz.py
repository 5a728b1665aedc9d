"""User data sets saved with `np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)`; for a model with
several inputs, each input's arrays by its name instead of x: `np.savez(path, image_train=..., image_test=...,
meta_train=..., meta_test=..., y_train=..., y_test=...)`.

Integer (or bool) labels mean classification, float labels mean regression: the file needs no schema beyond its
four arrays, and the dtype the user already chose says which task it is.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bmc.data.dataset import Dataset, classification_labels, features, regression_targets
from bmc.diagnostics import DataError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_HOW = "save it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"


def load_npz(path: str | Path) -> Dataset:
    """Load a `.npz` with arrays x_train, y_train, x_test, y_test (other keys are ignored), or NAME_train and
    NAME_test for each input NAME of a model with several."""
    path = Path(path)
    arrays = _read_arrays(path)
    named = {}
    for key in [k for k in arrays if k.endswith("_train") and k not in ("x_train", "y_train")]:
        name = key.removesuffix("_train")
        if f"{name}_test" not in arrays:
            raise DataError(f"{path}: {key} has no {name}_test", notes=(_HOW,))
        named[name] = (features(arrays[key], f"{path}: {key}"),
                       features(arrays[f"{name}_test"], f"{path}: {name}_test"))
    if "x_train" not in arrays:
        (x_train, x_test) = next(iter(named.values()))
        for name, (a, b) in named.items():
            if len(a) != len(x_train) or len(b) != len(x_test):
                raise DataError(f"{path}: {name}_train and {name}_test have {len(a)} and {len(b)} samples, but "
                                f"the first input's have {len(x_train)} and {len(x_test)}")
    else:
        x_train = features(arrays["x_train"], f"{path}: x_train")
        x_test = features(arrays["x_test"], f"{path}: x_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{path}: x_train samples have shape {x_train.shape[1:]} but x_test samples have {x_test.shape[1:]}"
        )
    y_train_raw, y_test_raw = arrays["y_train"], arrays["y_test"]
    kinds = {_label_kind(y_train_raw, f"{path}: y_train"), _label_kind(y_test_raw, f"{path}: y_test")}
    if len(kinds) != 1:
        raise DataError(
            f"{path}: y_train is {y_train_raw.dtype} but y_test is {y_test_raw.dtype}",
            notes=("both must be integers (classification) or both floats (regression)",),
        )
    if kinds == {"classification"}:
        y_train = classification_labels(y_train_raw, f"{path}: y_train")
        y_test = classification_labels(y_test_raw, f"{path}: y_test")
    else:
        y_train = regression_targets(y_train_raw, f"{path}: y_train")
        y_test = regression_targets(y_test_raw, f"{path}: y_test")
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(y):
            raise DataError(f"{path}: x_{split} has {len(x)} samples but y_{split} has {len(y)}")
        if len(x) == 0:
            raise DataError(f"{path}: x_{split} has no samples")
    num_classes = int(max(y_train.max(), y_test.max())) + 1 if kinds == {"classification"} else None
    shape = "x".join(str(d) for d in x_train.shape[1:])
    task = f"{num_classes} classes" if num_classes is not None else "regression"
    if named and "x_train" not in arrays:
        shape = ", ".join(f"{k} {'x'.join(str(d) for d in a.shape[1:])}" for k, (a, _) in named.items())
    description = f"{path.stem} (npz, {path}): {len(x_train)} train / {len(x_test)} test, {shape}, {task}"
    return Dataset(path.stem, x_train, y_train, x_test, y_test, num_classes, description,
                   raw_format=f"the x arrays of {path.name}, as float32",
                   inputs=named if "x_train" not in arrays else {})


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The four arrays, read eagerly so a damaged member fails here with the file's name, not later in training."""
    try:
        # We open the file ourselves: np.load leaks its own handle when the zip directory is unreadable.
        with open(path, "rb") as f:
            return _read_open_archive(path, f)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None


def _read_open_archive(path: Path, f: BinaryIO) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(f, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read {path} as a .npz archive: {e}", notes=(_HOW,)) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single array (.npy format), not a .npz archive", notes=(_HOW,))
    with loaded:
        several = "x_train" not in loaded.files and any(k.endswith("_train") and k != "y_train" for k in loaded.files)
        wanted = ("y_train", "y_test") if several else NPZ_KEYS
        missing = [k for k in wanted if k not in loaded.files]
        if missing:
            raise DataError(
                f"{path}: missing array(s) {', '.join(missing)}; expected {', '.join(NPZ_KEYS)}",
                notes=(f"found keys: {', '.join(loaded.files) or '(none)'}", _HOW),
            )
        try:
            keys = [k for k in loaded.files if k.endswith(("_train", "_test"))] if several else NPZ_KEYS
            return {k: loaded[k] for k in keys}
        except ValueError as e:
            if "allow_pickle" in str(e):  # object arrays: loading them would mean unpickling untrusted data
                raise DataError(
                    f"{path} holds arrays of Python objects, which bmc does not load (they need unpickling)",
                    notes=("save numeric arrays, e.g. np.asarray(x, dtype=np.float32)",),
                ) from None
            raise DataError(f"{path}: a member of the archive is damaged: {e}", notes=(_HOW,)) from None
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise DataError(f"{path}: a member of the archive is damaged: {e}", notes=(_HOW,)) from None


def _label_kind(y: np.ndarray, what: str) -> str:
    if y.dtype.kind in "iub":
        return "classification"
    if y.dtype.kind == "f":
        return "regression"
    raise DataError(f"{what}: expected integer class indices or float targets, got dtype {y.dtype}")
