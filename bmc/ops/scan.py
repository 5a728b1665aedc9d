"""Scan: a loop over a sequence axis whose body is a graph; recurrences of any length compile to one graph.

    carries_T, ys = scan(body, carries_0, xs, consts)

`body` takes (carries..., one step of each xs..., consts...) and returns (new carries..., one step of each ys...).
Sequences are batch-first: xs are [N, T, ...], the body sees [N, ...], and ys are stacked back to [N, T, ...].
The scan also returns the carries entering each step, stacked (`history`), which its gradient needs; a forward
scan whose history nobody uses costs nothing extra on backends that skip unused outputs.

The gradient is another scan, run backwards, whose body recomputes one forward step and applies its VJP:
ordinary IR all the way down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from bmc.ir.graph import Builder, Graph, Value
from bmc.ir.types import TensorType, TypeError_
from bmc.ops import emit as E
from bmc.ops.base import Op


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

    def vjp(self, b, node, grads):
        return scan_vjp(b, node, grads)


def inline(b: Builder, body: Graph, inputs: list[Value]) -> list[Value]:
    """Copy a body graph's nodes into `b`, reading `inputs`; return its outputs."""
    env = dict(zip(body.inputs, inputs, strict=True))
    for node in body.nodes:
        outs = b.emit(node.op, *(env[v] for v in node.inputs), span=node.span)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for old, new in zip(node.outputs, outs, strict=True):
            new.name = old.name
            env[old] = new
    return [env[v] for v in body.outputs.values()]


def scan_vjp(b: Builder, node, grads):
    from bmc.passes.autodiff import backprop

    op: Scan = node.op
    k, m, c = op.num_carries, op.num_xs, len(node.inputs) - op.num_carries - op.num_xs
    carries0, xs, consts = node.inputs[:k], node.inputs[k:k + m], node.inputs[k + m:]
    finals, ys, history = node.outputs[:k], node.outputs[k:k + op.num_ys], node.outputs[k + op.num_ys:]
    g_finals, g_ys, g_history = grads[:k], grads[k:k + op.num_ys], grads[k + op.num_ys:]
    diff_consts = [i for i, v in enumerate(consts) if v.type.is_float]
    diff_xs = [i for i, v in enumerate(xs) if v.type.is_float]

    # the reverse body: (d carries, d consts so far | x_t, carry_in_t, d y_t | consts)
    rb = Graph(f"{op.body.name}_grad")
    d_carry = [rb.add_input(v.type, f"d_{v.name or 'carry'}", "input") for v in carries0]
    d_const_acc = [rb.add_input(consts[i].type, f"d_{consts[i].name or 'const'}", "input") for i in diff_consts]
    x_t = [rb.add_input(step_type(v.type), v.name or "x", "input") for v in xs]
    carry_in = [rb.add_input(step_type(h.type), f"{h.name or 'carry'}_in", "input") for h in history]
    dy_used = [i for i, g in enumerate(g_ys) if g is not None]
    dy_t = [rb.add_input(step_type(ys[i].type), f"d_{ys[i].name or 'y'}", "input") for i in dy_used]
    dh_used = [i for i, g in enumerate(g_history) if g is not None]
    dh_t = [rb.add_input(step_type(history[i].type), f"d_{history[i].name or 'carry'}_in", "input") for i in dh_used]
    const_in = [rb.add_input(v.type, v.name or "const", "input") for v in consts]
    inner = Builder(rb, node.span)
    outs = inline(inner, op.body, [*carry_in, *x_t, *const_in])
    seeds: dict[Value, Value] = {}
    for o, g in zip(outs[:k], d_carry, strict=True):
        seeds[o] = g
    for i, g in zip(dy_used, dy_t, strict=True):
        o = outs[k + i]
        seeds[o] = E.add(inner, seeds[o], g) if o in seeds else g
    sources = {*carry_in, *(x_t[i] for i in diff_xs), *(const_in[i] for i in diff_consts)}
    local = backprop(inner, list(rb.nodes), seeds, sources)

    def grad_or_zero(v: Value) -> Value:
        return local[v] if v in local else E.broadcast_to(inner, E.like(inner, 0.0, v), v.type.shape)

    rb.outputs = {f"carry{j}": grad_or_zero(v) for j, v in enumerate(carry_in)}
    for j, i in enumerate(dh_used):  # the history output reads the carry entering step t directly
        rb.outputs[f"carry{i}"] = E.add(inner, rb.outputs[f"carry{i}"], dh_t[j])
    for j, i in enumerate(diff_consts):
        rb.outputs[f"const{j}"] = E.add(inner, d_const_acc[j], grad_or_zero(const_in[i]))
    for j, i in enumerate(diff_xs):
        rb.outputs[f"dx{j}"] = grad_or_zero(x_t[i])
    from bmc.passes.pipeline import optimize

    rb = optimize(rb)

    init = [g if g is not None else E.broadcast_to(b, E.like(b, 0.0, f), f.type.shape)
            for g, f in zip(g_finals, finals, strict=True)]
    init += [E.broadcast_to(b, E.like(b, 0.0, consts[i]), consts[i].type.shape) for i in diff_consts]
    seqs = [*xs, *history, *(g_ys[i] for i in dy_used), *(g_history[i] for i in dh_used)]
    back = Scan(rb, num_carries=len(init), num_xs=len(seqs), reverse=not op.reverse)
    results = b.emit(back, *init, *seqs, *consts)
    d_init = results[:k]
    d_consts = results[k:k + len(diff_consts)]
    d_xs = results[k + len(diff_consts):k + len(diff_consts) + len(diff_xs)]
    out: list[Value | None] = [*d_init, *([None] * m), *([None] * c)]
    for j, i in enumerate(diff_xs):
        out[k + i] = d_xs[j]
    for j, i in enumerate(diff_consts):
        out[k + m + i] = d_consts[j]
    return tuple(out)
