"""The Python API, for notebooks and scripts.

    import bmc
    model = bmc.compile("examples/mlp.bm")            # or bmc.compile_string(text)
    print(model.summary())
    trained = model.train(data="digits", epochs=20)
    trained.predict(x)["probs"]
    trained.save("build/mlp")
    again = bmc.load("build/mlp")
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bmc import artifacts, init, memory
from bmc.backends import numpy as numpy_backend
from bmc.compiler import Compiled, compile_file, compile_source, parse_defines
from bmc.data import Dataset, load_dataset
from bmc.data.text import is_text_spec, load_text
from bmc.diagnostics import BmcError, BmcWarning, Span, UsageError, check_policy
from bmc.frontend.domains import SEED
from bmc.frontend.preprocess import Preprocess
from bmc.ir.printer import print_graph
from bmc.ir.types import NUMPY_NAMES, TensorType, shape_str
from bmc.runtime import load_module, load_source, predict_batches
from bmc.train import agree
from bmc.train.loop import ArrayTask, History, TextTask, evaluate, fit, mean_loss, unfit_metrics, usable_metrics
from bmc.train.numerics import Watch, require_finite
from bmc.version import __version__

TARGETS = ("numpy", "onnx", "cuda")
BACKENDS = ("numpy", "onnxruntime", "cuda")


def _onnx_backend():
    try:
        from bmc.backends import onnx as onnx_backend
    except ImportError as e:  # pragma: no cover - onnx is a dependency
        raise UsageError(f"the ONNX backend needs the onnx package ({e}); pip install onnx onnxruntime-gpu") from None
    return onnx_backend


def _print_warning(warning: BmcWarning) -> None:
    print(warning.render(), file=sys.stderr)


class Model:
    """A compiled `.bm` model: inspect it, generate code, build it, train it.

    `warnings` is the policy for likely mistakes: "default" collects the compiler's in `model.warnings` and reports
    training's as they occur, "ignore" drops them, "error" raises the first as a `BmcError`."""

    def __init__(self, compiled: Compiled, text: str, filename: str, model: str | None, defines: dict,
                 warnings: str = "default"):
        self.compiled = compiled
        self._text, self._filename, self._model, self._defines = text, filename, model, defines
        self._policy = check_policy(warnings)

    @classmethod
    def from_file(cls, path: str | Path, model: str | None = None, defines=None, dtype: str = "f32",
                  warnings: str = "default", memory_limit: int | str | None = None) -> Model:
        compiled = compile_file(path, model, defines, dtype, warnings, memory_limit)
        return cls(compiled, compiled.model.source.text, str(path), model, parse_defines(defines), warnings)

    @classmethod
    def from_source(cls, text: str, filename: str = "<string>", model: str | None = None, defines=None,
                    dtype: str = "f32", warnings: str = "default", preprocess: Preprocess | None = None,
                    memory_limit: int | str | None = None) -> Model:
        return cls(compile_source(text, filename, model, defines, dtype, warnings, preprocess, memory_limit), text,
                   filename, model, parse_defines(defines), warnings)

    def with_defines(self, extra: dict[str, int | float], dtype: str | None = None) -> Model:
        return self._recompiled({**self._defines, **extra}, dtype or self.compiled.dtype, self.preprocess)

    def with_preprocess(self, preprocess: Preprocess | None) -> Model:
        """The same model taking raw input: `preprocess` (the contract a build trained on a data set records) is
        compiled into it as a prologue after the input, so every artifact built from it applies it."""
        if preprocess == self.preprocess:
            return self
        return self._recompiled(self._defines, self.compiled.dtype, preprocess)

    def matching(self, trained: Build) -> Model:
        """This model compiled as `trained` was: with the constants it was trained with (those not given here with
        -D) and with its preprocessing contract, so trained parameters fit it and it takes the same raw input."""
        manifest = trained.manifest
        extra = {k: v for k, v in manifest.get("constants", {}).items() if k not in self._defines}
        pre = Preprocess.from_json(manifest.get("preprocess"))
        if all(self.compiled.model.constants.get(k) == v for k, v in extra.items()) and pre == self.preprocess:
            return self
        return self._recompiled({**self._defines, **extra}, self.compiled.dtype, pre)

    def _recompiled(self, defines: dict, dtype: str, preprocess: Preprocess | None) -> Model:
        model = Model.from_source(self._text, self._filename, self._model, defines, dtype, self._policy, preprocess,
                                  self.compiled.memory_limit)
        return model.with_config(self.config)

    def with_config(self, config) -> Model:
        """The same model trained with another configuration (command-line overrides of the train block)."""
        return Model(dataclasses.replace(self.compiled, config=config), self._text, self._filename, self._model,
                     self._defines, self._policy)

    @property
    def warnings(self) -> tuple[BmcWarning, ...]:
        """What the compiler found suspicious (a loss given probabilities, an accidental outer product)."""
        return self.compiled.warnings

    def _warn(self, warning: BmcWarning | None, report: Callable[[BmcWarning], None]) -> None:
        """Report a warning found while training, under the model's policy."""
        if warning is None or self._policy == "ignore":
            return
        if self._policy == "error":
            raise warning.as_error()
        report(warning)

    @property
    def name(self) -> str:
        return self.compiled.name

    @property
    def config(self):
        return self.compiled.config

    @property
    def preprocess(self) -> Preprocess | None:
        """What the model computes from its raw input first (None: it takes its input as it is)."""
        return self.compiled.preprocess

    # ---- inspection ------------------------------------------------------------------------------------------

    def summary(self) -> str:
        m = self.compiled.model
        lines = [f"model {m.name} ({m.source.name})"]
        if m.constants:
            lines.append("  constants: " + ", ".join(f"{k} = {v}" for k, v in m.constants.items()))
        for v in m.graph.inputs:
            role = m.graph.roles[v]
            if role in ("input", "target"):
                lines.append(f"  {role:<7} {v.name}: {v.type}")
            pre = self.preprocess
            if pre is not None and role == "input" and v.name == pre.input:
                lines.append(f"          raw {pre.raw}; the model computes {v.name} = {pre.formula()}")
        total = 0
        lines.append("  parameters:")
        width = max([20, *(len(p.name) for p in m.params)])
        types = max([18, *(len(str(p.type)) for p in m.params)])
        for p in m.params:
            count = math.prod(p.type.shape)
            total += count
            info = m.graph.param_info[p]
            note = "" if info.trainable else "  (not trained: updated by the train step)"
            lines.append(f"    {p.name:<{width}} {p.type!s:<{types}} {count:>10,}  ~ {info.init}{note}")
        lines.append(f"    {'total':<{width}} {'':<{types}} {total:>10,}")
        for name in m.outputs:
            lines.append(f"  output  {name}: {m.graph.outputs[name].type}")
        if m.loss:
            lines.append(f"  loss    {m.graph.outputs['loss'].type}")
        return "\n".join(lines)

    def ir(self, train: bool = False, optimized: bool = True) -> str:
        g = self.compiled.train_step(optimized) if train else self.compiled.inference(optimized)
        return print_graph(g)

    def generate(self, target: str = "numpy", train: bool | None = None) -> str:
        """The generated source: the NumPy module, or (target "cuda") model.cu."""
        if target == "cuda":
            from bmc.backends.cuda import build as cuda_build

            return cuda_build.program(self).source
        if target != "numpy":
            raise UsageError(f"generate() writes the NumPy module; use build(target='{target}') for other targets")
        train = self.compiled.model.loss is not None if train is None else train
        c = self.compiled
        return numpy_backend.generate(c.name, c.model.source.name, c.source_hash, c.inference(),
                                      c.train_step() if train else None, c.dtype,
                                      c.evaluation() if train else None, c.preprocess)

    # ---- parameters ----------------------------------------------------------------------------------------------

    def init_params(self, seed: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Initial parameters (drawn per name from `seed`) and zero optimizer state."""
        seed = self.config.seed if seed is None else _seed(seed)
        g = self.compiled.model.graph
        params = {p.name: init.sample(g.param_info[p].init, p.type.shape, self._float(p.type.dtype),
                                      init.generator(seed, p.name), g.param_info[p].fans) for p in g.params}
        state = {}
        if self.compiled.model.loss is not None:
            for v in self.compiled.train_step().inputs_with_role("state"):
                state[v.name] = np.zeros(v.type.shape, NUMPY_NAMES[self._float(v.type.dtype)])
        return params, state

    def _float(self, dtype: str) -> str:
        """A float dtype at the build's precision (an f64 build makes every float f64)."""
        return self.compiled.dtype if dtype == "f32" else dtype

    # ---- building and training --------------------------------------------------------------------------------

    def build(self, out_dir: str | Path, target: str = "numpy", params=None, state=None, seed: int | None = None,
              history: History | None = None, data: str | None = None, trained: Build | None = None,
              train_step: bool = False) -> Path:
        """Write a build directory: the NumPy module, or (target "onnx") model.onnx and, with `train_step`, the
        train step as train_step.onnx with the initial params.npz and state.npz. `trained` supplies trained
        parameters (and their constants, preprocessing contract and vocabulary) instead of freshly initialized
        ones."""
        artifacts.check_target(out_dir)  # before any long work: `out_dir` may hold something bmc must not replace
        if trained is not None:
            self = self.matching(trained)
            params, state = trained.params, trained.state
        if params is None:
            params, state = self.init_params(seed)
        spans = {k.removeprefix("params/"): v for k, v in self._spans().items()}
        require_finite(params, state or {}, spans)
        if target == "onnx":
            return self._build_onnx(out_dir, params, state or {}, trained, train_step)
        if target == "cuda":
            from bmc.backends.cuda import build as cuda_build

            return cuda_build.build(self, out_dir, params, state, seed)
        if target != "numpy":
            raise UsageError(f"target '{target}' is not available (available: {', '.join(TARGETS)})")
        source = self.generate(target)
        extra = trained.extra_info() if trained is not None else {}
        return Build(self, load_source(source), source, params, state or {}, history, data, extra=extra).save(out_dir)

    def _build_onnx(self, out_dir, params, state, trained: Build | None, train_step: bool) -> Path:
        onnx_backend = _onnx_backend()
        info = trained.extra_info() if trained is not None else {}
        metadata = {k: info[k] for k in ("vocab", "window") if k in info}
        files: dict[str, artifacts.Content] = {}
        if self.compiled.model.outputs or not train_step:  # a model with only a loss exports its train step alone
            proto = onnx_backend.inference_model(self, params, metadata)
            onnx_backend.check(proto)
            files["model.onnx"] = proto.SerializeToString()
        if train_step:
            step = onnx_backend.train_step_model(self, metadata)
            onnx_backend.check(step)
            files["train_step.onnx"] = step.SerializeToString()
            files["params.npz"] = params
            files["state.npz"] = state
        manifest = {**Build(self, None, "", params, state).manifest, "target": "onnx",
                    "opset": onnx_backend.OPSET, "ir_version": onnx_backend.IR_VERSION, **info}
        return artifacts.write_build(out_dir, files, manifest)

    def train(self, data: str | Dataset | None = None, *, epochs: int | None = None, batch: int | None = None,
              lr: float | None = None, seed: int | None = None, optimizer: str | None = None,
              steps: int | None = None, backend: str = "numpy", log=print, progress: bool = True,
              warn: Callable[[BmcWarning], None] = _print_warning, check_numerics: bool = False) -> Build:
        """Train on a data set (a spec such as "digits", "text:FILE" or a `Dataset`) and return the trained build.
        `backend` runs the train step: "numpy" (the generated module) or "onnxruntime" (the exported ONNX train
        step, on the CUDA provider where there is a GPU). Warnings about the run (metrics that do not fit the data,
        non-finite outputs, a diverging loss) go to `warn`, by default printed on stderr. `check_numerics` checks
        every step's outputs, parameters and state, and stops at the first step that makes one non-finite with an
        error at the `.bm` statement of the op that did (bmc/train/numerics.py); without it a non-finite loss still
        stops training."""
        if backend not in BACKENDS:
            raise UsageError(f"unknown backend '{backend}' (available: {', '.join(BACKENDS)})")
        config = self.config.override(epochs=epochs, batch=batch, lr=lr, seed=seed, optimizer=optimizer,
                                      steps=steps)
        self = self.with_config(config)  # the train step is built from the overridden configuration
        spec = data if isinstance(data, Dataset) else (data or config.data)
        if isinstance(spec, str) and is_text_spec(spec):
            return self._train_text(spec, config, log, progress, backend, warn, check_numerics)
        dataset = spec if isinstance(spec, Dataset) else load_dataset(spec)
        binding = agree.bind_from_data(self.compiled.model, self.compiled.module, dataset, set(self._defines))
        preprocess = agree.preprocessing(config, self.compiled.model, dataset)
        model = self._recompiled({**self._defines, **binding.defines}, self.compiled.dtype, preprocess)
        for note in binding.notes:
            log(f"note: {note}")
        model._require_loss()
        agree.check_task(model.compiled.model, dataset)
        agree.check_augment(config, model.compiled.model)
        model._check_memory(config, len(dataset.x_train))
        train_feed, test_feed = agree.shape_batch(model.compiled.model, dataset)  # raw: the model preprocesses
        label = "test"
        if config.validation:
            train_feed, test_feed = agree.hold_out(train_feed, config.validation, config.seed,
                                                   config.spans.get("validation"))
            label = "valid"
        outputs = model.compiled.model.outputs
        has_target = bool(model.compiled.model.targets)  # without one (an autoencoder) the samples are the data
        if outputs or not has_target:
            self._warn(unfit_metrics(config, dataset.name, dataset.num_classes, target=has_target), warn)
        else:
            self._warn(BmcWarning(f"model '{self.name}' has no output, so training reports no metrics",
                                  self.compiled.module.models[self.name].name_span,
                                  ("mark what it predicts with 'output' ('output pred = ...', or 'output pred' "
                                   "for an existing name)",)), warn)
        metrics = usable_metrics(config.metrics, dataset.num_classes) if has_target else ()
        task = ArrayTask(train_feed, test_feed, outputs[0] if outputs else None, dataset.num_classes, metrics,
                         config.batch, config.augment, label)
        return model._fit(config, task, dataset.description, log, progress, {}, backend, warn, check_numerics)

    def _train_text(self, spec: str, config, log, progress, backend: str, warn, check_numerics: bool) -> Build:
        text = load_text(spec, config.validation or 0.1)
        self._warn(unfit_metrics(config, spec, text=True), warn)
        defines = {}
        if "vocab" in self.compiled.model.constants and "vocab" not in self._defines:
            defines["vocab"] = len(text.vocab)
            log(f"note: vocab = {len(text.vocab)}, from the data")
        model = self.with_defines(defines) if defines else self
        model._require_loss()
        tokens, target = agree.text_inputs(model.compiled.model)
        window = config.sequence or agree.text_window(model.compiled.model, tokens)
        agree.check_window(model.compiled.model, tokens, window)
        model._check_memory(config, config.batch or 32)
        task = TextTask(text.train, text.valid, window, config.batch or 32, tokens.name, target.name)
        return model._fit(config, task, text.description, log, progress, {"vocab": text.vocab, "window": window},
                          backend, warn, check_numerics)

    def _check_memory(self, config, samples: int) -> None:
        """The compile-time memory check again, with the configuration training runs (command-line overrides) and
        its real batch size (`batch = full`: every sample)."""
        batch = min(config.batch, samples) if config.batch else samples
        memory.check(self.compiled.model, config, self.compiled.dtype, self.compiled.memory_limit, batch)

    def _require_loss(self) -> None:
        if self.compiled.model.loss is None:
            raise BmcError(f"model '{self.name}' has no loss to train", self.compiled.model.span,
                           notes=("add 'loss = cross_entropy(logits, label)' (or mse, binary_cross_entropy)",))

    def _fit(self, config, task, description: str, log, progress, extra: dict, backend: str, warn,
             check_numerics: bool) -> Build:
        source = self.generate("numpy", train=True)
        module = load_source(source, f"<bmc {self.name}>")
        params, state = self.init_params(config.seed)
        budget = f"{config.steps} steps" if config.steps else f"{config.epochs} epochs"
        log(f"training {self.name} on {description}: {budget}, batch {config.batch or 'full'}, {config.optimizer}"
            + (f", schedule {config.schedule}" if config.schedule.kind != "constant" or config.schedule.warmup
               else "") + (f", clip {config.clip:g}" if config.clip else ""))
        watch = Watch(check_numerics, self.compiled.train_step, self._spans(), config.optimizer.lr)
        if backend == "onnxruntime":
            onnx_backend = _onnx_backend()
            log(f"train step: ONNX, onnxruntime on {', '.join(onnx_backend.providers())}")
            history = onnx_backend.fit(self, config, params, state, task, log=log, progress=progress, watch=watch)
        elif backend == "cuda":
            from bmc.backends.cuda import build as cuda_build

            device = cuda_build.module(self)  # generated kernels, compiled by nvcc (cached); needs a GPU to load
            log("train step: generated CUDA kernels, on the device")
            history = fit(device, config, params, state, task, log=log, progress=progress, watch=watch)
            device.download(params, state)
        else:
            history = fit(module, config, params, state, task, log=log, progress=progress, watch=watch)
        for warning in watch.warnings:
            self._warn(warning, warn)
        return Build(self, module, source, params, state, history, description, config, extra=extra)


    def _spans(self) -> dict[str, Span]:
        """Where the results of a train step are defined: outputs by name, parameters as `params/<name>`, and the
        train block's optimizer setting (what numerics warnings point at)."""
        g = self.compiled.model.graph
        spans = {k: g.outputs[k].span for k in self.compiled.model.outputs}
        spans.update({f"params/{p.name}": g.param_info[p].span or p.span for p in g.params})
        if "optimizer" in self.config.spans:
            spans["optimizer"] = self.config.spans["optimizer"]
        return spans


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
            return {k: self._manifest[k] for k in ("vocab", "window") if k in self._manifest}
        return dict(self.extra)

    @property
    def manifest(self) -> dict[str, Any]:
        if self._manifest is not None:
            return self._manifest
        m = self.model.compiled
        g = m.model.graph
        info = {
            "bmc_version": __version__,
            "model": m.name,
            "target": "numpy",
            "dtype": m.dtype,
            "source": m.model.source.name,
            "source_sha256": m.source_hash,
            "constants": m.model.constants,
            "inputs": {v.name: {"dtype": v.type.dtype, "shape": list(v.type.shape)} for v in m.model.data_inputs},
            "targets": {v.name: {"dtype": v.type.dtype, "shape": list(v.type.shape)} for v in m.model.targets},
            "outputs": {k: {"dtype": g.outputs[k].type.dtype, "shape": list(g.outputs[k].type.shape),
                            "doc": f"{k}: {g.outputs[k].type}, defined at {g.outputs[k].span}"}
                        for k in m.model.outputs},
            "params": {p.name: {"dtype": p.type.dtype, "shape": list(p.type.shape),
                                "init": str(g.param_info[p].init)} for p in g.params},
            "param_count": int(sum(math.prod(p.type.shape) for p in g.params)),
            "metrics": list(m.config.metrics),
            **({"preprocess": m.preprocess.as_json()} if m.preprocess else {}),
            **self.extra,
        }
        if self.history is not None:
            info["training"] = {"data": self.data, "config": _config_json(self.config or m.config),
                                "history": self.history.as_json()}
        return info

    def save(self, out_dir: str | Path) -> Path:
        """Write the build directory `out_dir` (see bmc/artifacts.py for what may be replaced, and how).

        Non-finite parameters or state are refused (a BmcError), never saved silently."""
        spans = self.model._spans() if self.model is not None else {}
        require_finite(self.params, self.state, {k.removeprefix("params/"): v for k, v in spans.items()})
        files: dict[str, artifacts.Content] = {"model.py": self.source, "params.npz": self.params}
        if self.state or hasattr(self.module, "load_state"):  # a train step without state (gd) loads an empty one
            files["state.npz"] = self.state
        return artifacts.write_build(out_dir, files, self.manifest)

    def predict(self, *inputs: np.ndarray, batch: int = 1024, **named: np.ndarray) -> dict[str, np.ndarray]:
        """The outputs for raw inputs: samples as the training data set stores them (the manifest's
        `preprocess.raw`, e.g. uint8 pixels 0..255), which the model itself scales and standardizes."""
        names = list(self.module.INPUTS)
        feeds = dict(zip(names, inputs, strict=False)) | named
        missing = [n for n in names if n not in feeds]
        if missing:
            raise UsageError(f"predict() needs the input(s) {', '.join(missing)}")
        shaped = {name: self._prepare(name, feeds[name]) for name in names}
        return predict_batches(self.module, self.params, shaped, batch)

    def _prepare(self, name: str, x) -> np.ndarray:
        """An input in the build's shape and dtype (its values untouched: the model preprocesses them)."""
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

    def evaluate(self, data: str | Dataset) -> dict[str, float]:
        """Metrics on a data set's test split, fed its raw samples. A data set whose raw samples have another scale
        than the build's training data (a build trained on [0, 1] floats, evaluated on uint8 IDX images) is
        converted to the build's raw units first: x * (the data set's scale / the build's scale)."""
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
        return evaluate(self.module, self.params, feed, outputs[0] if outputs else None, dataset.num_classes, names)


def _seed(seed) -> int:
    try:
        return SEED.check(seed, "the seed", None)
    except BmcError as e:
        raise UsageError(e.message) from None


def _config_json(config) -> dict:
    return {"optimizer": config.optimizer.kind, **{f"optimizer.{k}": v for k, v in config.optimizer.args.items()},
            "epochs": config.epochs, "batch": config.batch, "seed": config.seed, "l1": config.l1, "l2": config.l2}


def load(build_dir: str | Path) -> Build:
    """Load a build directory written by `bmc build` or `bmc train -o`."""
    build_dir = Path(build_dir)
    manifest = artifacts.read_manifest(build_dir)
    Preprocess.from_json(manifest.get("preprocess"), str(build_dir))  # a build of an older contract is refused
    if manifest.get("target") == "cuda":
        from bmc.backends.cuda import build as cuda_build

        module, params, state, manifest = cuda_build.load(build_dir)
        return Build(None, module, (build_dir / "model.cu").read_text(encoding="utf-8"), params, state,
                     manifest=manifest)
    if manifest.get("target") == "onnx":
        raise UsageError(f"{build_dir} is an ONNX build: run its model.onnx with onnxruntime "
                         "(examples/run_onnx.py), or load a NumPy or CUDA build")
    module = load_module(build_dir / "model.py")
    stored = artifacts.read_npz(build_dir / "params.npz")
    missing = [k for k in module.PARAMS if k not in stored]
    if missing:
        raise UsageError(f"{build_dir / 'params.npz'} lacks the parameter(s) {', '.join(missing)}")
    params = {k: stored[k].astype(NUMPY_NAMES[dtype]) for k, (dtype, _) in module.PARAMS.items()}
    state = artifacts.read_npz(build_dir / "state.npz")
    source = (build_dir / "model.py").read_text(encoding="utf-8")
    return Build(None, module, source, params, state, manifest=manifest)


def compile(path: str | Path, model: str | None = None, defines=None, dtype: str = "f32",
            warnings: str = "default", memory_limit: int | str | None = None) -> Model:
    """Compile a `.bm` file. Likely mistakes are in `model.warnings`; `warnings="error"` raises the first instead,
    `warnings="ignore"` drops them. `memory_limit` (bytes, or a size such as "64G"; default: this machine's memory,
    or a smaller container or `ulimit -v` limit) bounds what the model's parameters, optimizer state and
    activations may need."""
    return Model.from_file(path, model, defines, dtype, warnings, memory_limit)


def compile_string(text: str, model: str | None = None, defines=None, dtype: str = "f32",
                   filename: str = "<string>", warnings: str = "default",
                   memory_limit: int | str | None = None) -> Model:
    return Model.from_source(text, filename, model, defines, dtype, warnings, memory_limit=memory_limit)
