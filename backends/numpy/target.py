"""The NumPy target: a build is the generated module (model.py) with its parameters and optimizer state, and
training runs the module's own train_step (bmc/targets.py lists what a target provides)."""

from __future__ import annotations

from pathlib import Path

from bmc.backends import numpy as numpy_backend

from bmc import artifacts
from bmc.build import Build
from bmc.diagnostics import UsageError
from bmc.ir.types import NUMPY_NAMES
from bmc.reference.rules import RULES
from bmc.runtime import load_module, load_source

TABLES = (RULES,)


def generate(model, train: bool) -> str:
    c = model.compiled
    return numpy_backend.generate(c.name, c.model.source.name, c.source_hash, c.inference(),
                                  c.train_step() if train else None, c.dtype, c.evaluation() if train else None,
                                  c.preprocess, (c.gradients(), c.apply()) if train else None)


def build(model, out_dir, params, state, *, seed, history, data, trained, train_step) -> Path:
    source = generate(model, model.compiled.model.loss is not None)
    extra = trained.extra_info() if trained is not None else {}
    return Build(model, load_source(source), source, params, state, history, data, extra=extra).save(out_dir)


def load(build_dir: Path, manifest: dict):
    module = load_module(build_dir / "model.py")
    stored = artifacts.read_npz(build_dir / "params.npz")
    missing = [k for k in module.PARAMS if k not in stored]
    if missing:
        raise UsageError(f"{build_dir / 'params.npz'} lacks the parameter(s) {', '.join(missing)}")
    params = {k: stored[k].astype(NUMPY_NAMES[dtype]) for k, (dtype, _) in module.PARAMS.items()}
    state = artifacts.read_npz(build_dir / "state.npz")
    source = (build_dir / "model.py").read_text(encoding="utf-8")
    return Build(None, module, source, params, state, manifest=manifest)


def fit(model, module, config, params, state, task, *, log, progress, watch, run=None):
    from bmc.train.loop import fit as loop_fit  # here: a build does not load the training loop

    return loop_fit(module, config, params, state, task, log=log, progress=progress, watch=watch, run=run)


def groups(graph):
    """The ops of an optimized graph, as this backend prepares it, grouped by the buffer they write when the memory
    plan has several write one buffer in turn: the prepared graph and one (label, ops) per reused buffer
    (`bmc graph --kernels numpy`), and (None, [op]) for an op whose buffer is its own."""
    from bmc.backends.numpy.memory import plan

    from bmc.reference.rules import prepare

    graph = prepare(graph)
    state = {v.name: v for v in graph.inputs_with_role("param", "state")}
    updates = {state[k.split("/", 1)[1]]: v for k, v in graph.outputs.items()
               if k.split("/", 1)[0] in ("params", "state") and k.split("/", 1)[1] in state}
    buffers = plan(graph, updates)
    owner: dict = {}  # each value -> the value whose buffer holds it
    writers: dict = {}
    for node in graph.nodes:
        taken = buffers.get(node)
        for o in node.outputs:
            owner[o] = owner.get(taken, taken) if taken is not None else o
        writers.setdefault(owner[node.outputs[0]], []).append(node)
    out = []
    for b, nodes in writers.items():
        role = graph.roles.get(b)
        what = f"the buffer of {role} {b.name}" if role else f"one {b.type} buffer"
        out.append((f"{what}: {len(nodes)} ops write it in turn" if len(nodes) > 1 else None, nodes))
    reused = sum(len(nodes) > 1 for _, nodes in out)
    return graph, out, f"{len(graph.nodes)} ops in {len(writers)} buffers, {reused} reused"
