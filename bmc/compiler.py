"""The compiler driver: source text -> AST -> model IR -> optimized inference and train-step graphs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from bmc.diagnostics import BmcError, UsageError
from bmc.frontend import preprocess as prologue
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
    preprocess: Preprocess | None = None  # the data contract both lowered models begin with (None: inputs as is)

    @property
    def name(self) -> str:
        return self.model.name

    def inference(self, optimized: bool = True) -> Graph:
        g = inference_graph(self.eval_model)
        g = optimize(g) if optimized else g
        return precision.run(g, self.dtype) if self.dtype != "f32" else g

    def train_step(self, optimized: bool = True) -> Graph:
        if self.model.loss is None:
            raise BmcError(f"model '{self.name}' has no loss to train", self.model.span,
                           notes=("add 'loss = cross_entropy(logits, label)' (or mse, binary_cross_entropy)",))
        g = train_graph(self.model, self.config)
        g = optimize(g) if optimized else g
        return precision.run(g, self.dtype) if self.dtype != "f32" else g

    def evaluation(self, optimized: bool = True) -> Graph:
        """The inference-mode loss and outputs on a labelled batch (validation loss, perplexity)."""
        g = loss_graph(self.eval_model, keep_outputs=True)
        g = optimize(g) if optimized else g
        return precision.run(g, self.dtype) if self.dtype != "f32" else g


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


def compile_source(text: str, filename: str = "<string>", model: str | None = None,
                   defines: dict[str, int | float] | list[str] | None = None, dtype: str = "f32",
                   preprocess: Preprocess | None = None) -> Compiled:
    """Compile a model; `preprocess` (known once the data is, like defines) makes it take raw input."""
    if dtype not in ("f32", "f64"):
        raise UsageError(f"dtype must be f32 or f64, not {dtype}")
    module = parse(text, filename)
    defines = parse_defines(defines)
    ir = prologue.apply(lower_model(module, model, defines, training=True), preprocess)
    eval_ir = prologue.apply(lower_model(module, ir.name, defines, training=False), preprocess)
    config = parse_train_block(module.trainings.get(ir.name))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Compiled(ir, eval_ir, module, config, digest, dtype, preprocess)


def compile_file(path: str | Path, model: str | None = None, defines=None, dtype: str = "f32") -> Compiled:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    return compile_source(text, str(path), model, defines, dtype)
