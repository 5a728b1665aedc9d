"""CUDA builds: `bmc build FILE --target cuda -o DIR` and `bmc train FILE --backend cuda` go through here.

A build directory holds model.cu (the generated source), model.so (nvcc's library, the CUDA runtime linked in),
manifest.json (the model's description, as for NumPy builds, plus a `cuda` section: functions, device tensors, nvcc
flags and ptxas statistics), params.npz and state.npz.

`CudaModule` runs a build's functions behind the interface of a generated NumPy module (INPUTS, forward,
train_step, gradients, apply, ...), so the training loop drives either backend. Parameters and optimizer state stay
in device memory for the whole run: the dicts passed in are uploaded when first seen, each step sends only the batch
and returns the loss (and the model's outputs, for the metrics), and `download(params, state)` copies the trained
values back. The split step's gradients live in device buffers (`grad/<param>`): `gradients` fills them and returns
copies, `apply` uploads the dict it is given into them (the host may have combined several workers' gradients) and
updates the parameters and state from them.

Each function's kernels run as one CUDA graph from the second call with the same batch size on (runtime.py). A build
counts the kernel launches and device copies of one call of each function at the train block's batch (launches.py):
`bmc build` prints them, and the manifest records them as `cuda.launches`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bmc.backends.cuda import Program, generate, launches, nvcc
from bmc.backends.cuda.runtime import CudaError, CudaUnavailableError, Library, Session, require_device

from bmc import artifacts
from bmc.diagnostics import UsageError
from bmc.manifest import describe

SOURCE, LIBRARY = "model.cu", nvcc.LIBRARY


def program(model) -> Program:
    """model.cu for a `bmc.Model`: forward, and when it has a loss train_step, evaluate and the train step's two
    halves, gradients and apply (data-parallel training)."""
    c = model.compiled
    functions = {"forward": c.inference()}
    if c.model.loss is not None:
        functions["train_step"] = c.train_step()
        functions["evaluate"] = c.evaluation()
        functions["gradients"] = c.gradients()
        functions["apply"] = c.apply()
    return generate(c.name, c.model.source.name, c.source_hash, functions, c.dtype)


def build_symbols(model) -> dict[str, int]:
    """The symbol values a build's launch counts are taken at: the batch axis at the train block's batch (none for
    full-batch training), a sequence axis at its training window (`sequence`, else the model's `context`)."""
    c = model.compiled
    config = c.config
    window = config.sequence or c.model.constants.get("context")
    values: dict[str, int] = {}
    for v in c.inference().inputs_with_role("input"):
        for k, d in enumerate(v.type.shape[:2]):
            value = config.batch if k == 0 else window
            if isinstance(d, str) and "*" not in d and isinstance(value, int):
                values.setdefault(d, value)
    return values


def launch_report(model, prog: Program) -> dict:
    """Launches per call of each function at the build's symbol values on an sm_90 GPU (launches.py)."""
    return launches.report(prog.source, prog.manifest["functions"], build_symbols(model))


def manifest(model, prog: Program, compiled: nvcc.Compiled | None, arch: str, counts: dict | None = None) -> dict:
    return {
        **describe(model.compiled, "cuda"),
        "cuda": {**prog.manifest, "library": LIBRARY if compiled else None, "arch": f"sm_{arch}",
                 "nvcc_flags": nvcc.flags(arch), "ptxas": compiled.kernels if compiled else {},
                 "launches": counts if counts is not None else launch_report(model, prog)},
    }


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def build(model, out_dir: str | Path, params=None, state=None, seed: int | None = None, arch: str = nvcc.ARCH,
          require_library: bool = True, log: Callable[[str], None] | None = _stderr) -> Path:
    """Write a CUDA build. Without nvcc: an error, or (require_library=False) model.cu and the manifest only. `log`
    gets the kernel launches per call of each function (None: nothing)."""
    artifacts.check_target(out_dir)  # before nvcc runs
    prog = program(model)
    compiled = None
    if require_library or nvcc.find_nvcc():
        compiled = nvcc.compile_library(prog.source, arch)
    if params is None:
        params, state = model.init_params(seed)
    files: dict[str, artifacts.Content] = {SOURCE: prog.source, "params.npz": params}
    if state:
        files["state.npz"] = state
    if compiled is not None:
        files[LIBRARY] = compiled.path
    counts = launch_report(model, prog)
    out = artifacts.write_build(out_dir, files, manifest(model, prog, compiled, arch, counts))
    if log is not None:
        log(launches.describe(counts))
    return out


class CudaModule:
    """A CUDA build behind the interface of a generated NumPy module (see the module docstring)."""

    def __init__(self, library: Library, outputs: bool = True):
        self.library = library
        self.session: Session = library.session()  # CudaUnavailableError without a driver or device
        self.with_outputs = outputs
        functions = {f["name"]: f for f in library.manifest["functions"]}
        self.functions = functions
        forward = functions["forward"]
        self.INPUTS = {i["name"]: (i["dtype"], i["shape"]) for i in forward["inputs"]}
        self.OUTPUTS = {o["name"]: (o["dtype"], o["shape"]) for o in forward["outputs"]}
        tensors = library.manifest["tensors"]
        self.PARAMS = {t["name"]: (t["dtype"], t["shape"]) for t in tensors if t["role"] == "param"}
        self.STATE = {t["name"]: (t["dtype"], t["shape"]) for t in tensors if t["role"] == "state"}
        train = functions.get("train_step")
        self.HYPER = {h["name"]: (h["dtype"], h["shape"]) for h in train["hyper"]} if train else {}
        self.GRADS = {t["name"]: (t["dtype"], t["shape"]) for t in tensors if t["role"] == "grad"}
        self._params: dict | None = None  # the dicts last uploaded (kept, so identity means "the same dict")
        self._state: dict | None = None

    def _upload(self, params: dict, state: dict | None = None) -> None:
        if params is not self._params:
            self.session.load(params)
            self._params = params
        if state is not None and state is not self._state:
            self.session.load(state)
            self._state = state

    def forward(self, params: dict, *inputs: np.ndarray) -> dict:
        self._upload(params)
        return self.session.run("forward", dict(zip(self.INPUTS, inputs, strict=True)))

    def train_step(self, params: dict, state: dict, batch: dict, *hyper) -> dict:
        """One step on the device; params and state are updated there (see `download`)."""
        self._upload(params, state)
        wanted = None if self.with_outputs else ["loss"]
        out = self.session.run("train_step", batch, dict(zip(self.HYPER, hyper, strict=True)), outputs=wanted)
        out["loss"] = float(out["loss"])
        return out

    def gradients(self, params: dict, batch: dict, *hyper) -> dict:
        """The first half of train_step: the loss, the model's outputs and 'grad/<name>' for every trainable
        parameter (host arrays; they stay in the device's gradient buffers too). The trainable parameters are only
        read; the running statistics it updates (batch norm's) are written into `params` too, as the NumPy module
        does, so that the host can combine them across workers (`apply` uploads them again)."""
        self._upload(params)
        spec = self.functions["gradients"]
        wanted = None if self.with_outputs else ["loss", *self.GRADS]
        out = self.session.run("gradients", batch, dict(zip([h["name"] for h in spec["hyper"]], hyper, strict=True)),
                               outputs=wanted)
        for name in spec["updates"]:
            params[name] = self.session.read(name)
        out["loss"] = float(out["loss"])
        return out

    def apply(self, params: dict, state: dict, grads: dict, *hyper) -> dict:
        """The second half of train_step: `grads` ('grad/<name>' arrays: what gradients() returned, or several
        workers' gradients combined) uploaded into the gradient buffers, and the running statistics from `params`
        (as gradients() left them there, or combined), then the optimizer update on the device."""
        self._upload(params, state)
        missing = [name for name in self.GRADS if name not in grads]
        if missing:
            raise CudaError(f"apply needs the gradients {', '.join(missing)}")
        for name in self.GRADS:
            self.session.write(name, grads[name])
        for name in self.functions["gradients"]["updates"]:
            self.session.write(name, params[name])
        spec = self.functions["apply"]
        return self.session.run("apply", {}, dict(zip([h["name"] for h in spec["hyper"]], hyper, strict=True)))

    def evaluate(self, params: dict, batch: dict) -> dict:
        self._upload(params)
        return self.session.run("evaluate", batch)

    def download(self, params: dict, state: dict) -> None:
        """Copy the device's parameters and optimizer state into the given dicts (after training)."""
        for name in self.PARAMS:
            params[name] = self.session.read(name)
        for name in self.STATE:
            state[name] = self.session.read(name)


def module(model, outputs: bool = True) -> CudaModule:
    """Generate, compile (cached) and load a model for training on the GPU."""
    require_device()
    prog = program(model)
    compiled = nvcc.compile_library(prog.source)
    return CudaModule(Library(compiled.path, prog.manifest), outputs)


def load(build_dir: str | Path) -> tuple[CudaModule, dict, dict, dict]:
    """(module, params, state, manifest) of a CUDA build directory; the parameters are on the device already."""
    build_dir = Path(build_dir)
    info = artifacts.read_manifest(build_dir)
    if info.get("target") != "cuda":
        raise UsageError(f"{build_dir} is a {info.get('target', 'numpy')} build, not a CUDA build")
    cuda = info["cuda"]
    if not cuda.get("library") or not (build_dir / cuda["library"]).exists():
        raise UsageError(f"{build_dir} has model.cu but no compiled library; rebuild it where nvcc is installed")
    require_device()
    mod = CudaModule(Library(build_dir / cuda["library"], cuda))
    params = artifacts.read_npz(build_dir / "params.npz")
    state = artifacts.read_npz(build_dir / "state.npz")
    mod._upload(params, state)
    return mod, params, state, info


__all__ = ["CudaError", "CudaModule", "CudaUnavailableError", "build", "load", "manifest", "module", "program"]
