"""Writing and reading build directories: bmc replaces only what it wrote, and a build is never half there.

A build directory holds `model.py` (or `model.onnx`, `model.cu`...), `params.npz`, `state.npz` (optimizer state,
when the build can train) and `manifest.json`. The manifest's `bmc_build` section lists every file bmc wrote with
its size and SHA-256: that is how bmc recognizes its own build. An output directory is replaced only when it is
missing, empty, or such a build with nothing added or changed; anything else (a foreign manifest.json, a file bmc did
not write, an edited one) is refused before any work starts (`check_target`) and again just before the swap.

The new build is written under a temporary name beside DIR, each file fsynced, and swapped in atomically
(bmc/fs_atomic.py): at every instant DIR is the complete old or the complete new build, and what an interrupted
run leaves behind is removed by the next one. A symbolic link DIR stays a link: the directory it points to is
replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bmc import fs_atomic
from bmc.diagnostics import UsageError

MANIFEST = "manifest.json"
FORMAT = 1  # of the manifest's `bmc_build` section
LEGACY_FILES = frozenset({MANIFEST, "model.py", "params.npz", "state.npz", "model.onnx", "train_step.onnx",
                          "model.cu", "model.so"})  # what builds of bmc before the `bmc_build` section held
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the date of every .npz member: the same arrays give the same bytes

# The content of one file of a build: text, bytes, a file to copy, or arrays to store as an .npz archive.
Content = str | bytes | Path | Mapping[str, np.ndarray]


# ---- writing -------------------------------------------------------------------------------------------------------

def write_build(out_dir: str | Path, files: Mapping[str, Content], manifest: Mapping[str, Any]) -> Path:
    """Replace the build at `out_dir` with exactly `files` and `manifest` (to which the list of files is added),
    atomically. Refuses (UsageError) a target that is not safe to replace; see `check_target`."""
    out = Path(out_dir)
    target = check_target(out)
    parent = target.parent
    try:
        if not parent.is_dir():
            fs_atomic.step(f"mkdir {parent}")
            parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / fs_atomic.temp_name(target.name, "new")
        fs_atomic.step(f"mkdir {tmp.name}")
        os.mkdir(tmp)
    except OSError as e:
        raise UsageError(f"cannot write to {parent}: {e.strerror or e}") from None
    with _removed_on_failure(tmp, out):
        listed = {}
        for name, content in files.items():
            assert name != MANIFEST and name == Path(name).name, name
            listed[name] = _write_file(tmp / name, content)
        info = {**manifest, "bmc_build": {"format": FORMAT, "files": listed}}
        _write_file(tmp / MANIFEST, json.dumps(info, indent=2) + "\n")
        fs_atomic.fsync_dir(tmp)
        _check_contents(target, out)  # once more: the directory may have changed while bmc trained or wrote
        fs_atomic.install_dir(tmp, target)
    return out


def write_file(path: str | Path, content: Content) -> Path:
    """Replace the single file `path` atomically (an ONNX export): written beside it under a temporary name bmc
    recognizes (removed by the next write if a crash leaves it), fsynced, renamed over it, the directory fsynced. A
    symbolic link stays a link, to the new file."""
    path = Path(path)
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise UsageError(f"cannot write {path}: it is a directory")
    tmp = target.parent / fs_atomic.temp_name(target.name, "new")
    with _removed_on_failure(tmp, path):
        _check_parent(target.parent)
        if not target.parent.is_dir():
            fs_atomic.step(f"mkdir {target.parent}")
            target.parent.mkdir(parents=True, exist_ok=True)
        fs_atomic.recover(target)
        _write_file(tmp, content)
        fs_atomic.step(f"rename {tmp.name} {target.name}")
        os.replace(tmp, target)
        fs_atomic.fsync_dir(target.parent)
    return path


@contextlib.contextmanager
def _removed_on_failure(tmp: Path, shown: Path):
    """Remove the temporary `tmp` if the block fails, however it fails; an OSError is a usage error about `shown`."""
    try:
        yield
    except OSError as e:
        fs_atomic.remove_quietly(tmp)
        raise UsageError(f"cannot write {shown}: {e.strerror or e}") from None
    except BaseException:
        fs_atomic.remove_quietly(tmp)
        raise


def _write_file(path: Path, content: Content) -> dict[str, Any]:
    """Create `path` (it must not exist), write and fsync `content`; its size and SHA-256 as written."""
    fs_atomic.step(f"create {path.name}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "wb") as f:
        fs_atomic.step(f"write {path.name}")
        if isinstance(content, str):
            f.write(content.encode("utf-8"))
        elif isinstance(content, bytes):
            f.write(content)
        elif isinstance(content, Path):
            with open(content, "rb") as src:
                shutil.copyfileobj(src, f)
        elif isinstance(content, Mapping):
            write_npz(f, content)
        else:
            raise TypeError(f"cannot write {type(content).__name__} to {path.name}")
        f.flush()
        fs_atomic.step(f"fsync {path.name}")
        os.fsync(f.fileno())
    return _digest(path)


def write_npz(f, arrays: Mapping[str, np.ndarray]) -> None:
    """An uncompressed .npz archive (what np.savez writes, and np.load reads) streamed array by array to the open
    binary file `f`, never built in memory whole. Any name works, even one np.savez takes as its own argument."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, value in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            member.external_attr = 0o600 << 16
            with archive.open(member, "w", force_zip64=True) as g:
                np.lib.format.write_array(g, np.asanyarray(value), allow_pickle=False)


def _digest(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": h.hexdigest()}


# ---- what may be replaced --------------------------------------------------------------------------------------------

def check_target(out_dir: str | Path) -> Path:
    """Check, before any long work, that a build can be written at `out_dir`; the path bmc will replace (the
    directory a symbolic link points to). Also removes what an interrupted earlier write left (fs_atomic.recover).

    Writable: a missing directory whose nearest existing ancestor is a writable directory, an empty directory, or a
    bmc build with no file added or changed since bmc wrote it. Everything else is a UsageError saying what is there
    and what to do."""
    out = Path(out_dir)
    target = Path(os.path.realpath(out))
    if out.is_symlink() and not target.exists():
        raise UsageError(f"output path {out} is a symbolic link to {target}, which does not exist",
                         notes=("create that directory, or remove the link",))
    if not target.name:
        raise UsageError(f"output path {out} is the root directory; choose a directory for the build")
    cwd = Path.cwd()
    if target.exists() and (cwd == target or target in cwd.parents):
        raise UsageError(f"output directory {out} holds the current directory; bmc cannot replace it",
                         notes=("choose another -o, or run bmc from another directory",))
    _check_parent(target.parent)
    try:
        fs_atomic.recover(target, _complete)
    except OSError as e:
        raise UsageError(f"cannot write to {target.parent}: {e.strerror or e}") from None
    _check_contents(target, out)
    return target


def check_writable(path: Path) -> None:
    """A UsageError unless a file can be written at `path` (its nearest existing ancestor is a writable
    directory)."""
    _check_parent(Path(os.path.realpath(path)).parent)


def check_unchanged_build(path: Path) -> None:
    """A UsageError unless `path` is a non-empty bmc build with nothing added or changed: what bmc may remove."""
    if not path.is_dir() or path.is_symlink() or not any(path.iterdir()):
        raise UsageError(f"{path} is not a bmc build")
    _check_contents(path, path)


def _check_parent(parent: Path) -> None:
    ancestor = parent
    while not ancestor.exists() and not ancestor.is_symlink() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"cannot write to {parent}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to {parent}: permission denied")


def _check_contents(target: Path, out: Path) -> None:
    """Refuse `target` unless bmc may replace it: missing, an empty directory, or an unchanged bmc build."""
    if not os.path.lexists(target):
        return
    if not target.is_dir():
        raise UsageError(f"output path {out} exists and is not a directory",
                         notes=("choose another -o, or remove it",))
    try:
        entries = sorted(os.listdir(target))
    except OSError as e:
        raise UsageError(f"cannot read {out}: {e.strerror or e}") from None
    if not entries:
        return
    files = _listed_files(target)
    if files is None:
        why = "it has no manifest.json" if MANIFEST not in entries else "its manifest.json was not written by bmc"
        raise UsageError(f"output directory {out} is not a bmc build ({why}); refusing to replace it",
                         notes=(f"it holds {_names(entries)}",
                                "choose another -o, or remove the directory if none of it is needed"))
    extra = [n for n in entries if n != MANIFEST and n not in files]
    if extra:
        raise UsageError(f"output directory {out} is a bmc build, but {_names(extra)} "
                         f"{'was' if len(extra) == 1 else 'were'} not written by bmc; refusing to replace it",
                         notes=("bmc replaces only what it wrote: move those files elsewhere, or choose another -o",))
    changed = [n for n in entries if n != MANIFEST and not _unchanged(target / n, files[n])]
    if changed:
        raise UsageError(f"output directory {out} is a bmc build, but {_names(changed)} changed since bmc wrote "
                         f"{'it' if len(changed) == 1 else 'them'}; refusing to replace it",
                         notes=("bmc replaces only what it wrote: keep a copy of your changes elsewhere and remove "
                                "the directory, or choose another -o",))


def _listed_files(build: Path) -> dict[str, dict | None] | None:
    """The files bmc wrote into `build` by its manifest (None for a legacy build's: their names only), or None if
    the manifest is missing or not bmc's."""
    try:
        info = json.loads((build / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(info, dict):
        return None
    section = info.get("bmc_build")
    if isinstance(section, dict) and isinstance(section.get("files"), dict):
        files = section["files"]
        plain = all(n == Path(n).name and n not in (".", "..", MANIFEST) for n in files)
        digests = all(isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
                      for v in files.values())
        return files if plain and digests else None
    if section is None and "bmc_version" in info and "model" in info:  # written before the `bmc_build` section
        return {name: None for name in LEGACY_FILES - {MANIFEST}}
    return None


def _unchanged(path: Path, listed: dict | None) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    if listed is None:
        return True  # a legacy build recorded no digests
    return path.stat().st_size == listed["size"] and _digest(path)["sha256"] == listed["sha256"]


def _complete(build: Path) -> bool:
    """Whether an old build moved aside is whole (every listed file there at its size), so worth restoring."""
    if not build.is_dir() or build.is_symlink():
        return False
    if not any(build.iterdir()):
        return True
    files = _listed_files(build)
    if files is None:
        return False
    return all(v is None or ((build / n).is_file() and (build / n).stat().st_size == v["size"])
               for n, v in files.items())


def _names(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


# ---- reading -------------------------------------------------------------------------------------------------------

def read_manifest(build_dir: str | Path) -> dict[str, Any]:
    path = Path(build_dir) / MANIFEST
    if not path.exists():
        raise UsageError(f"{build_dir} is not a bmc build (no {MANIFEST}); create one with `bmc build` or "
                         "`bmc train -o`")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UsageError(f"{path} is damaged: {e}") from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    try:
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    except Exception as e:
        raise UsageError(f"{path} is damaged: {e}") from None
