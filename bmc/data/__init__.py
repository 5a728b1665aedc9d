"""Training data: `load_dataset(spec)` turns a name or a path into a `Dataset`.

A spec is one of
  * a built-in name: digits, diabetes, breast_cancer (scikit-learn), fashion_mnist (Debian package), mnist (hint);
    `-` and `_` are interchangeable and case is ignored, so `fashion-mnist` works;
  * a directory of IDX files in MNIST's layout (train-images-idx3-ubyte[.gz], ... t10k-labels-idx1-ubyte[.gz]);
  * a directory with a subfolder of images per class (bmc/data/images.py);
  * a `.npz` file with arrays x_train, y_train, x_test, y_test;
  * a `.csv` file with a header row (bmc/data/table.py).
Built-in names win over same-named paths in the working directory; write `./digits` for the directory.
Every problem with the data raises `bmc.diagnostics.DataError` saying what was expected and how to get it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bmc.data.builtin import BUILTIN, find_fashion_mnist
from bmc.data.dataset import Dataset
from bmc.data.idx import load_idx_dir, read_idx
from bmc.data.images import is_image_folder, load_image_folder
from bmc.data.npz import load_npz
from bmc.data.table import load_csv
from bmc.diagnostics import DataError, suggest

__all__ = ["BUILTIN", "Dataset", "find_fashion_mnist", "from_arrays", "load_csv", "load_dataset", "load_idx_dir",
           "load_image_folder", "load_npz", "read_idx"]

ACCEPTED_SPECS = (
    f"a built-in name ({', '.join(BUILTIN)})",
    "a directory of IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
    "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])",
    "a directory with a subfolder of images per class (cat/1.png, dog/2.jpg, ...)",
    "a .npz file with arrays x_train, y_train, x_test, y_test",
    'a .csv file with a header row (the target column: target = "price", else the last)',
)


def load_dataset(spec: str, target: str | None = None, classes: bool = True) -> Dataset:
    """Load the data set named or located by `spec` (see the module docstring). `target` is a CSV file's target
    column; `classes` says whether it holds class labels (the model's target is an integer) or numbers."""
    key = spec.strip().lower().replace("-", "_")
    if key in BUILTIN:
        return BUILTIN[key]()
    path = Path(spec).expanduser()
    if path.is_dir():
        return load_image_folder(path) if is_image_folder(path) else load_idx_dir(path)
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return load_npz(path)
        if path.suffix.lower() == ".csv":
            return load_csv(path, target, classes)
        raise DataError(f"cannot load {path}: expected a .npz or .csv file, or a directory of IDX files or images",
                        notes=ACCEPTED_SPECS)
    names = ", ".join(BUILTIN)
    if "/" in spec or "\\" in spec or path.suffix:
        raise DataError(f"no such file or directory: {spec}", notes=ACCEPTED_SPECS)
    raise DataError(
        f"unknown data set {spec!r}: expected one of {names}, a directory of IDX files or images, or a .npz or "
        ".csv file",
        notes=(*suggest(key, list(BUILTIN)), *ACCEPTED_SPECS),
    )


def from_arrays(data, classes: bool = True) -> Dataset:
    """`(x, y)` or `(x_train, y_train, x_test, y_test)` NumPy arrays (what `model.train((X, y))` takes): integer
    labels are classes, float ones regression targets; with two arrays, 20% are held out as the test set."""
    from bmc.data.dataset import classification_labels, features, regression_targets
    from bmc.data.split import random_split, stratified_split

    if not isinstance(data, tuple | list) or len(data) not in (2, 4):
        raise DataError("training arrays are (x, y) or (x_train, y_train, x_test, y_test)")
    arrays = [np.asarray(a) for a in data]
    labels = arrays[1::2]
    integer = classes and all(y.dtype.kind in "iub" for y in labels)  # a float target of the model: regression
    check = classification_labels if integer else regression_targets
    xs = [features(x, f"x{'_train' if i == 0 else '_test'}") for i, x in enumerate(arrays[0::2])]
    ys = [check(y, f"y{'_train' if i == 0 else '_test'}") for i, y in enumerate(labels)]
    for x, y in zip(xs, ys, strict=True):
        if len(x) != len(y):
            raise DataError(f"x has {len(x)} samples but y has {len(y)}")
    if len(xs) == 1:
        train, test = stratified_split(ys[0]) if integer else random_split(len(ys[0]))
        xs, ys = [xs[0][train], xs[0][test]], [ys[0][train], ys[0][test]]
    num_classes = int(max(int(y.max()) for y in ys if len(y))) + 1 if integer else None
    shape = "x".join(str(d) for d in xs[0].shape[1:])
    task = f"{num_classes} classes" if integer else "regression"
    return Dataset("arrays", xs[0], ys[0], xs[1], ys[1], num_classes,
                   f"arrays: {len(xs[0])} train / {len(xs[1])} test, {shape}, {task}")
