"""Training data: `load_dataset(spec)` turns a name or a path into a `Dataset`.

A spec is one of
  * a built-in name: digits, diabetes, breast_cancer (scikit-learn), fashion_mnist (Debian package), mnist (hint);
    `-` and `_` are interchangeable and case is ignored, so `fashion-mnist` works;
  * a directory of IDX files in MNIST's layout (train-images-idx3-ubyte[.gz], ... t10k-labels-idx1-ubyte[.gz]);
  * a `.npz` file with arrays x_train, y_train, x_test, y_test.
Built-in names win over same-named paths in the working directory; write `./digits` for the directory.
Every problem with the data raises `bmc.diagnostics.DataError` saying what was expected and how to get it.
"""

from __future__ import annotations

from pathlib import Path

from bmc.data.builtin import BUILTIN, find_fashion_mnist
from bmc.data.dataset import Dataset
from bmc.data.idx import load_idx_dir, read_idx
from bmc.data.npz import load_npz
from bmc.diagnostics import DataError

__all__ = ["BUILTIN", "Dataset", "find_fashion_mnist", "load_dataset", "load_idx_dir", "load_npz", "read_idx"]

ACCEPTED_SPECS = (
    f"a built-in name ({', '.join(BUILTIN)})",
    "a directory of IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
    "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])",
    "a .npz file with arrays x_train, y_train, x_test, y_test",
)


def load_dataset(spec: str) -> Dataset:
    """Load the data set named or located by `spec` (see the module docstring)."""
    key = spec.strip().lower().replace("-", "_")
    if key in BUILTIN:
        return BUILTIN[key]()
    path = Path(spec).expanduser()
    if path.is_dir():
        return load_idx_dir(path)
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return load_npz(path)
        raise DataError(f"cannot load {path}: expected a .npz file or a directory of IDX files", notes=ACCEPTED_SPECS)
    names = ", ".join(BUILTIN)
    if "/" in spec or "\\" in spec or path.suffix:
        raise DataError(f"no such file or directory: {spec}", notes=ACCEPTED_SPECS)
    raise DataError(
        f"unknown data set {spec!r}: expected one of {names}, a directory of IDX files, or a .npz file",
        notes=ACCEPTED_SPECS,
    )
