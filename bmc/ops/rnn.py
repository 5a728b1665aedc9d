"""Recurrent layers in ONNX's formulation (gate order, weight layouts), kept whole so the ONNX exporter maps them to
RNN, LSTM and GRU, and decomposed into a Scan everywhere else.

Weights per direction, as ONNX without its direction axis: W [gates*H, F], R [gates*H, H], B [2*gates*H] (the input
biases Wb then the recurrence biases Rb). Gate order: LSTM i, o, f, c; GRU z, r, h; RNN one gate.
Inputs are batch-first [N, T, F]; outputs are the whole sequence of states [N, T, H] and the last state [N, H]
(for a reverse layer, the state after reading the sequence backwards, i.e. at t = 0).

The input projection of every step is one matrix product before the scan; the scan body does only the recurrence.

Their gradient is that of their decomposition: before autodiff, bmc/train/step.py:differentiable_form expands every
op without a gradient rule of its own, and the scan's gradient is built by bmc/passes/scan_grad.py (`bmc ops` lists
where each op is differentiated and lowered).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bmc.ir.graph import Builder, Graph, Value
from bmc.ir.types import TensorType, TypeError_
from bmc.ops import emit as E
from bmc.ops.base import Op
from bmc.ops.elementwise import Sigmoid, Tanh
from bmc.ops.scan import Scan
from bmc.ops.shape import Slice, Split

__all__ = ["GRU", "LSTM", "RNN"]  # the ops, which bmc.ops re-exports


@dataclass(frozen=True)
class Recurrent(Op):
    gates: ClassVar[int] = 1
    states: ClassVar[int] = 1  # carries: h (and c for an LSTM)
    hidden: int = 1
    reverse: bool = False

    def infer(self, x: TensorType, w: TensorType, r: TensorType, bias: TensorType) -> tuple[TensorType, ...]:
        gh = self.gates * self.hidden
        if x.rank != 3 or not x.is_float:
            raise TypeError_(f"{self.name} expects a float sequence [N, T, features], got {x}")
        if w.shape != (gh, x.shape[2]) or r.shape != (gh, self.hidden) or bias.shape != (2 * gh,):
            raise TypeError_(f"{self.name}: weights {w}, {r}, {bias} do not fit input {x} and hidden {self.hidden}")
        return x.with_shape((x.shape[0], x.shape[1], self.hidden)), x.with_shape((x.shape[0], self.hidden))

    def cell(self, b: Builder, states: list[Value], xp: Value, r: Value, rb: Value) -> list[Value]:
        raise NotImplementedError

    def decompose(self, b, x, w, r, bias):
        gh, n, dt = self.gates * self.hidden, x.type.shape[0], x.type.dtype
        wb = b.emit(Slice(0, 0, gh), bias)
        rb = b.emit(Slice(0, gh, 2 * gh), bias)
        xp = E.add(b, E.matmul(b, x, w, transpose_b=True), wb)  # every step's input projection at once
        state_t = TensorType(dt, (n, self.hidden))
        body = Graph(f"{self.name}_cell")
        states = [body.add_input(state_t, name, "input") for name in ("h", "c")[: self.states]]
        xp_t = body.add_input(TensorType(dt, (n, gh)), "xp", "input")
        r_in = body.add_input(r.type, "R", "input")
        rb_in = body.add_input(rb.type, "Rb", "input")
        inner = Builder(body, b.span)
        new = self.cell(inner, states, xp_t, r_in, rb_in)
        body.outputs = {f"{s.name}_next": v for s, v in zip(states, new, strict=True)}
        body.outputs["y"] = new[0]
        zeros = [E.broadcast_to(b, E.like(b, 0.0, x), state_t.shape) for _ in states]
        results = b.emit(Scan(body, num_carries=self.states, num_xs=1, reverse=self.reverse), *zeros, xp, r, rb)
        return results[self.states], results[0]  # the sequence of states, the last state

    def gates_of(self, b: Builder, z: Value) -> tuple[Value, ...]:
        """[N, gates*H] -> one [N, H] per gate."""
        return b.emit(Split(1, (self.hidden,) * self.gates), z)


@dataclass(frozen=True)
class RNN(Recurrent):
    """h_t = tanh(x_t W^T + h_{t-1} R^T + Wb + Rb)."""

    name: ClassVar[str] = "rnn"

    def cell(self, b, states, xp, r, rb):
        (h,) = states
        return [b.emit(Tanh(), E.add(b, E.add(b, xp, E.matmul(b, h, r, transpose_b=True)), rb))]


@dataclass(frozen=True)
class LSTM(Recurrent):
    """i, o, f = sigmoid(...), c~ = tanh(...); c_t = f c_{t-1} + i c~; h_t = o tanh(c_t)."""

    name: ClassVar[str] = "lstm"
    gates: ClassVar[int] = 4
    states: ClassVar[int] = 2

    def cell(self, b, states, xp, r, rb):
        h, c = states
        z = E.add(b, E.add(b, xp, E.matmul(b, h, r, transpose_b=True)), rb)
        zi, zo, zf, zc = _named(self.gates_of(b, z), "zi", "zo", "zf", "zc")
        i, o, f = _named([b.emit(Sigmoid(), g) for g in (zi, zo, zf)], "i", "o", "f")
        (candidate,) = _named([b.emit(Tanh(), zc)], "g")
        (c_next,) = _named([E.add(b, E.mul(b, f, c), E.mul(b, i, candidate))], "c_next")
        (h_next,) = _named([E.mul(b, o, b.emit(Tanh(), c_next))], "h_next")
        return [h_next, c_next]


@dataclass(frozen=True)
class GRU(Recurrent):
    """z, r = sigmoid(...); h~ = tanh(x W_h^T + r (h R_h^T + Rb_h) + Wb_h) (linear_before_reset, as PyTorch and
    Keras), or tanh(x W_h^T + (r h) R_h^T + Rb_h + Wb_h) (ONNX's default); h_t = (1 - z) h~ + z h_{t-1}."""

    name: ClassVar[str] = "gru"
    gates: ClassVar[int] = 3
    linear_before_reset: bool = True

    def cell(self, b, states, xp, r, rb):
        (h,) = states
        hr = E.add(b, E.matmul(b, h, r, transpose_b=True), rb)  # [N, 3H]: h R^T + Rb for every gate
        xz, xr, xh = self.gates_of(b, xp)
        hz, hrr, hh = self.gates_of(b, hr)
        z, reset = _named([b.emit(Sigmoid(), E.add(b, xz, hz)), b.emit(Sigmoid(), E.add(b, xr, hrr))], "z", "r")
        if self.linear_before_reset:
            recur = E.mul(b, reset, hh)
        else:
            r_h = b.emit(Slice(0, 2 * self.hidden, 3 * self.hidden), r)
            rb_h = b.emit(Slice(0, 2 * self.hidden, 3 * self.hidden), rb)
            recur = E.add(b, E.matmul(b, E.mul(b, reset, h), r_h, transpose_b=True), rb_h)
        (candidate,) = _named([b.emit(Tanh(), E.add(b, xh, recur))], "h_candidate")
        one = E.like(b, 1.0, z)
        return _named([E.add(b, E.mul(b, E.sub(b, one, z), candidate), E.mul(b, z, h))], "h_next")


def _named(values, *names: str) -> list[Value]:
    """The gate values named as the formulas above name them, so generated code reads `i = _sigmoid(zi)`."""
    for v, name in zip(values, names, strict=True):
        v.name = name
    return list(values)
