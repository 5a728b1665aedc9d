"""Compiling model.cu with nvcc: SASS for Hopper (sm_90) plus compute_90 PTX that newer GPUs JIT-compile, the CUDA
runtime linked statically (nvcc's default) so the library loads anywhere, `ptxas -v` statistics per kernel
(registers, spills), a cache keyed by the SHA-256 of the source, the flags and nvcc's version, and nvcc errors mapped
back to the .bm statement of the kernel they are in (through the `// bmc: FILE:LINE` markers of the source).

Like runtime.py this module needs only the standard library, so scripts can load it by path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

try:
    from bmc.diagnostics import BmcError as _Base
except ImportError:  # loaded by path, without bmc
    _Base = RuntimeError  # type: ignore[misc,assignment]

ARCH = "90"
LIBRARY = "model.so"


class NvccError(_Base):
    """nvcc is missing, or failed on generated code (the message says which .bm statement the kernel came from)."""


@dataclass
class Compiled:
    path: Path  # the shared library (in the cache)
    kernels: dict[str, dict] = field(default_factory=dict)  # ptxas: registers, spill_stores, spill_loads, stack
    cached: bool = False
    command: list[str] = field(default_factory=list)

    def spills(self) -> dict[str, dict]:
        return {k: v for k, v in self.kernels.items() if v.get("spill_stores") or v.get("spill_loads")}


def find_nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    for candidate in ("/usr/local/cuda/bin/nvcc", "/opt/cuda/bin/nvcc"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def flags(arch: str = ARCH) -> list[str]:
    return ["-O3", "-std=c++17", "-shared", "-Xcompiler", "-fPIC", "-cudart", "static",
            "-gencode", f"arch=compute_{arch},code=sm_{arch}", "-gencode", f"arch=compute_{arch},code=compute_{arch}",
            "-Xptxas", "-v", "-lineinfo"]


def cache_root() -> Path:
    env = os.environ.get("BMC_CACHE_DIR")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bmc"
    return base / "cuda"


def nvcc_version(nvcc: str) -> str:
    try:
        return subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        raise NvccError(f"cannot run {nvcc}: {e}") from None


def compile_library(source: str, arch: str = ARCH, nvcc: str | None = None, cache: Path | None = None,
                    timeout: float = 1800) -> Compiled:
    """The compiled library of `source`, from the cache when the same source was compiled with the same flags."""
    nvcc = nvcc or find_nvcc()
    if nvcc is None:
        raise NvccError("nvcc was not found (install the CUDA toolkit, or put nvcc on PATH); model.cu was written "
                        "but not compiled")
    command = [nvcc, *flags(arch)]
    key = hashlib.sha256("\0".join([source, " ".join(command[1:]), nvcc_version(nvcc)]).encode()).hexdigest()
    entry = (cache or cache_root()) / key[:32]
    if (entry / LIBRARY).exists() and (entry / "ptxas.json").exists():
        return Compiled(entry / LIBRARY, json.loads((entry / "ptxas.json").read_text()), True, command)
    entry.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=entry.parent))
    try:
        (work / "model.cu").write_text(source, encoding="utf-8")
        command = [*command, "-o", str(work / LIBRARY), str(work / "model.cu")]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=work)
        except subprocess.TimeoutExpired:
            raise NvccError(f"nvcc took longer than {timeout:.0f} s on model.cu") from None
        log = result.stdout + result.stderr
        (work / "nvcc.log").write_text(log, encoding="utf-8")
        if result.returncode != 0:
            raise NvccError(explain(log, source))
        kernels = parse_ptxas(log)
        (work / "ptxas.json").write_text(json.dumps(kernels, indent=1, sort_keys=True), encoding="utf-8")
        try:
            work.rename(entry)
        except OSError:  # another process cached the same library meanwhile
            shutil.rmtree(work, ignore_errors=True)
        return Compiled(entry / LIBRARY, kernels, False, command)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


_FUNCTION = re.compile(r"ptxas info\s*: (?:Compiling entry function|Function properties for) '?([\w$]+)'?")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGISTERS = re.compile(r"Used (\d+) registers")


def parse_ptxas(log: str) -> dict[str, dict]:
    """Per function: registers, stack frame and spill bytes, from `ptxas -v` output."""
    out: dict[str, dict] = {}
    current = None
    for line in log.splitlines():
        m = _FUNCTION.search(line)
        if m:
            current = out.setdefault(m.group(1), {})
            continue
        if current is None:
            continue
        m = _FRAME.search(line)
        if m:
            current.update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
        m = _REGISTERS.search(line)
        if m:
            current["registers"] = int(m.group(1))
    return out


_ERROR = re.compile(r"^(?:.*[/\\])?model\.cu\((\d+)\): (error|catastrophic error)\s*:?\s*(.*)$")


def explain(log: str, source: str) -> str:
    """nvcc's errors, each with the .bm statement whose kernel (or host step) holds the failing line."""
    lines = source.splitlines()
    messages = []
    for text in log.splitlines():
        m = _ERROR.match(text.strip())
        if not m:
            continue
        number = int(m.group(1))
        origin = next((lines[k].split("// bmc:", 1)[1].strip() for k in range(min(number, len(lines)) - 1, -1, -1)
                       if "// bmc:" in lines[k]), "the fixed part of model.cu")
        messages.append(f"{origin}: nvcc: model.cu:{number}: {m.group(3)}")
    if not messages:
        tail = "\n".join(log.strip().splitlines()[-20:])
        return f"nvcc failed on model.cu:\n{tail}"
    return "nvcc failed on the code generated for:\n" + "\n".join(f"  {m}" for m in messages)
