"""A build's preprocessing contract, and the prologue that makes it part of the model.

A model trained on a data set takes that data set's raw samples (uint8 pixels 0..255 for IDX images, pixels 0..16
for digits, a user's own numbers for a .npz) and computes

    x = (raw * scale - mean) / std

right after its input: `scale` is the data set's (1/255 for uint8 pixels), `mean` and `std` the train block's
`normalize` (the training set's statistics, or given numbers; 0 and 1 without it). Like a `-D` define, the record
is fixed once the data is known, and the model is compiled with it (`Model.with_preprocess`), so the prologue is
ordinary IR: the generated model.py (forward, train_step, evaluate), model.onnx, train_step.onnx and model.cu all
take raw input and apply the same computation, and nothing outside the graph rescales or standardizes anything.
The manifest and the ONNX metadata record it (`as_json`) for whoever feeds a build.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bmc.diagnostics import BmcError, UsageError
from bmc.frontend.model_ir import ModelIR
from bmc.ir.graph import Builder, Graph, Value
from bmc.ir.rewrite import copy_node
from bmc.ops import emit as E

APPLIED_BY = ("every artifact of the build (model.py's forward, train_step and evaluate, model.onnx, "
              "train_step.onnx, model.cu): feed them raw samples")


@dataclass(frozen=True)
class Preprocess:
    """x = (raw * scale - mean) / std for the model input `input`; `raw` says what a raw sample is."""

    input: str
    scale: float = 1.0
    mean: float = 0.0
    std: float = 1.0
    raw: str = "numbers, as given"

    @property
    def is_identity(self) -> bool:
        return self.scale == 1 and self.mean == 0 and self.std == 1

    def formula(self) -> str:
        """The computation in words of the input's name: `(image * 0.00392 - 0.286) / 0.353`."""
        text = self.input
        if self.scale != 1:
            text = f"{text} * {self.scale!r}"
        if self.mean != 0:
            text = f"{text} - {self.mean!r}"
        if self.std != 1:
            text = f"({text}) / {self.std!r}" if " " in text else f"{text} / {self.std!r}"
        return text

    def as_json(self) -> dict:
        return {"input": self.input, "raw": self.raw, "scale": self.scale, "mean": self.mean, "std": self.std,
                "computes": f"{self.input} = {self.formula()}", "applied_by": APPLIED_BY}

    @classmethod
    def from_json(cls, record: dict | None, where: str = "the build") -> Preprocess | None:
        """The record of a manifest or ONNX metadata (None when it has none)."""
        if record is None:
            return None
        if "scale" not in record:  # bmc before the contract: model.py expected standardized inputs
            raise UsageError(f"{where} was written by an older bmc whose model.py and train_step.onnx take "
                             "standardized inputs while its manifest expects raw ones; retrain it (bmc train -o)")
        return cls(record["input"], float(record["scale"]), float(record["mean"]), float(record["std"]),
                   record.get("raw", cls.raw))


def apply(model: ModelIR, pre: Preprocess | None) -> ModelIR:
    """The model with its input `pre.input` raw: the prologue is emitted right after the input (with the input
    declaration's span, so generated code points at it) and every reader of the input reads its result."""
    if pre is None or pre.is_identity:
        return model
    g = model.graph
    x = next((v for v in g.inputs_with_role("input") if v.name == pre.input), None)
    if x is None:
        raise UsageError(f"cannot preprocess '{pre.input}': model '{model.name}' has no such input")
    if not x.type.is_float:
        raise BmcError(f"input '{x.name}' is {x.type}, but its data must be computed as {pre.formula()} "
                       f"({pre.raw})", model.input_spans.get(x.name, x.span),
                       notes=(f"declare it f32: input {x.name}: f32[{', '.join(map(str, x.type.shape))}]",))
    new, env = prologue(g, x, pre)
    updates = {k: env.get(v, v) for k, v in model.updates.items()}
    return dataclasses.replace(model, graph=new, updates=updates)


def prologue(g: Graph, x: Value, pre: Preprocess) -> tuple[Graph, dict[Value, Value]]:
    """A copy of graph g whose float input x is raw: (x * scale - mean) / std comes first and every reader of x reads
    it. Returns the graph and the map from g's values to the copy's."""
    new = g.copy_frame()
    b = Builder(new, x.span)
    y = x
    if pre.scale != 1:
        y = E.mul(b, y, E.like(b, pre.scale, y))
    if pre.mean != 0:
        y = E.sub(b, y, E.like(b, pre.mean, y))
    if pre.std != 1:
        y = E.div(b, y, E.like(b, pre.std, y))
    y.name = f"{x.name}.{'standardized' if pre.mean != 0 or pre.std != 1 else 'scaled'}"
    env = {x: y}
    for node in g.nodes:
        outs = copy_node(new, node, tuple(env.get(v, v) for v in node.inputs))
        env.update({old: out for old, out in zip(node.outputs, outs, strict=True) if out is not old})
    new.outputs = {k: env.get(v, v) for k, v in g.outputs.items()}
    return new, env
