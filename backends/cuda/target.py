"""The CUDA target: model.cu, nvcc's library and the parameters (build.py); training runs the generated kernels
on the device, with parameters and optimizer state resident there (bmc/targets.py lists what a target
provides)."""

from __future__ import annotations

from pathlib import Path

from bmc.backends.cuda import build as cuda_build
from bmc.backends.cuda import precision  # noqa: F401 - `with precision("tf32"):` around a build or a run (bmc/cli.py)
from bmc.backends.cuda.codegen import BUILT_IN  # noqa: F401 - `bmc ops` reads it
from bmc.backends.cuda.pointwise import INDEXED, POINTWISE
from bmc.backends.cuda.rules import KERNELS

from bmc.build import Build
from bmc.train.loop import fit as loop_fit

TABLES = (POINTWISE, INDEXED, KERNELS)


def generate(model, train: bool) -> str:
    return cuda_build.program(model).source


def build(model, out_dir, params, state, *, seed, history, data, trained, train_step) -> Path:
    return cuda_build.build(model, out_dir, params, state, seed)


def load(build_dir: Path, manifest: dict) -> Build:
    module, params, state, manifest = cuda_build.load(build_dir)
    return Build(None, module, (build_dir / cuda_build.SOURCE).read_text(encoding="utf-8"), params, state,
                 manifest=manifest)


def fit(model, module, config, params, state, task, *, log, progress, watch, run=None):
    device = cuda_build.module(model)  # generated kernels, compiled by nvcc (cached); needs a GPU to load
    log("train step: generated CUDA kernels, on the device")
    history = loop_fit(device, config, params, state, task, log=log, progress=progress, watch=watch, run=run)
    device.download(params, state)
    return history


def groups(graph):
    """The ops of an optimized graph, as this backend prepares it, in the kernels it launches (in launch order):
    the prepared graph and one (label, ops) per kernel (`bmc graph --kernels cuda`). Constants inlined into the
    kernels and reshapes (views) are in none."""
    from bmc.backends.cuda.codegen import classify, prepare
    from bmc.backends.cuda.fused import shape_only
    from bmc.backends.cuda.schedule import build as schedule

    graph = prepare(graph)
    out = []
    for i, item in enumerate(schedule(graph, classify, shape_only).items):
        what = "fused" if item.kind == "group" else item.node.op.name
        out.append((f"kernel {i}: {what} ({len(item.nodes)} op{'s' if len(item.nodes) > 1 else ''})", item.nodes))
    return graph, out, f"{len(out)} kernels"
