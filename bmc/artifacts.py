"""Writing and reading build directories atomically.

A build directory holds `model.py` (the generated module), `params.npz`, `state.npz` (optimizer state, when the
build can train) and `manifest.json`. A directory is written beside its final place and renamed into it, so an
interrupted or failed run never leaves a half-written build, and a failure never touches an existing one.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bmc.diagnostics import UsageError

MANIFEST = "manifest.json"


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def write_build(out_dir: str | Path, files: dict[str, str | bytes]) -> Path:
    """Replace `out_dir` with exactly `files`, atomically."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"output path {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise UsageError(f"output directory {out} is not empty and is not a bmc build; refusing to replace it")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    except OSError as e:
        raise UsageError(f"cannot write to {parent}: {e.strerror or e}") from None
    try:
        for name, content in files.items():
            path = tmp / name
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        old = None
        if out.exists():
            old = parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UsageError(f"cannot write {out}: {e.strerror or e}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


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


