"""Loading a compiled model.cu library through ctypes, and running its functions.

    library = Library("out/mlp/model.so", manifest)    # loads anywhere: the CUDA runtime is linked statically
    session = library.session()                         # CudaUnavailableError without a driver or a device
    session.load(params, state)                         # into device memory, once
    loss = session.run("train_step", batch, {"lr": 1e-3})["loss"]   # per step: the batch in, the loss out
    session.launch_stats("train_step")                  # direct calls, CUDA graphs captured and replayed

From the second call of a function with the same symbol values (batch size, ...) on, the library replays the call's
kernels as one CUDA graph (templates/model.cu.j2 `bmc_steps`); `session.graphs = False` (or BMC_CUDA_GRAPHS=0 in the
environment) launches every kernel directly.

This module imports only NumPy (and bmc's error class when bmc is importable), so scripts can load it by path on a
machine where bmc's own dependencies are missing (benchmarks/gpu_check.py).
"""

from __future__ import annotations

import ctypes
import math
from pathlib import Path

import numpy as np

try:
    from bmc.diagnostics import BmcError as _Base
except ImportError:  # loaded by path, without bmc
    _Base = RuntimeError  # type: ignore[misc,assignment]

DTYPES = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}
ABI = 1


class CudaError(_Base):
    """A CUDA call or kernel of a compiled model failed; the message names the kernel and the .bm op it came from."""


class CudaUnavailableError(CudaError):
    """There is no CUDA driver or no CUDA device: a CUDA build can be written and compiled here, but not run."""


def _bind(lib: ctypes.CDLL) -> None:
    p, i, ll = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong
    lib.bmc_abi_version.restype = i
    lib.bmc_error.argtypes, lib.bmc_error.restype = [p], ctypes.c_char_p
    lib.bmc_create.argtypes, lib.bmc_create.restype = [ctypes.POINTER(p)], i
    lib.bmc_destroy.argtypes, lib.bmc_destroy.restype = [p], None
    lib.bmc_tensor_count.restype = i
    lib.bmc_write_tensor.argtypes, lib.bmc_write_tensor.restype = [p, i, p, ll], i
    lib.bmc_read_tensor.argtypes, lib.bmc_read_tensor.restype = [p, i, p, ll], i
    lib.bmc_run.argtypes = [p, i, ctypes.POINTER(ll), ctypes.POINTER(p), ctypes.POINTER(p), ctypes.POINTER(p), i]
    lib.bmc_run.restype = i
    if hasattr(lib, "bmc_launch_stats"):  # libraries built before CUDA graphs lack it
        lib.bmc_launch_stats.argtypes, lib.bmc_launch_stats.restype = [p, i, ctypes.POINTER(ll)], i


LAUNCH_STATS = ("direct", "captured", "replayed", "direct_kernels", "graph_nodes", "graph_kernels")

DRIVER = "libcuda.so.1"  # the CUDA driver, installed with the GPU's kernel module (not by the CUDA toolkit)


def require_device() -> None:
    """Raise CudaUnavailableError unless a CUDA driver with a device is present, asking the driver itself.

    Called before a compiled model is loaded (`build.load`, `build.module`), so that on a machine that cannot run
    it no build's library is ever loaded: loading runs the library's initializers, before any of its functions
    could report that there is no device."""
    try:
        driver = ctypes.CDLL(DRIVER)
    except OSError as e:
        raise CudaUnavailableError(f"no CUDA driver/device: cannot load the CUDA driver ({e})") from None
    count = ctypes.c_int(0)
    rc = driver.cuInit(0)
    if rc == 0:
        rc = driver.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0 or count.value == 0:
        reason = f"CUDA driver error {rc}" if rc else "no device"
        raise CudaUnavailableError(f"no CUDA driver/device: cuInit/cuDeviceGetCount says {reason}")


class Library:
    """A compiled model: the shared library and the manifest that describes its functions and tensors."""

    def __init__(self, path: str | Path, manifest: dict):
        self.path = Path(path)
        self.manifest = manifest
        try:
            self.lib = ctypes.CDLL(str(self.path.resolve()))
        except OSError as e:
            raise CudaError(f"cannot load the compiled model {self.path}: {e}") from None
        _bind(self.lib)
        if self.lib.bmc_abi_version() != ABI or manifest.get("abi") != ABI:
            raise CudaError(f"{self.path} was built for another bmc CUDA ABI; rebuild it")
        self.functions = {f["name"]: (k, f) for k, f in enumerate(manifest["functions"])}
        self.tensors = {t["name"]: (k, t) for k, t in enumerate(manifest["tensors"])}

    def session(self) -> Session:
        """A context on the device: its tensors allocated (zeros) and its stream created."""
        return Session(self)


class Session:
    def __init__(self, library: Library):
        self.library = library
        self.lib = library.lib
        ctx = ctypes.c_void_p()
        rc = self.lib.bmc_create(ctypes.byref(ctx))
        if rc != 0:
            message = self.lib.bmc_error(None).decode("utf-8", "replace")
            raise (CudaUnavailableError if rc == 2 else CudaError)(message)
        self.ctx = ctx
        self.graphs = True  # False: launch every kernel directly (no CUDA graph capture or replay)

    def _check(self, rc: int) -> None:
        if rc != 0:
            raise CudaError(self.lib.bmc_error(self.ctx).decode("utf-8", "replace"))

    def close(self) -> None:
        if getattr(self, "ctx", None):
            self.lib.bmc_destroy(self.ctx)
            self.ctx = None

    def __del__(self) -> None:
        self.close()

    # ---- persistent tensors: parameters and optimizer state ----------------------------------------------------

    def write(self, name: str, array) -> None:
        k, spec = self.library.tensors[name]
        a = np.asarray(array, dtype=DTYPES[spec["dtype"]], order="C")
        if list(a.shape) != spec["shape"]:
            raise CudaError(f"tensor '{name}' has shape {spec['shape']}, given {list(a.shape)}")
        self._check(self.lib.bmc_write_tensor(self.ctx, k, a.ctypes.data, a.nbytes))

    def read(self, name: str) -> np.ndarray:
        k, spec = self.library.tensors[name]
        a = np.empty(spec["shape"], dtype=DTYPES[spec["dtype"]])
        self._check(self.lib.bmc_read_tensor(self.ctx, k, a.ctypes.data, a.nbytes))
        return a

    def load(self, *groups: dict) -> None:
        """Write every tensor found in the given dicts (parameters, optimizer state)."""
        for group in groups:
            for name, array in (group or {}).items():
                if name in self.library.tensors:
                    self.write(name, array)

    def read_all(self, role: str) -> dict[str, np.ndarray]:
        return {name: self.read(name) for name, (_, spec) in self.library.tensors.items() if spec["role"] == role}

    # ---- running functions ---------------------------------------------------------------------------------------

    def run(self, function: str, feeds: dict, hyper: dict | None = None, outputs: list[str] | None = None,
            out: dict | None = None) -> dict:
        """Run a function on a batch. `feeds` maps input names to arrays: NumPy arrays (copied to the device), or
        device arrays with `__cuda_array_interface__` (CuPy, torch) used where they are. Returns the requested
        outputs (default: all) as NumPy arrays (the loss a 0-d array); or, with `out` (name -> preallocated device
        array), writes the outputs there and returns those arrays."""
        if function not in self.library.functions:
            raise CudaError(f"this build has no function '{function}' (it has {', '.join(self.library.functions)})")
        index, spec = self.library.functions[function]
        symbols: dict[str, int] = {}
        keep, pointers, shapes = [], [], []
        on_device = bool(spec["inputs"]) and all(hasattr(feeds.get(i["name"]), "__cuda_array_interface__")
                                                 for i in spec["inputs"])
        for item in spec["inputs"]:
            if item["name"] not in feeds:
                raise CudaError(f"{function} needs the input '{item['name']}'")
            value = feeds[item["name"]]
            if on_device:
                face = value.__cuda_array_interface__
                shape, ptr = tuple(face["shape"]), face["data"][0]
                if np.dtype(face["typestr"]) != np.dtype(DTYPES[item["dtype"]]) or face.get("strides") not in (None,):
                    raise CudaError(f"device input '{item['name']}' must be a contiguous {item['dtype']} array")
            else:
                a = np.asarray(value, dtype=DTYPES[item["dtype"]], order="C")
                keep.append(a)
                shape, ptr = a.shape, a.ctypes.data
            _bind_symbols(item, shape, symbols)
            shapes.append(shape)
            pointers.append(ptr)
        for item, shape in zip(spec["inputs"], shapes, strict=True):  # a product (N*T) once every input bound N, T
            _check_shape(item, shape, symbols)
        dims = [symbols[s] for s in spec["symbols"]]
        hyper = hyper or {}
        hyper_ptrs = []
        for item in spec["hyper"]:
            if item["name"] not in hyper:
                raise CudaError(f"{function} needs the hyper input '{item['name']}'")
            a = np.asarray(hyper[item["name"]], dtype=DTYPES[item["dtype"]]).reshape(())
            keep.append(a)
            hyper_ptrs.append(a.ctypes.data)
        wanted = set(outputs) if outputs is not None else None
        if out is not None:
            wanted = set(out)
        results, out_ptrs = {}, []
        for item in spec["outputs"]:
            if out is not None and item["name"] in out:
                face = out[item["name"]].__cuda_array_interface__
                shape = tuple(_size(d, symbols) for d in item["shape"])
                if tuple(face["shape"]) != shape or np.dtype(face["typestr"]) != np.dtype(DTYPES[item["dtype"]]):
                    raise CudaError(f"output '{item['name']}' must be a device {item['dtype']} array of shape {shape}")
                results[item["name"]] = out[item["name"]]
                out_ptrs.append(face["data"][0])
            elif wanted is None or item["name"] in wanted:
                shape = tuple(_size(d, symbols) for d in item["shape"])
                results[item["name"]] = np.empty(shape, dtype=DTYPES[item["dtype"]])
                out_ptrs.append(results[item["name"]].ctypes.data)
            else:
                out_ptrs.append(None)
        rc = self.lib.bmc_run(self.ctx, index, (ctypes.c_longlong * max(len(dims), 1))(*dims),
                              (ctypes.c_void_p * max(len(pointers), 1))(*pointers),
                              (ctypes.c_void_p * max(len(out_ptrs), 1))(*out_ptrs),
                              (ctypes.c_void_p * max(len(hyper_ptrs), 1))(*hyper_ptrs),
                              (1 if on_device else 0) | (2 if out is not None else 0) | (0 if self.graphs else 4))
        self._check(rc)
        return results

    def launch_stats(self, function: str) -> dict[str, int]:
        """How a function's calls ran so far: `direct` (kernels launched one by one), `captured` (CUDA graphs
        captured) and `replayed` (graph launches, one per call), `direct_kernels` (the kernels the last direct call
        launched), `graph_nodes` and `graph_kernels` (the nodes, kernels and copies, and the kernels of the last graph
        captured)."""
        index, _ = self.library.functions[function]
        stats = getattr(self.lib, "bmc_launch_stats", None)
        if stats is None:
            raise CudaError(f"{self.library.path} predates launch statistics; rebuild it")
        out = (ctypes.c_longlong * len(LAUNCH_STATS))()
        self._check(stats(self.ctx, index, out))
        return dict(zip(LAUNCH_STATS, (int(x) for x in out), strict=True))


def _size(d, symbols: dict[str, int]) -> int:
    if isinstance(d, int):
        return d
    unbound = [f for f in d.split("*") if not f.isdigit() and f not in symbols]
    if unbound:
        raise CudaError(f"the dim {d} needs {', '.join(unbound)}, which no input's shape gives")
    return math.prod(int(f) if f.isdigit() else symbols[f] for f in d.split("*"))


def _bind_symbols(item: dict, shape: tuple, symbols: dict[str, int]) -> None:
    declared = item["shape"]
    if len(shape) != len(declared):
        raise CudaError(f"input '{item['name']}' must have {len(declared)} axes {declared}, got shape {list(shape)}")
    for d, n in zip(declared, shape, strict=True):
        if isinstance(d, str) and "*" not in d:
            symbols.setdefault(d, int(n))


def _check_shape(item: dict, shape: tuple, symbols: dict[str, int]) -> None:
    declared = item["shape"]
    for d, n in zip(declared, shape, strict=True):
        if _size(d, symbols) != n:
            raise CudaError(f"input '{item['name']}' must have shape {declared}, got {list(shape)} "
                            f"(with {', '.join(f'{k} = {v}' for k, v in symbols.items()) or 'no symbols'})")
