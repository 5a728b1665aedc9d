"""What lowering a `.bm` model produces: its forward graph plus what the tools need to know about it."""

from __future__ import annotations

from dataclasses import dataclass, field

from bmc.diagnostics import Source, Span
from bmc.frontend.origin import Origin
from bmc.ir.graph import Graph, Value


@dataclass
class ModelIR:
    name: str
    source: Source
    graph: Graph  # inputs (input/target), params; outputs: declared outputs, then "loss" if the model has one
    outputs: list[str]  # declared outputs, in declaration order
    loss: str | None  # "loss" when the model defines one
    constants: dict[str, int | float]  # the model parameters (hidden = 128) after -D overrides
    constant_spans: dict[str, Span] = field(default_factory=dict)
    input_spans: dict[str, Span] = field(default_factory=dict)  # input name -> span of its type, for data errors
    span: Span | None = None
    updates: dict[str, Value] = field(default_factory=dict)  # running statistics the train step replaces
    training: bool = True  # lowered for the train step (dropout, batch statistics) or for inference
    # the statements and layer calls each op's `span.origin` names (bmc/frontend/origin.py), in lowering order
    origins: dict[str, Origin] = field(default_factory=dict)

    def value(self, name: str) -> Value:
        return self.graph.outputs[name]

    @property
    def data_inputs(self) -> list[Value]:
        return self.graph.inputs_with_role("input")

    @property
    def targets(self) -> list[Value]:
        return self.graph.inputs_with_role("target")

    @property
    def params(self) -> list[Value]:
        return self.graph.params
