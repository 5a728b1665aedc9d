"""The cost report of `bmc check`: per statement its output, parameters, forward FLOPs and activation bytes, and the
totals of inference and of the train step (forward, backward and optimizer update), with the bytes of the
parameters and of the optimizer state.

Figures are polynomials in the symbolic dims (bmc/ir/flops.py: each op states its own cost), shown as formulas and
at a batch size: `--batch`, else the train block's, else 64. Another symbolic dim (a sequence length T) stays in
the figure at the batch, and the report says it is needed for a number. FLOPs count a multiply-add as 2; beside
each total, "matmul/conv" counts matrix products and convolutions only, as PyTorch's FlopCounterMode does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bmc import memory
from bmc.compiler import Compiled
from bmc.diagnostics import BmcError, UsageError
from bmc.ir.flops import NONE, Flops, Poly, graph_flops, node_flops
from bmc.ir.graph import Graph, Node, Value
from bmc.ir.types import TensorType

DEFAULT_BATCH = 64
CONVENTIONS = ("FLOPs: a multiply-add is 2, an elementwise op 1 per element;",
               "matmul/conv: matrix products and convolutions only, as PyTorch's FlopCounterMode counts them")


@dataclass(frozen=True)
class StatementCost:
    """One statement of the `.bm` model in the inference graph (a repeated layer's copies are its statement's)."""

    name: str
    line: int | None
    output: TensorType | None  # the value it defines
    params: int  # elements of the parameters it uses first
    flops: Flops
    activation_bytes: Poly  # of its output


@dataclass(frozen=True)
class CostReport:
    model: str
    batch_symbol: str | None  # the symbolic batch dim (None: the model's inputs have a static batch)
    batch: int
    statements: tuple[StatementCost, ...]
    inference: Flops
    train_step: Flops | None  # None: no loss, or (`train_step_error`) its graph could not be built
    param_bytes: int
    state_bytes: int | None  # the optimizer's state; None without a train step
    optimizer: str | None
    train_step_error: str | None = None

    def at_batch(self, p: Poly) -> Poly:
        return p.at({self.batch_symbol: self.batch}) if self.batch_symbol else p

    def figure(self, p: Poly) -> dict:
        """A figure for JSON: its formula and its value at the batch (or, while other dims are symbolic, what it is
        at the batch and which dims a number needs)."""
        at = self.at_batch(p)
        out: dict = {"formula": p.format(grouped=False), "value": at.value}
        if at.value is None:
            out.update(at_batch=at.format(grouped=False), needs=at.symbols)
        return out

    def to_json(self) -> dict:
        def flops(f: Flops | None) -> dict | None:
            return None if f is None else {"flops": self.figure(f.total), "matmul_flops": self.figure(f.matmul)}

        return {
            "batch": {"symbol": self.batch_symbol, "value": self.batch}, "conventions": " ".join(CONVENTIONS),
            "statements": [{"name": s.name, "line": s.line, "output": str(s.output) if s.output else None,
                            "parameters": s.params, "flops": self.figure(s.flops.total),
                            "matmul_flops": self.figure(s.flops.matmul),
                            "activation_bytes": self.figure(s.activation_bytes)} for s in self.statements],
            "inference": flops(self.inference), "train_step": flops(self.train_step),
            "train_step_error": self.train_step_error,
            "parameter_bytes": self.param_bytes, "optimizer_state_bytes": self.state_bytes,
            "optimizer": self.optimizer,
        }

    def render(self) -> str:
        at = f"{self.batch_symbol} = {self.batch}" if self.batch_symbol else "the model's static batch"
        lines = [f"  cost at {at} (forward, per statement):"]
        rows = [("statement", "line", "output", "params", "FLOPs", "at batch", "activations")]
        for s in self.statements:
            rows.append((s.name, "" if s.line is None else str(s.line), str(s.output or ""), f"{s.params:,}",
                         s.flops.total.format(), self.at_batch(s.flops.total).format(),
                         self._bytes(s.activation_bytes)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        right = {1, 3, 5, 6}
        for r in rows:
            cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
            lines.append("    " + "  ".join(cells).rstrip())
        lines += self._flops("inference", self.inference)
        if self.train_step is not None:
            lines += self._flops(f"train step (forward, backward, {self.optimizer} update)", self.train_step)
        elif self.train_step_error:
            lines.append(f"    train step not built: {self.train_step_error}")
        lines.append(f"    parameters       {self.param_bytes:,} bytes ({memory.show_bytes(self.param_bytes)})")
        if self.state_bytes is not None:
            lines.append(f"    optimizer state  {self.state_bytes:,} bytes ({memory.show_bytes(self.state_bytes)}, "
                         f"{self.optimizer})")
        lines += [f"    {line}" for line in CONVENTIONS]
        lines.append("    activations: the bytes of each statement's output")
        needs = sorted({s for p in self._figures() for s in self.at_batch(p).symbols})
        if needs:
            one = len(needs) == 1
            lines.append(f"    {', '.join(needs)} {'stays' if one else 'stay'} symbolic: the inputs give "
                         f"{'it' if one else 'them'} at run time")
        return "\n".join(lines)

    def _figures(self) -> list[Poly]:
        out = [self.inference.total, *(s.activation_bytes for s in self.statements)]
        return out + ([self.train_step.total] if self.train_step else [])

    def _flops(self, what: str, f: Flops) -> list[str]:
        return [f"    {what}:", f"      FLOPs        {self._at(f.total)}", f"      matmul/conv  {self._at(f.matmul)}"]

    def _at(self, p: Poly) -> str:
        at = self.at_batch(p)
        return p.format() if at == p else f"{p.format()} = {at.format()}"

    def _bytes(self, p: Poly) -> str:
        at = self.at_batch(p)
        return memory.show_bytes(at.value) if at.value is not None else f"{at.format()} bytes"


def cost_report(model, batch: int | None = None) -> CostReport:
    """The cost report of a compiled model (a `bmc.Model` or a `Compiled`) at `batch` samples (default: the train
    block's batch, else 64)."""
    compiled: Compiled = getattr(model, "compiled", model)
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise UsageError(f"the batch size must be a positive integer, not {batch!r}")
    if batch is None:
        has_block = compiled.name in compiled.module.trainings
        batch = compiled.config.batch if has_block and compiled.config.batch else DEFAULT_BATCH
    dtype = compiled.dtype
    ir = compiled.model
    inference = compiled.inference()
    train, error = None, None
    if ir.loss is not None:
        try:
            train = compiled.train_step()
        except BmcError as e:
            error = e.message
    state = train.inputs_with_role("state") if train is not None else None
    return CostReport(
        model=compiled.name, batch_symbol=_batch_symbol(inference), batch=batch,
        statements=tuple(_statements(compiled, inference, dtype)),
        inference=graph_flops(inference), train_step=graph_flops(train) if train is not None else None,
        param_bytes=sum(memory.nbytes(p.type, dtype) for p in ir.params),
        state_bytes=None if state is None else sum(memory.nbytes(v.type, dtype) for v in state),
        optimizer=compiled.config.optimizer.kind if ir.loss is not None else None, train_step_error=error)


def _batch_symbol(g: Graph) -> str | None:
    """The first dim of the first data input, when it is symbolic (the batch, `N`)."""
    for v in g.inputs_with_role("input", "target"):
        if v.type.rank:
            first = v.type.shape[0]
            return first if isinstance(first, str) and "*" not in first else None
    return None


def statement_key(node: Node) -> str:
    """The `.bm` statement a node belongs to: the outermost key of its origin (bmc/frontend/origin.py), or its
    location where it has none."""
    span = node.span
    if span is None:
        return "(no statement)"
    return span.origin[0] if span.origin else span.location


def _statements(compiled: Compiled, g: Graph, dtype: str) -> list[StatementCost]:
    groups: dict[str, list[Node]] = {}
    for node in g.nodes:
        groups.setdefault(statement_key(node), []).append(node)
    origins = compiled.eval_model.origins
    seen: set[Value] = set()
    out = []
    for key, nodes in groups.items():
        params = [v for n in nodes for v in n.inputs if g.roles.get(v) == "param" and v not in seen]
        params = list(dict.fromkeys(params))
        seen.update(params)
        origin = origins.get(key)
        value = origin.value if origin is not None and origin.value is not None else nodes[-1].outputs[0]
        span = origin.span if origin is not None and origin.span is not None else nodes[0].span
        count = sum(math.prod(p.type.shape) for p in params)
        out.append(StatementCost(key, span.line if span else None, value.type, count,
                                 sum((node_flops(n) for n in nodes), NONE), _bytes(value.type, dtype)))
    return out


def _bytes(t: TensorType, dtype: str) -> Poly:
    """The bytes of a value of type `t`, as a polynomial in its symbolic dims (an f64 build keeps floats in f64)."""
    return Poly.elements(t.shape) * memory.nbytes(t.with_shape(()), dtype)
