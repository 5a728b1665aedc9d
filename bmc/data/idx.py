"""IDX files (the format of MNIST and Fashion-MNIST) and directories of them in MNIST's layout.

An IDX file is a 4-byte magic number -- two zero bytes, a type code, the number of dimensions -- then one
big-endian uint32 per dimension, then the data, big-endian and row-major. The format is a dozen lines to parse, so
we parse it here with np.frombuffer: no extra dependency, no copy of the raw bytes, and every malformed file gives a
`DataError` that names it. Files may be gzipped (detected by content, not by name).
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from bmc.data.dataset import Dataset, classification_labels
from bmc.diagnostics import DataError

_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# The four files of MNIST's layout, by role. Each may also be spelled with a dot before "idx"
# (train-images.idx3-ubyte, as some mirrors do) and may carry a .gz suffix.
IDX_FILES: dict[str, str] = {
    "train images": "train-images-idx3-ubyte",
    "train labels": "train-labels-idx1-ubyte",
    "test images": "t10k-images-idx3-ubyte",
    "test labels": "t10k-labels-idx1-ubyte",
}
EXPECTED_NAMES = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file, gzipped or not, into an array of its dtype and shape (read-only, native byte order)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e.strerror or e}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip data ({e})", notes=_REFETCH) from None
    return parse_idx(raw, str(path))


_REFETCH = ("the file may be damaged or incompletely downloaded; fetch it again",)


def parse_idx(raw: bytes, name: str) -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file; `name` is used in error messages."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES or raw[3] == 0:
        magic = raw[:4].hex() or "(empty file)"
        raise DataError(
            f"{name}: not an IDX file (magic number {magic})",
            notes=("an IDX file starts with 00 00, a type code (08 for ubyte) and its rank, e.g. 00000803 for images",),
        )
    dtype, ndim = _DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"{name}: truncated IDX header ({len(raw)} bytes, need {header} for rank {ndim})", notes=_REFETCH
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + math.prod(dims) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(
            f"{name}: {problem}: its header says shape {dims} of {dtype.name}, {expected} bytes, but it has {len(raw)}",
            notes=_REFETCH,
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def find_idx_files(directory: str | Path) -> dict[str, Path]:
    """The four MNIST-layout files in `directory`, by role; DataError if any is missing."""
    directory = Path(directory)
    found: dict[str, Path] = {}
    for role, stem in IDX_FILES.items():
        dotted = stem.replace("-idx", ".idx")
        for candidate in (stem, stem + ".gz", dotted, dotted + ".gz"):
            if (directory / candidate).is_file():
                found[role] = directory / candidate
                break
    if not found:
        raise DataError(f"no IDX files found in {directory}: expected {EXPECTED_NAMES}", notes=_IDX_HINTS)
    missing = [IDX_FILES[role] for role in IDX_FILES if role not in found]
    if missing:
        raise DataError(
            f"incomplete IDX directory {directory}: missing {', '.join(f'{m}[.gz]' for m in missing)}",
            notes=(f"found {', '.join(p.name for p in found.values())}", *_IDX_HINTS),
        )
    return found


_IDX_HINTS = (
    "Fashion-MNIST: `apt-get install dataset-fashion-mnist`, then use the spec `fashion_mnist`",
    "MNIST: download the four files from a MNIST mirror into one directory and pass that directory",
)


def load_idx_dir(directory: str | Path, name: str | None = None, label: str | None = None) -> Dataset:
    """Load a directory of MNIST-layout IDX files: images as stored, shape [n, rows, cols] (uint8 pixels 0..255,
    with scale 1/255, for MNIST and Fashion-MNIST).

    `name` is the Dataset's name (default: the directory's name); `label` starts its description.
    """
    directory = Path(directory)
    files = find_idx_files(directory)
    x_train, y_train = _images_and_labels(files["train images"], files["train labels"])
    x_test, y_test = _images_and_labels(files["test images"], files["test labels"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(
            f"{directory}: train images are {_hw(x_train)} but test images are {_hw(x_test)}; they must match"
        )
    if x_train.dtype != x_test.dtype:
        raise DataError(f"{directory}: train images are {x_train.dtype} but test images are {x_test.dtype}")
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    name = name or directory.name
    scale, raw = pixel_scale(x_train.dtype)
    description = (
        f"{label or name} (IDX, {directory}): {len(x_train)} train / {len(x_test)} test, {_hw(x_train)} {raw}, "
        f"{num_classes} classes"
    )
    return Dataset(name, x_train, y_train, x_test, y_test, num_classes, description, scale, raw)


def pixel_scale(dtype: np.dtype) -> tuple[float, str]:
    """The scale of IDX images and their raw format: uint8 pixels (the norm) are read as 0..255 / 255; other
    pixel types are taken as they are."""
    if dtype == np.uint8:
        return 1 / 255, "uint8 pixels 0..255"
    return 1.0, f"{dtype.name} values"


def _hw(x: np.ndarray) -> str:
    return "x".join(str(d) for d in x.shape[1:])


def _images_and_labels(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{images_path}: expected images of shape [n, rows, cols], got shape {images.shape}")
    if len(images) == 0:
        raise DataError(f"{images_path}: contains no images")
    y = classification_labels(labels, str(labels_path))
    if len(y) != len(images):
        raise DataError(
            f"{labels_path} has {len(y)} labels but {images_path.name} has {len(images)} images; they must match"
        )
    return images, y
