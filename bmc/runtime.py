"""Loading a generated NumPy module and calling it: the program behind `bmc train`, `bmc eval` and the API."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from bmc.diagnostics import UsageError

_counter = itertools.count()

# glibc's mallopt parameters: arrays up to 256 MiB come from the heap, and freed memory stays with the process (up to
# 1 GiB at the top of the heap) instead of going back to the system and being faulted in again by the next step
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
KEEP_FREED = ((M_MMAP_THRESHOLD, 256 << 20), (M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 64 << 20))


def keep_freed_memory() -> bool:
    """Let this process reuse the memory a training step frees rather than return it to the system: every step
    allocates the same large temporaries, and with glibc's defaults each one is mapped and faulted in anew (5,000
    page faults per CNN step, 11 to 16 ms). For a process that trains (`bmc train`, the benchmarks); False, and no
    change, where the C library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in KEEP_FREED)


def load_module(path: str | Path) -> ModuleType:
    """Import a generated `model.py` under a unique name (several builds may be loaded at once)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"no generated module at {path}")
    name = f"bmc_generated_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_source(source: str, filename: str = "<bmc generated>") -> ModuleType:
    """Execute generated source in a fresh module (the API's in-memory path; no files written)."""
    name = f"bmc_generated_{next(_counter)}"
    module = ModuleType(name)
    module.__file__ = filename
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


def predict_batches(module: ModuleType, params: dict[str, np.ndarray], inputs: dict[str, np.ndarray],
                    batch: int = 1024) -> dict[str, np.ndarray]:
    """Run `forward` over inputs in batches and concatenate the outputs."""
    names = list(module.INPUTS)
    n = len(next(iter(inputs.values())))
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, batch):
        try:
            out = module.forward(params, *(inputs[k][start:start + batch] for k in names))
        except getattr(module, "InputError", ()) as e:  # the generated module's own check of its inputs
            raise UsageError(str(e)) from None
        for k, v in out.items():
            chunks.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate(v) if v[0].ndim else np.asarray(v) for k, v in chunks.items()}
