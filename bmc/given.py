"""Parameters given by name: `bmc train/build --params FILE.npz` (what `bmc import` writes beside the `.bm` file it
writes, or any archive of named arrays), a build directory's parameters, or a dict in the Python API.

Every parameter of the model whose name (as `bmc check` lists it) is given takes the given values, converted to
the build's precision; one that is not given, or given with another shape (a replaced head), keeps its initializer,
and one note lists them. Given names the model has no parameter for are a warning. Optimizer state starts fresh.
Reading an archive never runs code: arrays of Python objects, which would need unpickling, are refused.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bmc.diagnostics import BmcWarning, UsageError
from bmc.ir.types import shape_str
from bmc.train.numerics import describe

SHOWN = 8  # names a note or warning lists before "and N more"
HOW = "save the parameters with np.savez(path, **{name: array}), one array per parameter name"


@dataclass
class Given:
    """Named arrays and where they came from (the file's name, for messages)."""

    arrays: dict[str, np.ndarray]
    source: str = "the given parameters"


@dataclass
class Taken:
    """Initial parameters with the given values in place, and what to tell the user about the rest."""

    params: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)
    warning: BmcWarning | None = None


def given(value, flag: str = "--params") -> Given:
    """`value` as named arrays: a path (a .npz archive, or a build directory and its params.npz), a mapping of
    names to arrays, or a `Given`."""
    if isinstance(value, Given):
        return value
    if isinstance(value, Mapping):
        return Given({str(k): np.asarray(v) for k, v in value.items()})
    if isinstance(value, str | Path):
        path = Path(value)
        if path.is_dir():
            archive = path / "params.npz"
            if not archive.is_file():
                raise UsageError(f"{flag} {path}: a directory without params.npz",
                                 notes=("give a .npz archive of named arrays, or a build directory written by "
                                        "bmc train -o or bmc build",))
            return Given(read(archive, flag), str(archive))
        return Given(read(path, flag), str(path))
    raise UsageError(f"params must be a path to a .npz archive or a dict of arrays, not {type(value).__name__}")


def read(path: Path, flag: str = "--params") -> dict[str, np.ndarray]:
    """The archive's arrays, read eagerly (a damaged member fails here, with the file's name), never unpickled."""
    try:
        with open(path, "rb") as f:  # opened here: np.load leaks its own handle when the zip directory is unreadable
            if f.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):  # else np.load tries a pickle, and suggests trusting it
                raise UsageError(f"{flag} {path}: not a .npz archive (a zip archive of .npy arrays)", notes=(HOW,))
            f.seek(0)
            try:
                loaded = np.load(f, allow_pickle=False)
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
                raise UsageError(f"{flag} {path}: not a .npz archive ({e})", notes=(HOW,)) from None
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise UsageError(f"{flag} {path}: a single array (.npy format), not a .npz archive of named arrays",
                                 notes=(HOW,))
            with loaded:
                return {name: _member(loaded, name, path, flag) for name in loaded.files}
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{flag} {path}: a directory, not a .npz archive") from None
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot read it: {e.strerror or e}") from None


def _member(loaded, name: str, path: Path, flag: str) -> np.ndarray:
    try:
        return loaded[name]
    except ValueError as e:
        if "allow_pickle" in str(e):  # object arrays: loading them would mean unpickling untrusted data
            raise UsageError(f"{flag} {path}: '{name}' is an array of Python objects, which bmc does not load "
                             "(it would need unpickling)",
                             notes=("save numeric arrays, e.g. np.asarray(w, dtype=np.float32)",)) from None
        raise UsageError(f"{flag} {path}: the array '{name}' is damaged: {e}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise UsageError(f"{flag} {path}: the array '{name}' is damaged: {e}") from None


def take(given: Given, initial: dict[str, np.ndarray], types: dict[str, str]) -> Taken:
    """`initial` (every parameter, freshly initialized) with the given arrays of the same names and shapes in
    place, converted to the initial arrays' dtypes. `types` are the parameters' types as `bmc check` shows them
    (`f32[64, 10]`), for the note. A given array of the right name and shape that is not finite is an error."""
    params = dict(initial)
    kept: list[str] = []  # the names (and, for another shape, both shapes) of those that keep their initializer
    missing = [name for name in initial if name not in given.arrays]
    for name, start in initial.items():
        if name not in given.arrays:
            kept.append(name)
            continue
        array = given.arrays[name]
        if array.shape != start.shape:
            kept.append(f"{name} ({types.get(name, shape_str(start.shape))} here, {shape_str(array.shape)} in "
                        f"{Path(given.source).name})")
            continue
        if array.dtype.kind not in "biuf":
            raise UsageError(f"{given.source}: '{name}' holds {array.dtype} values, not numbers")
        with np.errstate(all="ignore"):
            value = array.astype(start.dtype)
        bad = describe(array) or describe(value)
        if bad is not None:
            too_large = describe(array) is None
            raise UsageError(f"{given.source}: parameter '{name}' holds {bad}"
                             + (f" once converted to {start.dtype}" if too_large else ""),
                             notes=("bmc starts training only from finite values",))
        params[name] = value
    notes = []
    if kept:
        word = "parameter" if len(kept) == 1 else "parameters"
        where = "not in" if len(kept) == len(missing) else "not taken from"
        notes.append(f"{len(kept)} {word} {where} {Path(given.source).name} {'is' if len(kept) == 1 else 'are'} "
                     f"initialized: {_listed(kept)}")
    unknown = [name for name in given.arrays if name not in initial]
    warning = None
    if unknown:
        warning = BmcWarning(f"{given.source} holds {len(unknown)} {'array' if len(unknown) == 1 else 'arrays'} "
                             f"the model has no parameter for: {_listed(unknown)}",
                             notes=("did you rename a statement? `bmc check` lists the model's parameter names",))
    if not any(name in given.arrays for name in initial) and initial:
        raise UsageError(f"{given.source} holds no parameter of this model", notes=(
            f"the model's parameters are {_listed(list(initial))}; the file holds {_listed(list(given.arrays))}"
            if given.arrays else "the file holds no arrays", "`bmc check` lists the model's parameter names"))
    return Taken(params, notes, warning)


def _listed(names: list[str]) -> str:
    more = len(names) - SHOWN
    return ", ".join(names[:SHOWN]) + (f" and {more} more" if more > 0 else "")
