"""The ONNX backend: a `.bm` model's inference graph or whole train step as a standard ONNX model, and
onnxruntime sessions to run and train them.

    from bmc.backends import onnx as onnx_backend
    onnx_backend.export_inference(model, params, "out/model.onnx")     # initializers hold params
    onnx_backend.export_train_step(model, "out/train_step.onnx")       # params and state are inputs and outputs
    onnx_backend.export_gradients(model, "out/gradients.onnx")         # the step's halves: grad/<name> outputs,
    onnx_backend.export_apply(model, "out/apply.onnx")                 # which apply takes as inputs of those names
    trainer = onnx_backend.Trainer(onnx_backend.train_step_model(model), params, state)
    trainer.step(batch, lr=1e-3)
"""

from __future__ import annotations

from . import random_hash, rules, scan  # noqa: F401 - importing them registers their rules
from .export import IR_VERSION, OPSET, check, graph_to_model
from .models import (
    apply_model,
    evaluation_model,
    export_apply,
    export_gradients,
    export_inference,
    export_train_step,
    gradients_model,
    inference_model,
    train_step_model,
)
from .table import RULES, supports

RUNTIME = ("OrtTrainModule", "Predictor", "Trainer", "fit", "providers")


def __getattr__(name: str):
    """The onnxruntime side (sessions, the trainer) is imported on first use: exporting needs only onnx."""
    if name in RUNTIME:
        from . import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["IR_VERSION", "OPSET", "RULES", "OrtTrainModule", "Predictor", "Trainer", "apply_model", "check",
           "evaluation_model", "export_apply", "export_gradients", "export_inference", "export_train_step", "fit",
           "gradients_model", "graph_to_model", "inference_model", "providers", "supports", "train_step_model"]
