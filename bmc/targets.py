"""The targets bmc builds for, by name: the one place in bmc/ that reaches the backends.

Each target is a module of its backend (`backends/<name>/target.py`) with the same functions:

    generate(model, train) -> str                  the generated source (a target without one says so)
    build(model, out_dir, params, state, *, seed, history, data, trained, train_step) -> Path
    load(build_dir, manifest) -> Build             a build directory it wrote
    fit(model, module, config, params, state, task, *, log, progress, watch) -> History
    TABLES                                         its rule tables (bmc ops lists them)

`bmc build --target NAME` and the API's `target=` take a target's name; `bmc train --backend NAME` takes its runner's
(`onnxruntime` runs the onnx target's train step).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from bmc.diagnostics import UsageError


@dataclass(frozen=True)
class Target:
    name: str  # what --target calls it
    runner: str  # what `train --backend` calls it
    module: str  # the backend's module with the target's functions
    needs: str  # what to install when its module cannot be imported

    def load(self) -> ModuleType:
        try:
            return importlib.import_module(self.module)
        except ImportError as e:
            if (e.name or "bmc").partition(".")[0] == "bmc":
                raise  # a bug of bmc's own, not a missing package
            raise UsageError(f"the {self.name} target needs {self.needs} ({e})") from None


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("numpy", "numpy", "bmc.backends.numpy.target", "numpy"),
    Target("onnx", "onnxruntime", "bmc.backends.onnx.target", "the onnx and onnxruntime packages; pip install onnx "
           "onnxruntime-gpu"),
    Target("cuda", "cuda", "bmc.backends.cuda.target", "numpy"),
)}
RUNNERS: dict[str, Target] = {t.runner: t for t in TARGETS.values()}


def target(name: str) -> ModuleType:
    if name not in TARGETS:
        raise UsageError(f"target '{name}' is not available (available: {', '.join(TARGETS)})")
    return TARGETS[name].load()


def runner(name: str) -> ModuleType:
    """The target whose train step `bmc train --backend NAME` runs."""
    if name not in RUNNERS:
        raise UsageError(f"unknown backend '{name}' (available: {', '.join(RUNNERS)})")
    return RUNNERS[name].load()
