"""The compiler driver: source text -> AST -> model IR -> optimized inference and train-step graphs."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from bmc import memory
from bmc.diagnostics import BmcError, BmcWarning, Source, Span, UsageError, apply_policy
from bmc.frontend import preprocess as prologue
from bmc.frontend.deep import run_deep
from bmc.frontend.lint import lint
from bmc.frontend.lower import lower_model
from bmc.frontend.model_ir import ModelIR
from bmc.frontend.preprocess import Preprocess
from bmc.ir.graph import Graph
from bmc.passes import precision
from bmc.passes.pipeline import optimize
from bmc.syntax import ast, parse
from bmc.syntax.literals import INT_MAX
from bmc.train.config import TrainConfig, parse_train_block
from bmc.train.freeze import frozen
from bmc.train.step import apply_graph, gradients_graph, inference_graph, loss_graph, train_graph


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
    memory_limit: int = 0  # bytes the model may need (bmc.memory): checked at compile time and again for training
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

    def gradients(self, optimized: bool = True) -> Graph:
        """The train step's first half (bmc/train/step.py): the loss, outputs and gradients of a batch."""
        self.train_step(optimized)  # the same error for a model without a loss
        return self._cached("gradients", optimized, lambda: gradients_graph(self.model, self.config))

    def apply(self, optimized: bool = True) -> Graph:
        """The train step's second half: the optimizer update from given gradients."""
        self.train_step(optimized)
        return self._cached("apply", optimized, lambda: apply_graph(self.model, self.config))

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
    """`-D hidden=256` values (or a dict of them): ints stay ints (64-bit), anything else must be a finite number."""
    if defines is None:
        return {}
    if isinstance(defines, dict):
        return {key: _define_value(key, value) for key, value in defines.items()}
    out: dict[str, int | float] = {}
    for d in defines:
        key, sep, value = d.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"-D expects NAME=VALUE, got '{d}'")
        out[key.strip()] = _define_value(key.strip(), value.strip())
    return out


def _define_value(key: str, value) -> int | float:
    """One define's value: an int of at most 64 bits (as integer literals are) or any float. A float that is not
    finite (`-D k=nan`, `inf`) is a value like any other here; where an argument needs a finite number (a size, a
    rate, an epsilon) its domain refuses it at that argument (bmc/frontend/domains.py)."""
    if isinstance(value, str):
        shown = value if len(value) <= 30 else f"{value[:30]}..."
        if re.fullmatch(r"[-+]?\d+", value):
            if len(value.lstrip("+-").lstrip("0")) > 19 or not -INT_MAX - 1 <= int(value) <= INT_MAX:
                raise UsageError(f"-D {key}: {shown} is too large: integers are at most {INT_MAX}")
            return int(value)
        try:
            return float(value)
        except ValueError:
            raise UsageError(f"-D {key}: '{shown}' is not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"define {key}: {value!r} is not a number")
    if isinstance(value, int) and not -INT_MAX - 1 <= value <= INT_MAX:
        raise UsageError(f"define {key}: {value} is too large: integers are at most {INT_MAX}")
    return value


def source_name(filename: str) -> str:
    """The file name as text: a path's undecodable bytes (lone surrogates, from os.fsdecode) as `\\udcXX`, so the
    name can be printed, written as UTF-8 (manifests, ONNX strings, generated code) and still tells the bytes."""
    return filename.encode("utf-8", "backslashreplace").decode("utf-8")


def compile_source(text: str, filename: str = "<string>", model: str | None = None,
                   defines: dict[str, int | float] | list[str] | None = None, dtype: str = "f32",
                   warnings: str = "default", preprocess: Preprocess | None = None,
                   memory_limit: int | None = None) -> Compiled:
    """Compile one model. `warnings` is "default" (collect them), "ignore" or "error" (raise the first);
    `preprocess` (known once the data is, like defines) makes it take raw input; `memory_limit` (bytes; default:
    the machine's memory) bounds what its parameters, optimizer state and activations may need."""
    if dtype not in ("f32", "f64"):
        raise UsageError(f"dtype must be f32 or f64, not {dtype}")
    if len(text) > MAX_SOURCE_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        _too_large(len(text.encode("utf-8", "surrogatepass")), text.split("\n", 1)[0], filename)
    defines = parse_defines(defines)
    limit = memory.resolve_limit(memory_limit)
    return run_deep(_compile, text, filename, model, defines, dtype, warnings, preprocess, limit)


def _compile(text: str, filename: str, model: str | None, defines: dict[str, int | float], dtype: str,
             warnings: str, preprocess: Preprocess | None, memory_limit: int) -> Compiled:
    module = parse(text, source_name(filename))
    ir = prologue.apply(lower_model(module, model, defines, training=True), preprocess)
    eval_ir = prologue.apply(lower_model(module, ir.name, defines, training=False), preprocess)
    config = parse_train_block(module.trainings.get(ir.name))
    frozen(ir, config.freeze)  # a pattern that matches no parameter is an error now, at the pattern
    memory.check(ir, config, dtype, memory_limit)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Compiled(ir, eval_ir, module, config, digest, dtype, apply_policy(lint(module, ir, eval_ir), warnings),
                    preprocess, memory_limit)


MAX_SOURCE_BYTES = 16 * 2**20  # a .bm file is text a person writes: the largest example is 2 KB


def _too_large(size: int, first_line: str, filename: str) -> None:
    source = Source(source_name(filename), first_line)
    raise BmcError(f"this file is {memory.show_bytes(size)}; bmc reads .bm files of at most "
                   f"{memory.show_bytes(MAX_SOURCE_BYTES)}", Span(source, 1, 1, 1, 2),
                   notes=("a .bm file describes a model in a few lines; is this the file you meant?",))


def compile_file(path: str | Path, model: str | None = None, defines=None, dtype: str = "f32",
                 warnings: str = "default", memory_limit: int | None = None) -> Compiled:
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_SOURCE_BYTES:  # refused before it is read
            with path.open("rb") as f:
                head = f.read(4096)
            _too_large(size, head.decode("utf-8", errors="replace").split("\n")[0], str(path))
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    return compile_source(decode_source(data, str(path)), str(path), model, defines, dtype, warnings,
                          memory_limit=memory_limit)


def decode_source(data: bytes, filename: str) -> str:
    """A `.bm` file's text: UTF-8 (a leading byte-order mark is dropped). Anything else is an error at the line and
    column of the first byte that is not UTF-8, shown with the line (its bad bytes replaced by U+FFFD)."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        line = data[:line_start].count(b"\n") + 1
        column = len(data[line_start : e.start].decode("utf-8")) + 1
        shown = Source(source_name(filename), data.decode("utf-8", errors="replace"))
        bad = " ".join(f"0x{b:02x}" for b in data[e.start : e.end])
        raise BmcError(f"this file is not UTF-8: byte {bad} cannot start or continue a UTF-8 character",
                       Span(shown, line, column, line, column + 1),
                       notes=("save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",)) from None
