"""The ONNX target: a build holds model.onnx (inference, parameters as initializers) and, with a train step,
train_step.onnx, its two halves gradients.onnx and apply.onnx (for drivers that combine the gradients of several
workers between them) and the initial params.npz and state.npz; training (`--backend onnxruntime`) runs the exported
train step in onnxruntime (bmc/targets.py lists what a target provides)."""

from __future__ import annotations

from pathlib import Path

from bmc import artifacts
from bmc.diagnostics import UsageError
from bmc.manifest import describe

from .export import IR_VERSION, OPSET, check
from .models import apply_model, gradients_model, inference_model, train_step_model
from .table import RULES

TABLES = (RULES,)


def generate(model, train: bool) -> str:
    raise UsageError("generate() writes source code (the NumPy module or model.cu); use build(target='onnx') for "
                     "ONNX models")


def build(model, out_dir, params, state, *, seed, history, data, trained, train_step) -> Path:
    info = trained.extra_info() if trained is not None else {}
    metadata = {k: info[k] for k in ("vocab", "window") if k in info}  # what a text model's reader needs
    files: dict[str, artifacts.Content] = {}
    if model.compiled.model.outputs or not train_step:  # a model with only a loss exports its train step alone
        proto = inference_model(model, params, metadata)
        check(proto)
        files["model.onnx"] = proto.SerializeToString()
    if train_step:
        for name, export in (("train_step.onnx", train_step_model), ("gradients.onnx", gradients_model),
                             ("apply.onnx", apply_model)):
            proto = export(model, metadata)
            check(proto)
            files[name] = proto.SerializeToString()
        files["params.npz"] = params
        files["state.npz"] = state
    manifest = {**describe(model.compiled, "onnx"), "opset": OPSET, "ir_version": IR_VERSION, **info}
    return artifacts.write_build(out_dir, files, manifest)


def load(build_dir: Path, manifest: dict):
    """model.onnx in onnxruntime, for predict and evaluate (training an ONNX build: its train_step.onnx, as
    examples/run_onnx.py shows)."""
    from bmc.build import Build

    from . import runtime

    if not (build_dir / "model.onnx").is_file():
        raise UsageError(f"{build_dir} holds no model.onnx (a model with only a loss exports its train step alone)")
    module = runtime.InferenceModule(build_dir / "model.onnx", manifest)
    return Build(None, module, "", {}, {}, manifest=manifest)


def fit(model, module, config, params, state, task, *, log, progress, watch, run=None):
    from . import runtime  # onnxruntime: only to run, not to export

    log(f"train step: ONNX, onnxruntime on {', '.join(runtime.providers())}")
    return runtime.fit(model, config, params, state, task, log=log, progress=progress, watch=watch, run=run)
