"""Build a generated model.cu for the CPU emulator: g++ with this directory's cuda_runtime.h first on the include path,
into a shared library that backends/cuda/runtime.py loads exactly like the nvcc build. Cached by content hash."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLAGS = ["-O1", "-std=c++17", "-shared", "-fPIC", "-pthread", "-w"]


def compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "g++"))


def build(source: str, cache: Path | None = None) -> Path:
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++) for the CUDA emulator")
    header = (HERE / "cuda_runtime.h").read_text(encoding="utf-8")
    key = hashlib.sha256("\0".join([source, header, cxx, *FLAGS]).encode()).hexdigest()[:32]
    root = cache or Path(os.environ.get("BMC_CACHE_DIR") or Path.home() / ".cache" / "bmc") / "cuda-emulator"
    path = root / f"{key}.so"
    if path.exists():
        return path
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        cu = Path(tmp) / "model.cu"
        cu.write_text(source, encoding="utf-8")
        out = Path(tmp) / "model.so"
        result = subprocess.run([cxx, *FLAGS, "-I", str(HERE), "-x", "c++", str(cu), "-o", str(out)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"g++ failed on the generated model.cu:\n{result.stderr[-4000:]}")
        os.replace(out, path)
    return path
