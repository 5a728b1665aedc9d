"""Writing an import: the `.bm` file and params.npz beside it, each atomically. An existing file is replaced only
when it is an earlier import's (its first line is the header bmc import writes, and the parameters file is the one
that header names); anything else is the user's and stays."""

from __future__ import annotations

from pathlib import Path

from bmc import artifacts
from bmc.diagnostics import UsageError
from bmc.onnx_import.writer import HEADER


def save(imported, bm_path: Path, params_path: Path | None) -> tuple[Path, Path]:
    if bm_path.suffix != ".bm":
        raise UsageError(f"the model file must end in .bm, not '{bm_path.name}'")
    params_path = params_path or bm_path.with_name("params.npz")
    if params_path.suffix != ".npz":
        raise UsageError(f"the parameters file must end in .npz, not '{params_path.name}'")
    ours = _ours(bm_path)
    if bm_path.exists() and not ours:
        raise UsageError(f"{bm_path} exists and is not a model bmc import wrote; bmc does not replace it",
                         notes=("choose another -o, or move the file away",))
    if params_path.exists() and not (ours and params_path.name in _header(bm_path)):
        raise UsageError(f"{params_path} exists and is not the parameters of an earlier import to {bm_path.name}; "
                         "bmc does not replace it", notes=("choose another --params-out, or move the file away",))
    artifacts.write_file(params_path, imported.params)
    artifacts.write_file(bm_path, imported.source)
    return bm_path, params_path


def _header(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline() + f.readline()
    except OSError:
        return ""


def _ours(path: Path) -> bool:
    return path.is_file() and _header(path).startswith(HEADER)
