"""The compiler driver: source text -> AST -> model IR -> optimized inference and train-step graphs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from bmc.diagnostics import BmcError, BmcWarning, UsageError, apply_policy
from bmc.frontend import preprocess as prologue
from bmc.frontend.lint import lint
from bmc.frontend.lower import lower_model
from bmc.frontend.model_ir import ModelIR
from bmc.frontend.preprocess import Preprocess
from bmc.ir.graph import Graph
from bmc.passes import precision
from bmc.passes.pipeline import optimize
from bmc.syntax import ast, parse
from bmc.train.config import TrainConfig, parse_train_block
from bmc.train.step import inference_graph, loss_graph, train_graph


@dataclass
class Compiled:
    """A model compiled from `.bm` source: what every backend and tool starts from."""

    model: ModelIR  # lowered for training: dropout on, batch-norm batch statistics
    eval_model: ModelIR  # lowered for inference: dropout off, running statistics
    module: ast.Module
    config: TrainConfig
    source_hash: str
    dtype: str = "f32"
    warnings: tuple[BmcWarning, ...] = ()  # likely mistakes found while compiling (bmc/frontend/lint.py)
    preprocess: Preprocess | None = None  # the data contract both lowered models begin with (None: inputs as is)
    # the graphs below, built once each (a build, its manifest and its ONNX export all ask for the train step);
    # a new configuration is a new Compiled (dataclasses.replace), so the cache never outlives what it was built from
    _graphs: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.model.name

    def inference(self, optimized: bool = True) -> Graph:
        return self._cached("inference", optimized, lambda: inference_graph(self.eval_model))

    def train_step(self, optimized: bool = True) -> Graph:
        if self.model.loss is None:
            raise BmcError(f"model '{self.name}' has no loss to train", self.model.span,
                           notes=("add 'loss = cross_entropy(logits, label)' (or mse, binary_cross_entropy)",))
        return self._cached("train_step", optimized, lambda: train_graph(self.model, self.config))

    def evaluation(self, optimized: bool = True) -> Graph:
        """The inference-mode loss and outputs on a labelled batch (validation loss, perplexity)."""
        return self._cached("evaluation", optimized, lambda: loss_graph(self.eval_model, keep_outputs=True))

    def _cached(self, kind: str, optimized: bool, build) -> Graph:
        """Retype to the build's precision first, so that constant folding computes in that precision (an f64 build
        must not see constants rounded to float32), then optimize. Graphs are not changed once built: passes and
        backends make new ones."""
        key = (kind, optimized)
        if key not in self._graphs:
            g = build()
            g = precision.run(g, self.dtype) if self.dtype != "f32" else g
            self._graphs[key] = optimize(g) if optimized else g
        return self._graphs[key]


def parse_defines(defines: list[str] | dict | None) -> dict[str, int | float]:
    """`-D hidden=256` values: ints stay ints, anything else must be a number."""
    if defines is None:
        return {}
    if isinstance(defines, dict):
        return dict(defines)
    out: dict[str, int | float] = {}
    for d in defines:
        key, sep, value = d.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"-D expects NAME=VALUE, got '{d}'")
        try:
            out[key.strip()] = int(value)
        except ValueError:
            try:
                out[key.strip()] = float(value)
            except ValueError:
                raise UsageError(f"-D {key.strip()}: '{value}' is not a number") from None
    return out


def source_name(filename: str) -> str:
    """The file name as text: a path's undecodable bytes (lone surrogates, from os.fsdecode) as `\\udcXX`, so the
    name can be printed, written as UTF-8 (manifests, ONNX strings, generated code) and still tells the bytes."""
    return filename.encode("utf-8", "backslashreplace").decode("utf-8")


def compile_source(text: str, filename: str = "<string>", model: str | None = None,
                   defines: dict[str, int | float] | list[str] | None = None, dtype: str = "f32",
                   warnings: str = "default", preprocess: Preprocess | None = None) -> Compiled:
    """Compile one model. `warnings` is "default" (collect them), "ignore" or "error" (raise the first);
    `preprocess` (known once the data is, like defines) makes it take raw input."""
    if dtype not in ("f32", "f64"):
        raise UsageError(f"dtype must be f32 or f64, not {dtype}")
    module = parse(text, source_name(filename))
    defines = parse_defines(defines)
    ir = prologue.apply(lower_model(module, model, defines, training=True), preprocess)
    eval_ir = prologue.apply(lower_model(module, ir.name, defines, training=False), preprocess)
    config = parse_train_block(module.trainings.get(ir.name))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Compiled(ir, eval_ir, module, config, digest, dtype, apply_policy(lint(module, ir, eval_ir), warnings),
                    preprocess)


def compile_file(path: str | Path, model: str | None = None, defines=None, dtype: str = "f32",
                 warnings: str = "default") -> Compiled:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    return compile_source(text, str(path), model, defines, dtype, warnings)
