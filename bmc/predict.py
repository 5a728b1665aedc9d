"""`bmc predict BUILD FILES...`: a build's predictions on `.npy`, `.npz`, CSV and image files.

A file holds one sample (an image; a `.npy` shaped like one sample) or many (a `.npy` or `.npz` array [n, ...], the
rows of a CSV file). Raw samples, as the training data stored them: the build scales and standardizes them itself.
A CSV file with a header is read by the build's feature columns when it was trained on CSV (its target column is
ignored); images are read in the mode and size the build was trained on (an image folder), or as the input's shape
says (1 channel: grayscale, 3: RGB). A classifier gives each sample's class (its name when the data named them) and
probability; any other model its output values.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from bmc.data.images import is_image, read_image
from bmc.data.table import numbers, read_rows
from bmc.diagnostics import DataError, UsageError
from bmc.train.loop import predictions


def _sample_shape(build) -> tuple[str, list[int]]:
    inputs = build.manifest["inputs"]
    if len(inputs) != 1:
        raise UsageError(f"bmc predict reads files for a model with one input; this one has {', '.join(inputs)}")
    (name, spec), = inputs.items()
    return name, spec["shape"][1:]


def _image(build, path: Path, shape: list) -> np.ndarray:
    info = build.manifest.get("image")
    if info:
        return read_image(path, info["mode"], tuple(info["size"]))
    channels = shape[0] if len(shape) == 3 else 1
    size = (shape[-1], shape[-2]) if len(shape) >= 2 and all(isinstance(d, int) for d in shape[-2:]) else None
    pixels = read_image(path, "RGB" if channels == 3 else "L", size)
    return pixels


def _csv(build, path: Path) -> np.ndarray:
    header, rows = read_rows(path)
    columns = build.manifest.get("columns")
    if columns and all(c in header for c in columns):
        picked = [header.index(c) for c in columns]
    else:
        target = build.manifest.get("target_column")
        picked = [i for i, h in enumerate(header) if h != target]
    return numbers(path, header, rows, picked)


def read_file(build, path: Path) -> np.ndarray:
    """The samples of one file, [n, ...]."""
    _, shape = _sample_shape(build)
    per_sample = math.prod(d for d in shape if isinstance(d, int))
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if is_image(path):
        return _image(build, path, shape)[None]
    if suffix == ".csv":
        return _csv(build, path)
    if suffix in (".npy", ".npz"):
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read {path}: {e}") from None
        if suffix == ".npz":
            with loaded:
                names = list(loaded.files)
                name = _sample_shape(build)[0]
                key = name if name in names else names[0] if len(names) == 1 else None
                if key is None:
                    raise DataError(f"{path} holds {', '.join(names)}; name the array '{name}' (the model's input)")
                loaded = loaded[key]
        x = np.asarray(loaded)
        return x[None] if x.size == per_sample and x.shape != (1, *shape) else x
    raise UsageError(f"bmc predict reads .npy, .npz, .csv and image files ({', '.join(('.png', '.jpg'))}, ...), "
                     f"not {path.name}")


def predict_files(build, files: list[str]) -> list[dict]:
    """One row per sample: its file (and row), and its class and probability, or its output values."""
    output = next(iter(build.manifest["outputs"]), None)
    if output is None:
        raise UsageError("this build has no output to predict; mark one with 'output' in the .bm file")
    targets = build.manifest.get("targets", {})
    classifier = any(spec["dtype"] in ("i32", "i64") for spec in targets.values())
    names = build.manifest.get("classes") or []
    rows = []
    for file in files:
        path = Path(file)
        x = read_file(build, path)
        out = np.asarray(build.predict(x)[output])
        for i in range(len(x)):
            where = path.name if len(x) == 1 else f"{path.name}:{i + 1}"
            scores = out[i:i + 1]
            if classifier:
                k = int(predictions(scores)[0])
                p = float(scores.reshape(-1)[k]) if scores.ndim == 2 and scores.shape[1] > 1 else \
                    float(scores.reshape(-1)[0] if k == 1 else 1 - scores.reshape(-1)[0])
                rows.append({"file": where, "class": names[k] if k < len(names) else k, "probability": p})
            else:
                rows.append({"file": where, "value": scores.reshape(-1).tolist()})
    return rows
