"""Scan: a loop over a sequence axis whose body is a graph; recurrences of any length compile to one graph.

    carries_T, ys = scan(body, carries_0, xs, consts)

`body` takes (carries..., one step of each xs..., consts...) and returns (new carries..., one step of each ys...).
Sequences are batch-first: xs are [N, T, ...], the body sees [N, ...], and ys are stacked back to [N, T, ...].
The scan also returns the carries entering each step, stacked (`history`), which its gradient needs; a forward
scan whose history nobody uses costs nothing extra on backends that skip unused outputs.

The gradient is another scan, run backwards, whose body recomputes one forward step and applies its VJP:
ordinary IR all the way down. Building it differentiates and optimizes the body, so it is a pass of its own
(bmc/passes/scan_grad.py), which autodiff calls for every scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from bmc.ir.flops import Poly, graph_flops
from bmc.ir.graph import Builder, Graph, Value
from bmc.ir.types import TensorType, TypeError_
from bmc.ops.base import Op

__all__ = ["Scan"]  # the ops, which bmc.ops re-exports


def step_type(seq: TensorType) -> TensorType:
    return seq.with_shape((seq.shape[0], *seq.shape[2:]))


def seq_type(step: TensorType, length) -> TensorType:
    return step.with_shape((step.shape[0], length, *step.shape[1:]))


@dataclass(frozen=True, eq=False)
class Scan(Op):
    name: ClassVar[str] = "scan"
    body: Graph = field(compare=False)
    num_carries: int = 1
    num_xs: int = 1
    reverse: bool = False

    @property
    def num_ys(self) -> int:
        return len(self.body.outputs) - self.num_carries

    def infer(self, *types: TensorType) -> tuple[TensorType, ...]:
        k, m = self.num_carries, self.num_xs
        carries, xs, consts = types[:k], types[k:k + m], types[k + m:]
        body_in = [v.type for v in self.body.inputs]
        if len(body_in) != len(types):
            raise TypeError_(f"scan body takes {len(body_in)} inputs, given {len(types)}")
        if not xs:
            raise TypeError_("scan needs at least one sequence")
        length = xs[0].shape[1]
        for x in xs:
            if x.rank < 2 or x.shape[1] != length:
                raise TypeError_(f"scan sequences must be [N, T, ...] with one T, got {x}")
        expected = [*carries, *(step_type(x) for x in xs), *consts]
        for want, got in zip(expected, body_in, strict=True):
            if want != got:
                raise TypeError_(f"scan body expects {got}, given {want}")
        outs = [v.type for v in self.body.outputs.values()]
        if outs[:k] != list(carries):
            raise TypeError_("scan body must return its carries with unchanged types")
        ys = [seq_type(t, length) for t in outs[k:]]
        history = [seq_type(t, length) for t in carries]
        return (*carries, *ys, *history)

    def flops(self, inputs, outputs):  # the body once per step
        return graph_flops(self.body) * Poly.dim(inputs[self.num_carries].shape[1])

def inline(b: Builder, body: Graph, inputs: list[Value], env: dict | None = None) -> list[Value]:
    """Copy a body graph's nodes into `b`, reading `inputs`; return its outputs (`env` receives the mapping)."""
    env = env if env is not None else {}
    env.update(zip(body.inputs, inputs, strict=True))
    for node in body.nodes:
        outs = b.emit(node.op, *(env[v] for v in node.inputs), span=node.span)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for old, new in zip(node.outputs, outs, strict=True):
            new.name = old.name
            env[old] = new
    return [env[v] for v in body.outputs.values()]
