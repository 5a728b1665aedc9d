"""A build: a model's generated module (or CUDA library), its parameters and optimizer state, trained or freshly
initialized; what `bmc.load` returns and `Model.train` gives back. `save` writes its directory (bmc/artifacts.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bmc import artifacts
from bmc.diagnostics import UsageError
from bmc.ir.types import TensorType, shape_str
from bmc.manifest import describe

# Predicting and evaluating import what they use (data loaders, metrics, the training loop's evaluation) when they
# run, so that `bmc build` does not load them (issue 14: a build's start-up time).
if TYPE_CHECKING:
    from bmc.api import Model
    from bmc.data import Dataset
    from bmc.train.loop import History


# what a build carries about its training data beyond the model: a text model's vocabulary and window; the class
# names, image mode and size, and CSV columns `bmc predict` reads new files with
EXTRA = ("vocab", "window", "classes", "image", "columns", "target_column")


class Build:
    """A built model: generated module, parameters, optimizer state; trained or freshly initialized."""

    def __init__(self, model: Model | None, module, source: str, params: dict, state: dict,
                 history: History | None = None, data: str | None = None, config=None, manifest=None,
                 extra: dict | None = None):
        self.model = model
        self.module = module
        self.source = source
        self.params = params
        self.state = state
        self.history = history
        self.data = data
        self.config = config
        self._manifest = manifest
        self.extra = extra or {}  # a text model's vocabulary and window: what generating text needs

    def extra_info(self) -> dict:
        """What predicting on new data needs beyond the parameters and the model: a text model's vocabulary."""
        if self._manifest is not None:
            return {k: self._manifest[k] for k in EXTRA if k in self._manifest}
        return dict(self.extra)

    @property
    def manifest(self) -> dict[str, Any]:
        if self._manifest is not None:
            return self._manifest
        m = self.model.compiled
        info = {**describe(m, "numpy"), **self.extra}
        if self.history is not None:
            info["training"] = {"data": self.data, "config": _config_json(self.config or m.config),
                                "history": self.history.as_json()}
        return info

    def save(self, out_dir: str | Path, extra_files: dict[str, artifacts.Content] | None = None) -> Path:
        """Write the build directory `out_dir` (see bmc/artifacts.py for what may be replaced, and how), with
        `extra_files` beside the build's own (a checkpoint's training state).

        Non-finite parameters or state are refused (a BmcError), never saved silently."""
        from bmc.train.numerics import require_finite

        spans = self.model._spans() if self.model is not None else {}
        require_finite(self.params, self.state, {k.removeprefix("params/"): v for k, v in spans.items()})
        files: dict[str, artifacts.Content] = {"model.py": self.source, "params.npz": self.params}
        if self.state or hasattr(self.module, "load_state"):  # a train step without state (gd) loads an empty one
            files["state.npz"] = self.state
        return artifacts.write_build(out_dir, {**files, **(extra_files or {})}, self.manifest)

    def predict(self, *inputs: np.ndarray, batch: int = 1024, **named: np.ndarray) -> dict[str, np.ndarray]:
        """The outputs for raw inputs: samples as the training data set stores them (the manifest's
        `preprocess.raw`, e.g. uint8 pixels 0..255), which the model itself scales and standardizes."""
        from bmc.runtime import predict_batches

        names = list(self.module.INPUTS)
        feeds = dict(zip(names, inputs, strict=False)) | named
        missing = [n for n in names if n not in feeds]
        if missing:
            raise UsageError(f"predict() needs the input(s) {', '.join(missing)}")
        shaped = {name: self._prepare(name, feeds[name]) for name in names}
        return predict_batches(self.module, self.params, shaped, batch)

    def _prepare(self, name: str, x) -> np.ndarray:
        """An input in the build's shape and dtype (its values untouched: the model preprocesses them)."""
        from bmc.train import agree

        dtype, shape = self.module.INPUTS[name]
        x = np.asarray(x)
        want = shape[1:]
        if all(isinstance(d, int) for d in want):
            if x.ndim < 1 or math.prod(x.shape[1:]) != math.prod(want):
                raise UsageError(f"input '{name}' must have shape {shape_str(tuple(shape))}, got {list(x.shape)}")
            x = x.reshape((len(x), *want))
        elif x.ndim != len(shape):
            raise UsageError(f"input '{name}' must have shape {shape_str(tuple(shape))}, got {list(x.shape)}")
        return agree.to_dtype(x, dtype, f"input '{name}'")

    def generate(self, prompt: str, length: int = 200, temperature: float = 0.8, seed: int = 0) -> str:
        """Continue `prompt` character by character with a trained language model (a build trained on text)."""
        vocab, window = self.manifest.get("vocab"), self.manifest.get("window")
        if not vocab:
            raise UsageError("this build was not trained on text (its manifest has no vocabulary); train it with "
                             "--data text:FILE")
        if not (temperature > 0 and math.isfinite(temperature)):
            raise UsageError(f"the temperature must be a positive number, not {temperature}")
        if length < 0:
            raise UsageError(f"the length must be at least 0, not {length}")
        from bmc.data.text import encode

        ids = list(encode(vocab, prompt)) or [0]
        output = next(iter(self.module.OUTPUTS))
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(length):
            context = np.asarray([ids[-window:]], dtype=np.int64)
            probs = self.module.forward(self.params, context)[output][0, -1].astype(np.float64)
            logits = np.log(np.maximum(probs, 1e-30)) / temperature
            p = np.exp(logits - logits.max())
            nxt = int(rng.choice(len(p), p=p / p.sum()))
            ids.append(nxt)
            out.append(vocab[nxt])
        return prompt + "".join(out)

    def evaluate(self, data: str | Dataset, report: dict | None = None) -> dict[str, float]:
        """Metrics on a data set's test split, fed its raw samples. A data set whose raw samples have another scale
        than the build's training data (a build trained on [0, 1] floats, evaluated on uint8 IDX images) is
        converted to the build's raw units first: x * (the data set's scale / the build's scale)."""
        from bmc.data import Dataset, load_dataset
        from bmc.train import agree
        from bmc.train.loop import evaluate, mean_loss, usable_metrics
        from bmc.train.metrics import ConfusionMatrix, new_accumulator

        dataset = data if isinstance(data, Dataset) else load_dataset(data)
        manifest = self.manifest
        (name, spec), = manifest["inputs"].items()
        shape = spec["shape"][1:]
        if math.prod(dataset.sample_shape) != math.prod(shape):
            raise UsageError(f"{dataset.name} samples have shape {list(dataset.sample_shape)} but this build's input "
                             f"'{name}' is {spec['dtype']}{shape_str(tuple(spec['shape']))}")
        scale = manifest["preprocess"]["scale"] if "preprocess" in manifest else 1.0
        x = dataset.x_test if dataset.scale == scale else dataset.x_test * np.float64(dataset.scale / scale)
        x = self._prepare(name, x)
        if not manifest.get("targets"):  # an autoencoder: scored by its loss on the samples alone
            if not hasattr(self.module, "evaluate"):
                raise UsageError("this build has neither a target nor a loss: there is nothing to evaluate")
            return {"loss": mean_loss(self.module, self.params, {name: x})}
        outputs = list(manifest["outputs"])
        if outputs:
            spec = manifest["outputs"][outputs[0]]
            wrong = agree.output_mismatch(outputs[0], TensorType(spec["dtype"], tuple(spec["shape"])), dataset)
            if wrong is not None:
                raise UsageError(f"{wrong[0]}: this build cannot be scored on it")
        names = usable_metrics(tuple(manifest.get("metrics", ("accuracy",))), dataset.num_classes)
        feed = {name: x, "__target__": dataset.y_test}
        acc = new_accumulator(dataset.num_classes)
        scores = evaluate(self.module, self.params, feed, outputs[0] if outputs else None, dataset.num_classes,
                          names, acc)
        if report is not None and isinstance(acc, ConfusionMatrix) and outputs:
            report["confusion_matrix"] = acc.counts.tolist()
            report["classes"] = manifest.get("classes") or dataset.class_names or list(range(acc.num_classes))
        return scores


def _config_json(config) -> dict:
    return {"optimizer": config.optimizer.kind, **{f"optimizer.{k}": v for k, v in config.optimizer.args.items()},
            "epochs": config.epochs, "batch": config.batch, "seed": config.seed, "l1": config.l1, "l2": config.l2,
            **({"freeze": [str(p) for p in config.freeze]} if config.freeze else {})}
