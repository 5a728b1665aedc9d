"""The CUDA backend: CUDA C that bmc writes itself from the IR (model.cu), compiled by nvcc into a shared library with
a plain C ABI that Python loads through ctypes. No cuBLAS, cuDNN, CuPy or PyTorch at run time.

    program = generate(name, source, source_hash, {"forward": inference, "train_step": train,
                                                   "gradients": gradients, "apply": apply})
    library = nvcc.compile_library(program.source, workdir)          # backends/cuda/nvcc.py
    session = runtime.Library(library.path, program.manifest).session()   # backends/cuda/runtime.py

`bmc.backends.cuda.build` writes and loads build directories (model.cu, the library, manifest.json, parameters).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from bmc.backends.cuda import gemm, norm, reduce, scan  # noqa: F401 - importing them registers their kernels
from bmc.backends.cuda.codegen import ModuleWriter, render
from bmc.backends.cuda.codegen import supports as supports
from bmc.backends.cuda.ctext import SIZES
from bmc.backends.cuda.host import function_source
from bmc.backends.cuda.memory import PERSISTENT_ROLES, gradient_buffers
from bmc.backends.cuda.wrap import wrap_source

from bmc.diagnostics import UsageError
from bmc.ir.graph import Graph, Value
from bmc.version import __version__


@dataclass
class Program:
    source: str  # model.cu
    manifest: dict  # what the runtime needs: functions (inputs, outputs, symbols), persistent tensors


def persistent_tensors(functions: dict[str, Graph]) -> list[dict]:
    """The device-resident tensors of every function, by name, in first-seen order: parameters, optimizer state and
    the gradient buffers of a split step (`grad/<param>`: written by `gradients`, read by `apply`, and by the host
    between them)."""
    out: dict[str, dict] = {}

    def add(name: str, role: str, v: Value) -> None:
        if name in out:
            return
        if not v.type.is_static:
            raise NotImplementedError(f"{role} '{name}' has a symbolic shape {v.type}")
        out[name] = {"name": name, "role": role, "dtype": v.type.dtype, "shape": list(v.type.shape),
                     "bytes": math.prod(v.type.shape) * SIZES[v.type.dtype]}

    for graph in functions.values():
        for v in graph.inputs_with_role(*PERSISTENT_ROLES):
            add(v.name, graph.roles[v], v)
        for key, v in gradient_buffers(graph).items():
            add(key, "grad", v)
    return list(out.values())


_PRECISION: contextvars.ContextVar[str] = contextvars.ContextVar("bmc_cuda_precision", default="fp32")


@contextlib.contextmanager
def precision(name: str) -> Iterator[None]:
    """The GEMM precision of the builds generated inside (`bmc build --target cuda --precision`, `bmc train
    --backend cuda --precision`), for the callers that do not pass `precision` to `generate` themselves."""
    check_precision(name)
    token = _PRECISION.set(name)
    try:
        yield
    finally:
        _PRECISION.reset(token)


def check_precision(name: str, dtype: str = "f32") -> str:
    if name not in gemm.PRECISIONS:
        raise UsageError(f"precision '{name}' is not one of {', '.join(gemm.PRECISIONS)}")
    if name != "fp32" and dtype != "f32":
        raise UsageError(f"--precision {name} is for f32 builds; the products of an {dtype} build are exact",
                         notes=("drop --precision, or build with --dtype f32",))
    return name


def generate(name: str, source: str, source_hash: str, functions: dict[str, Graph], dtype: str = "f32",
             precision: str | None = None) -> Program:
    """model.cu for a model's graphs (e.g. forward, train_step, evaluate) and its manifest entry. `precision` is
    that of the f32 matrix products (gemm.py): fp32 (exact, the default), or tf32 / bf16 on the tensor cores; None
    takes the enclosing `precision(...)` scope's."""
    precision = check_precision(_PRECISION.get() if precision is None else precision, dtype)
    tensors = persistent_tensors(functions)
    index = {t["name"]: k for k, t in enumerate(tensors)}
    module = ModuleWriter(precision=precision)
    texts, specs = [], []
    for k, (fname, graph) in enumerate(functions.items()):
        text, spec = function_source(module, fname, graph, k, index)
        texts.append(text)
        specs.append(spec)
    text = render(model=name, version=__version__, dtype=dtype, precision=precision, source=source,
                  kernels="\n\n".join(module.kernels), tensors=tensors, functions=specs, kernel_info=module.kernel_info,
                  max_symbols=max([len(s.symbols) for s in specs] + [1]), functions_source="\n\n".join(texts))
    manifest = {"abi": 1, "model": name, "source": source, "source_sha256": source_hash, "dtype": dtype,
                "precision": precision, "tensors": tensors, "functions": [asdict(s) for s in specs],
                "kernels": len(module.kernel_info)}
    return Program(wrap_source(text), manifest)
