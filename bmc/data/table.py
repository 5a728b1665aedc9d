"""CSV files: a header row, one sample per row, every column a feature except the target column.

`data = "houses.csv"` with `target = "price"` (or `--target-column price`); without one, the last column is the
target and the log says so. The model's target type says the task: an integer target (`target y: i64[N]`) makes
the column's values classes (numbers, or words such as `cat`, numbered in sorted order and kept in the build),
a float one makes it regression. A feature column that holds words is reported with its values, never encoded
silently; an empty cell is reported with its row. 20% of the rows (stratified for classes, seeded) are the test set.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from bmc.data.dataset import Dataset
from bmc.data.split import random_split, stratified_split
from bmc.diagnostics import DataError, suggest


def read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and any(cell.strip() for cell in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if len(rows) < 2:
        raise DataError(f"{path}: expected a header row and at least one row of data")
    header = [h.strip() for h in rows[0]]
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise DataError(f"{path}:{i}: {len(r)} cells, but the header has {len(header)} columns")
    return header, rows[1:]


def numbers(path: Path, header: list[str], rows: list[list[str]], columns: list[int]) -> np.ndarray:
    """The columns as float32 [rows, columns]; words and empty cells are DataErrors naming them."""
    out = np.empty((len(rows), len(columns)), dtype=np.float32)
    words: dict[str, list[str]] = {}
    for j, c in enumerate(columns):
        for i, r in enumerate(rows):
            cell = r[c].strip()
            if not cell:
                raise DataError(f"{path}:{i + 2}: column '{header[c]}' is empty",
                                notes=("fill it in, or drop the row",))
            try:
                value = float(cell)
            except ValueError:
                words.setdefault(header[c], [])
                if cell not in words[header[c]] and len(words[header[c]]) < 3:
                    words[header[c]].append(cell)
                continue
            if not math.isfinite(value):
                raise DataError(f"{path}:{i + 2}: column '{header[c]}' is {cell}; features must be finite numbers")
            out[i, j] = value
    if words:
        shown = "; ".join(f"'{k}' (e.g. {', '.join(repr(w) for w in v)})" for k, v in words.items())
        raise DataError(f"{path}: feature column{'s' * (len(words) > 1)} {shown} hold{'s' * (len(words) == 1)} "
                        "words, not numbers; bmc does not encode categories on its own",
                        notes=("encode each as numbers (one 0/1 column per category) or drop it",))
    return out


def load_csv(path: str | Path, target: str | None = None, classes: bool = True) -> Dataset:
    """A CSV file as a data set; `classes`: the target column holds class labels (else regression values)."""
    path = Path(path)
    header, rows = read_rows(path)
    if target is None:
        target_index = len(header) - 1
    elif target in header:
        target_index = header.index(target)
    else:
        raise DataError(f"{path} has no column '{target}'", notes=suggest(target, header)
                        or (f"its columns: {', '.join(header)}",))
    features = [c for c in range(len(header)) if c != target_index]
    if not features:
        raise DataError(f"{path}: the target '{header[target_index]}' is its only column; there are no features")
    x = numbers(path, header, rows, features)
    labels = [r[target_index].strip() for r in rows]
    name = header[target_index]
    class_names: list[str] = []
    if classes:
        if any(not v for v in labels):
            raise DataError(f"{path}: the target column '{name}' has empty cells")
        if all(_integer(v) for v in labels):
            y = np.array([int(float(v)) for v in labels], dtype=np.int64)
            if y.min() < 0:
                raise DataError(f"{path}: the target column '{name}' has the class {y.min()}; classes are 0, 1, ...")
            num_classes = int(y.max()) + 1
        else:
            class_names = sorted(set(labels))
            index = {c: i for i, c in enumerate(class_names)}
            y = np.array([index[v] for v in labels], dtype=np.int64)
            num_classes = len(class_names)
        train, test = stratified_split(y)
        task = f"{num_classes} classes" + (f" ({', '.join(class_names[:6])}{', ...' * (len(class_names) > 6)})"
                                          if class_names else "")
    else:
        try:
            y = np.array([float(v) for v in labels], dtype=np.float32)
        except ValueError:
            raise DataError(f"{path}: the target column '{name}' holds words, but the model's target is a float "
                            "(regression)", notes=("declare the target i64[N] to learn classes",)) from None
        num_classes = None
        train, test = random_split(len(y))
        task = "regression"
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"{path}: {len(rows)} rows are too few to hold out a test set (20%)")
    chosen = "" if target else f" (the last column: set target = \"{name}\" to choose)"
    description = (f"{path.name} (CSV, {path}): {len(train)} train / {len(test)} test rows, {len(features)} "
                   f"features, target '{name}'{chosen}, {task}")
    return Dataset(path.stem, x[train], y[train], x[test], y[test], num_classes, description,
                   raw_format=f"rows of {path.name}'s feature columns, as float32", class_names=class_names,
                   columns=[header[c] for c in features], target_column=name)


def _integer(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value == int(value)
