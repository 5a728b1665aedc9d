"""The ONNX models of a `bmc.Model`: its inference graph, its whole train step, the train step's two halves
(gradients, then apply: what a data-parallel or federated driver runs, combining the gradients of several workers
between them) and its evaluation, each checked and written atomically by the export functions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from bmc.diagnostics import BmcError

from .export import check, graph_to_model, model_metadata, write_atomic


def inference_model(model, params: dict[str, np.ndarray] | None = None, metadata: dict | None = None,
                    params_as_inputs: bool = False) -> onnx.ModelProto:
    """The inference graph (inputs to declared outputs) of a `bmc.Model`, with `params` (trained, or initialized
    from the train block's seed when None) stored as initializers, or as graph inputs when `params_as_inputs`.
    `metadata` values are stored as JSON (a text model's "vocab" and "window"). A model with a preprocessing
    contract (`Model.with_preprocess`, or `matching` a trained build) takes raw inputs, and says so in its
    metadata ("preprocess") and its input's doc string."""
    compiled = model.compiled
    if not compiled.model.outputs:
        raise BmcError(f"model '{compiled.name}' has no outputs, so its inference model would compute nothing",
                       compiled.model.span, notes=("declare a result with 'output name = ...' (the train step "
                                                   "exports without one: bmc build --target onnx --train)",))
    if params is None and not params_as_inputs:
        params = model.init_params()[0]
    doc = f"Inference of model {compiled.name} from {compiled.model.source.name}, compiled by bmc."
    return graph_to_model(compiled.inference(), name=compiled.name, params=None if params_as_inputs else params,
                          metadata=model_metadata(compiled, metadata), doc=doc, preprocess=compiled.preprocess)


def train_step_model(model, metadata: dict | None = None) -> onnx.ModelProto:
    """The whole train step: inputs are the batch, the parameters, the optimizer state and the hyperparameters
    (`lr`, and `rng` when the model uses dropout); outputs are the loss, the model's outputs, then `params/<name>`
    and `state/<name>` for every updated value. A frozen parameter (the train block's `freeze`,
    bmc/train/freeze.py) is an input with no output: the step reads it and never updates it."""
    compiled = model.compiled
    doc = f"One training step (forward, backward, optimizer update) of model {compiled.name}, compiled by bmc."
    return graph_to_model(compiled.train_step(), name=f"{compiled.name}_train_step",
                          metadata=model_metadata(compiled, metadata), doc=doc, preprocess=compiled.preprocess)


def gradients_model(model, metadata: dict | None = None) -> onnx.ModelProto:
    """The train step's first half (bmc/train/step.py `gradients_graph`): inputs are the batch, the parameters and
    `rng` when the model uses dropout; outputs are the loss, the model's outputs, `grad/<name>` (the gradient of the
    batch's mean loss with the train block's penalties, unclipped) for every trainable parameter and `params/<name>`
    for every running statistic (batch norm's averages). apply.onnx takes the `grad/<name>` tensors as inputs of the
    same names."""
    compiled = model.compiled
    doc = (f"The first half of a training step of model {compiled.name} (forward and backward; apply.onnx is the "
           "second), compiled by bmc.")
    return graph_to_model(compiled.gradients(), name=f"{compiled.name}_gradients",
                          metadata=model_metadata(compiled, metadata), doc=doc, preprocess=compiled.preprocess)


def apply_model(model, metadata: dict | None = None) -> onnx.ModelProto:
    """The train step's second half (`apply_graph`): inputs are the trainable parameters, their gradients
    `grad/<name>` (gradients.onnx's outputs, or several workers' combined), `lr` and the optimizer state; outputs are
    `params/<name>` and `state/<name>`. Clipping (the train block's `clip`) happens here, on the gradients given.
    gradients.onnx then apply.onnx compute what train_step.onnx does."""
    compiled = model.compiled
    doc = (f"The second half of a training step of model {compiled.name} (the optimizer update from given gradients; "
           "gradients.onnx is the first), compiled by bmc.")
    return graph_to_model(compiled.apply(), name=f"{compiled.name}_apply", metadata=model_metadata(compiled, metadata),
                          doc=doc)


def evaluation_model(model) -> onnx.ModelProto:
    """The inference-mode loss and outputs on a labelled batch, parameters as inputs (validation loss)."""
    compiled = model.compiled
    return graph_to_model(compiled.evaluation(), name=f"{compiled.name}_evaluation",
                          metadata=model_metadata(compiled), preprocess=compiled.preprocess)


def export_inference(model, params: dict[str, np.ndarray] | None, path: str | Path,
                     metadata: dict | None = None) -> Path:
    """Write the checked inference model to `path` atomically (`bmc build --target onnx`)."""
    return _export(inference_model(model, params, metadata), path)


def export_train_step(model, path: str | Path, metadata: dict | None = None) -> Path:
    """Write the checked train-step model to `path` atomically (`bmc build --target onnx --train`)."""
    return _export(train_step_model(model, metadata), path)


def export_gradients(model, path: str | Path, metadata: dict | None = None) -> Path:
    """Write the checked first half of the train step (`gradients_model`) to `path` atomically."""
    return _export(gradients_model(model, metadata), path)


def export_apply(model, path: str | Path, metadata: dict | None = None) -> Path:
    """Write the checked second half of the train step (`apply_model`) to `path` atomically."""
    return _export(apply_model(model, metadata), path)


def _export(proto: onnx.ModelProto, path: str | Path) -> Path:
    check(proto)
    return write_atomic(proto, path)
