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
from typing import TYPE_CHECKING

import numpy as np

from bmc import artifacts, init, memory, targets
from bmc.build import Build
from bmc.compiler import Compiled, compile_file, compile_source, parse_defines
from bmc.diagnostics import BmcError, BmcWarning, DataError, Span, UsageError, check_policy
from bmc.frontend.domains import SEED
from bmc.frontend.preprocess import Preprocess
from bmc.ir.types import INT_DTYPES, NUMPY_NAMES
from bmc.train.freeze import frozen as freeze_patterns

# What only training, inspection or given parameters need is imported where it is used, so that `bmc build` does
# not load the data loaders, the training loop or the numerics watch (issue 14: a build's start-up time).
if TYPE_CHECKING:
    from bmc import given
    from bmc.data import Dataset
    from bmc.train.loop import History


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

    def summary(self, batch: int | None = None) -> str:
        """The inputs, parameters and outputs, then the cost report (bmc/cost.py) at `batch` samples (default: the
        train block's batch, else 64)."""
        from bmc.cost import cost_report

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
        frozen = freeze_patterns(m, self.config.freeze)
        for p in m.params:
            count = math.prod(p.type.shape)
            total += count
            info = m.graph.param_info[p]
            note = ("  (frozen: not trained)" if p.name in frozen and info.trainable else
                    "  (frozen: not updated)" if p.name in frozen else
                    "" if info.trainable else "  (not trained: updated by the train step)")
            lines.append(f"    {p.name:<{width}} {p.type!s:<{types}} {count:>10,}  ~ {info.init}{note}")
        lines.append(f"    {'total':<{width}} {'':<{types}} {total:>10,}")
        for name in m.outputs:
            lines.append(f"  output  {name}: {m.graph.outputs[name].type}")
        if m.loss:
            lines.append(f"  loss    {m.graph.outputs['loss'].type}")
        lines.append(cost_report(self, batch).render())
        return "\n".join(lines)

    def summary_json(self, batch: int | None = None) -> dict:
        """What `summary` prints, for `bmc check --json`."""
        from bmc.cost import cost_report

        m = self.compiled.model
        roles = m.graph.roles
        frozen = freeze_patterns(m, self.config.freeze)
        return {
            "model": m.name, "file": m.source.name, "constants": dict(m.constants),
            "inputs": {v.name: str(v.type) for v in m.graph.inputs if roles[v] == "input"},
            "targets": {v.name: str(v.type) for v in m.graph.inputs if roles[v] == "target"},
            "parameters": {p.name: {"type": str(p.type), "count": math.prod(p.type.shape),
                                    "init": str(m.graph.param_info[p].init),
                                    "trainable": m.graph.param_info[p].trainable and p.name not in frozen,
                                    "frozen": p.name in frozen} for p in m.params},
            "parameter_count": sum(math.prod(p.type.shape) for p in m.params),
            "outputs": {name: str(m.graph.outputs[name].type) for name in m.outputs},
            "loss": str(m.graph.outputs["loss"].type) if m.loss else None,
            "cost": cost_report(self, batch).to_json(),
        }

    def ir(self, train: bool = False, optimized: bool = True) -> str:
        from bmc.ir.printer import print_graph

        g = self.compiled.train_step(optimized) if train else self.compiled.inference(optimized)
        return print_graph(g)

    def generate(self, target: str = "numpy", train: bool | None = None) -> str:
        """The generated source: the NumPy module, or (target "cuda") model.cu."""
        train = self.compiled.model.loss is not None if train is None else train
        return targets.target(target).generate(self, train)

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
              train_step: bool = False, freeze=None, log=print,
              warn: Callable[[BmcWarning], None] = _print_warning) -> Path:
        """Write a build directory: the NumPy module, or (target "onnx") model.onnx and, with `train_step`, the
        train step as train_step.onnx with the initial params.npz and state.npz. `trained` supplies trained
        parameters (and their constants, preprocessing contract and vocabulary) instead of freshly initialized
        ones. `params` gives parameters by name (bmc/given.py): a .npz archive's path or a dict of arrays; those it
        lacks, or has in another shape, are initialized from `seed`, and `log` gets a note naming them. `freeze`
        (names or glob patterns, bmc/train/freeze.py) overrides the train block's for the exported train step."""
        from bmc.train.numerics import require_finite

        backend = targets.target(target)
        artifacts.check_target(out_dir)  # before any long work: `out_dir` may hold something bmc must not replace
        if freeze is not None:
            self = self._frozen(freeze)
        if trained is not None:
            self = self.matching(trained)
            params, state = trained.params, trained.state
        elif params is not None:
            from bmc import given

            initial, fresh = self.init_params(seed)
            params = self._given(given.given(params.params if isinstance(params, Build) else params), initial,
                                 log, warn)
            state = fresh if state is None else state
        if params is None:
            params, state = self.init_params(seed)
        spans = {k.removeprefix("params/"): v for k, v in self._spans().items()}
        require_finite(params, state or {}, spans)
        return backend.build(self, out_dir, params, state or {}, seed=seed, history=history, data=data,
                             trained=trained, train_step=train_step)

    def train(self, data: str | Dataset | tuple | None = None, *, epochs: int | None = None, batch: int | None = None,
              lr: float | None = None, seed: int | None = None, optimizer: str | None = None,
              steps: int | None = None, backend: str = "numpy", log=print, progress: bool | None = True,
              warn: Callable[[BmcWarning], None] = _print_warning, check_numerics: bool = False,
              checkpoint_dir: str | Path | None = None, checkpoint_every: str | int | None = None,
              keep: int | None = None, resume: str | Path | None = None, early_stop: int | None = None,
              early_stop_on: str | None = None, test_every_epoch: bool | None = None,
              on_epoch: list[Callable] | None = None, target: str | None = None, params=None,
              freeze=None, replicas=None) -> Build:
        """Train on a data set (a spec such as "digits", "text:FILE" or a `Dataset`) and return the trained build.
        `backend` runs the train step: "numpy" (the generated module) or "onnxruntime" (the exported ONNX train
        step, on the CUDA provider where there is a GPU). Warnings about the run (metrics that do not fit the data,
        non-finite outputs, a diverging loss) go to `warn`, by default printed on stderr. `check_numerics` checks
        every step's outputs, parameters and state, and stops at the first step that makes one non-finite with an
        error at the `.bm` statement of the op that did (bmc/train/numerics.py); without it a non-finite loss still
        stops training.

        Checkpoints (bmc/train/checkpoint.py) go to `checkpoint_dir` every `checkpoint_every` epochs (or "500s":
        steps), keeping the last `keep`; `resume` continues from the last checkpoint in that directory. With
        `early_stop` (a patience in epochs) training stops when `early_stop_on` (default val_loss) has not improved
        for that long, and the best epoch's parameters are restored. `on_epoch` functions get each epoch's
        `EpochLog` (bmc/train/logs.py writes CSV, JSON lines and TensorBoard files).

        Fine-tuning: `params` gives the starting parameters by name (bmc/given.py), as a .npz archive's path (what
        `bmc import` writes), a build directory or a dict of arrays; those it lacks, or has in another shape (a
        replaced head), are initialized, and `log` gets a note naming them. Optimizer state starts fresh. `freeze`
        (names or glob patterns, "stem,layer1.*" or a list; bmc/train/freeze.py) overrides the train block's: the
        parameters training leaves as they are.

        Data-parallel training: `replicas` (a `bmc.train.replicas.Replicas` of an MPI communicator, in a program
        started by mpirun) splits every batch over the ranks and sums their gradients (bmc/train/replicas.py); rank
        0 alone logs and writes checkpoints."""
        from bmc import given
        from bmc.data import Dataset, from_arrays
        from bmc.data.text import is_text_spec
        from bmc.train import agree, run_setup
        from bmc.train.loop import ArrayTask, unfit_metrics, usable_metrics

        targets.runner(backend)  # an unknown one is an error before any work
        if replicas is not None:
            from bmc.train.replicas import for_rank

            if backend == "onnxruntime":  # its sessions keep the parameters in their own buffers: no halves yet
                raise UsageError("data-parallel training runs the NumPy or the CUDA backend; --backend onnxruntime "
                                 "over MPI is not supported yet (gradients.onnx and apply.onnx are there for a "
                                 "driver of your own)", notes=("drop --backend, or train in one process",))
            log, progress = for_rank(replicas, log), progress if replicas.leader else False
            warn = warn if replicas.leader else (lambda w: None)
        config = self.config.override(epochs=epochs, batch=batch, lr=lr, seed=seed, optimizer=optimizer,
                                      steps=steps, target=target, freeze=freeze)
        config = run_setup.override(config, checkpoint_every, keep, early_stop, early_stop_on, test_every_epoch)
        start = None if params is None else given.given(params.params if isinstance(params, Build) else params)
        options = run_setup.Options(checkpoint_dir, resume, on_epoch or [], backend, start, replicas)
        self = self.with_config(config)  # the train step is built from the overridden configuration
        freeze_patterns(self.compiled.model, config.freeze)  # --freeze patterns are checked before any work
        spec = data if isinstance(data, Dataset | tuple | list) else (data or config.data)
        if isinstance(spec, str) and is_text_spec(spec):
            return self._train_text(spec, config, log, progress, backend, warn, check_numerics, options)
        targets_ = self.compiled.model.targets
        classes = not targets_ or targets_[0].type.dtype in INT_DTYPES
        if isinstance(spec, tuple | list):
            dataset = from_arrays(spec, classes)
        else:
            dataset = spec if isinstance(spec, Dataset) else self._load(spec, data is None, config, classes)
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
        valid_feed: dict = {}
        if config.validation:
            train_feed, valid_feed = agree.hold_out(train_feed, config.validation, config.seed,
                                                    config.spans.get("validation"))
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
        targets_ = model.compiled.model.targets
        task = ArrayTask(train_feed, valid_feed, test_feed, outputs[0] if outputs else None, dataset.num_classes,
                         metrics, config.batch, config.augment, targets_[0].name if targets_ else None)
        about = {"classes": dataset.class_names, "image": dataset.image, "columns": dataset.columns,
                 "target_column": dataset.target_column}  # what `bmc predict` needs to read new files
        return model._fit(config, task, dataset.description, log, progress,
                          {k: v for k, v in about.items() if v}, backend, warn, check_numerics, options)

    @staticmethod
    def _load(spec: str, from_block: bool, config, classes: bool) -> Dataset:
        """The data set; an error about the train block's `data` setting points at it."""
        from bmc.data import load_dataset

        try:
            return load_dataset(spec, config.target, classes)
        except DataError as e:
            if from_block and "data" in config.spans and e.span is None:
                raise DataError(e.message, config.spans["data"], notes=e.notes) from None
            raise

    def _train_text(self, spec: str, config, log, progress, backend: str, warn, check_numerics: bool,
                    options) -> Build:
        from bmc.data.text import load_text
        from bmc.train import agree
        from bmc.train.loop import TextTask, unfit_metrics

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
                          backend, warn, check_numerics, options)

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
             check_numerics: bool, options) -> Build:
        from bmc.runtime import load_source
        from bmc.train import run_setup
        from bmc.train.numerics import Watch

        source = self.generate("numpy", train=True)
        module = load_source(source, f"<bmc {self.name}>")
        params, state = self.init_params(config.seed)
        if options.params is not None:
            params = self._given(options.params, params, log, warn)

        def build(params, state, history) -> Build:
            return Build(self, module, source, params, state, history, description, config, extra=extra)

        run, resumed = run_setup.prepare(self, config, description, options, build, log)
        if resumed is not None:
            params, state = resumed
        if options.replicas is not None:
            run.replicas = options.replicas
            run.replicas.prepare(self.compiled.gradients())
            log(f"workers: {run.replicas.describe()}")
        budget = f"{config.steps} steps" if config.steps else f"{config.epochs} epochs"
        log(f"training {self.name} on {description}: {budget}, batch {config.batch or 'full'}, {config.optimizer}"
            + (f", schedule {config.schedule}" if config.schedule.kind != "constant" or config.schedule.warmup
               else "") + (f", clip {config.clip:g}" if config.clip else "")
            + (f", early stop {config.early_stop}" if config.early_stop else ""))
        watch = Watch(check_numerics, self.compiled.train_step, self._spans(), config.optimizer.lr)
        history = targets.runner(backend).fit(self, module, config, params, state, task, log=log,
                                              progress=progress, watch=watch, run=run)
        for warning in watch.warnings:
            self._warn(warning, warn)
        if history.best is not None:  # early stopping: the best epoch's parameters
            params.update(history.best[0])
            state.update(history.best[1])
        if history.epochs and not config.test_every_epoch:
            with np.errstate(all="ignore"):  # non-finite values are the watch's to report, as in training
                history.final.test = task.test_scores(module, params)
            if history.final.test:
                log("test  " + "  ".join(f"{k} {v:.4f}" for k, v in history.final.test.items()))
        for logger in options.on_epoch:  # once more, with the test scores
            logger(history)
        return build(params, state, history)

    def _given(self, value: given.Given, initial: dict[str, np.ndarray], log, warn) -> dict[str, np.ndarray]:
        """`initial` with the given parameters in place; the note on those initialized goes to `log`, the warning
        about given names the model lacks to `warn`."""
        from bmc import given

        types = {p.name: str(p.type) for p in self.compiled.model.graph.params}
        taken = given.take(value, initial, types)
        for note in taken.notes:
            log(f"note: {note}")
        self._warn(taken.warning, warn)
        return taken.params

    def _frozen(self, freeze) -> Model:
        """This model with the train block's `freeze` replaced (names or glob patterns, checked here)."""
        model = self.with_config(self.config.override(freeze=freeze))
        freeze_patterns(model.compiled.model, model.config.freeze)
        return model

    def _spans(self) -> dict[str, Span]:
        """Where the results of a train step are defined: outputs by name, parameters as `params/<name>`, and the
        train block's optimizer setting (what numerics warnings point at)."""
        g = self.compiled.model.graph
        spans = {k: g.outputs[k].span for k in self.compiled.model.outputs}
        spans.update({f"params/{p.name}": g.param_info[p].span or p.span for p in g.params})
        if "optimizer" in self.config.spans:
            spans["optimizer"] = self.config.spans["optimizer"]
        return spans


def _seed(seed) -> int:
    try:
        return SEED.check(seed, "the seed", None)
    except BmcError as e:
        raise UsageError(e.message) from None


def load(build_dir: str | Path) -> Build:
    """Load a build directory written by `bmc build` or `bmc train -o`."""
    build_dir = Path(build_dir)
    manifest = artifacts.read_manifest(build_dir)
    Preprocess.from_json(manifest.get("preprocess"), str(build_dir))  # a build of an older contract is refused
    return targets.target(manifest.get("target", "numpy")).load(build_dir, manifest)


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
