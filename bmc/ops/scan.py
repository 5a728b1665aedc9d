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
    env: dict[Value, Value] = {}
    outs = inline(inner, op.body, [*carry_in, *x_t, *const_in], env)
    forward_end = len(rb.nodes)
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
    # A constant's gradient is a sum over steps. When each step's term is a^T b (a weight) or a column sum (a
    # bias), the steps' a and b leave the scan as sequences and one large product after it replaces a small
    # product and an accumulation per step; other terms accumulate in a carry.
    hoisted = {i: _hoistable(grad_or_zero(const_in[i])) for i in diff_consts}
    carried = [i for i in diff_consts if hoisted[i] is None]
    for j, i in enumerate(carried):
        rb.outputs[f"const{j}"] = E.add(inner, d_const_acc[diff_consts.index(i)], grad_or_zero(const_in[i]))
    for j, i in enumerate(diff_xs):
        rb.outputs[f"dx{j}"] = grad_or_zero(x_t[i])
    # a term that is already a sequence outside (a carry's history, a step's input gradient) is not stacked again
    outside: dict[Value, object] = {v: ("history", j) for j, v in enumerate(carry_in)}
    outside.update({rb.outputs[f"dx{j}"]: ("dx", j) for j in range(len(diff_xs))})
    for i in diff_consts:
        for n, part in enumerate(hoisted[i] or ()):
            if part not in outside:
                rb.outputs[f"term{i}_{n}"] = part
                outside[part] = ("term", None)
    rb.inputs = [v for v in rb.inputs if v not in d_const_acc or diff_consts[d_const_acc.index(v)] in carried]
    # The step values the backward part reads (gate activations, ...) are saved by the forward scan as extra
    # sequences instead of being recomputed here.
    residuals = _save_residuals(rb, forward_end, env)
    if residuals:  # the saved sequences are read as xs: they go after the other sequences, before the constants
        saved_inputs = [r for _, r in residuals]
        rest = [v for v in rb.inputs if v not in saved_inputs]
        at = rest.index(const_in[0]) if const_in else len(rest)
        rb.inputs = rest[:at] + saved_inputs + rest[at:]
        node, history = _forward_with_residuals(b, node, [f for f, _ in residuals])
        saved = node.outputs[k + op.num_ys:k + op.num_ys + len(residuals)]
    else:
        saved = ()
    from bmc.passes.pipeline import optimize

    rb = optimize(rb)

    init = [g if g is not None else E.broadcast_to(b, E.like(b, 0.0, f), f.type.shape)
            for g, f in zip(g_finals, finals, strict=True)]
    init += [E.broadcast_to(b, E.like(b, 0.0, consts[i]), consts[i].type.shape) for i in carried]
    seqs = [*xs, *history, *(g_ys[i] for i in dy_used), *(g_history[i] for i in dh_used), *saved]
    seqs, step_consts = _drop_unread(rb, len(init), seqs, list(consts))
    back = Scan(rb, num_carries=len(init), num_xs=len(seqs), reverse=not op.reverse)
    results = b.emit(back, *init, *seqs, *step_consts)
    d_init = results[:k]
    d_carried = dict(zip(carried, results[k:k + len(carried)], strict=True))
    pos = k + len(carried)
    d_xs = results[pos:pos + len(diff_xs)]
    stacked = iter(results[pos + len(diff_xs):])
    sequences: dict[Value, Value] = {}

    def sequence(part: Value) -> Value:
        where, j = outside[part]
        if where == "history":
            return history[j]
        if where == "dx":
            return d_xs[j]
        if part not in sequences:
            sequences[part] = next(stacked)
        return sequences[part]

    out: list[Value | None] = [*d_init, *([None] * m), *([None] * c)]
    for j, i in enumerate(diff_xs):
        out[k + i] = d_xs[j]
    for i in diff_consts:
        if i in d_carried:
            out[k + m + i] = d_carried[i]
        elif len(hoisted[i]) == 2:  # sum_t a_t^T b_t over every step and row: one product of [N*T, P] and [N*T, Q]
            a, bb = (sequence(part) for part in hoisted[i])
            flat_a = E.reshape(b, a, (-1, a.type.shape[-1]))
            flat_b = E.reshape(b, bb, (-1, bb.type.shape[-1]))
            out[k + m + i] = E.matmul(b, flat_a, flat_b, transpose_a=True)
        else:  # sum_t colsum(g_t)
            g = sequence(hoisted[i][0])
            out[k + m + i] = E.sum_(b, g, (0, 1))
    return tuple(out)


def _hoistable(g: Value) -> tuple[Value, ...] | None:
    """(a, b) when g = a^T b of two [N, .] step values, (v,) when g = the column sum of a [N, .] step value."""
    from bmc.ops.linalg import MatMul
    from bmc.ops.reduce import Sum
    from bmc.ops.shape import Reshape

    node = g.producer
    if node is None:
        return None
    if isinstance(node.op, MatMul) and node.op.transpose_a and not node.op.transpose_b:
        a, bb = node.inputs
        if a.type.rank == 2 and bb.type.rank == 2:
            return a, bb
    if isinstance(node.op, Reshape) and node.inputs[0].producer is not None:
        node = node.inputs[0].producer
    if isinstance(node.op, Sum) and node.op.axes == (0,) and node.inputs[0].type.rank == 2:
        return (node.inputs[0],)
    return None


def _save_residuals(rb: Graph, forward_end: int, env: dict[Value, Value]) -> list[tuple[Value, Value]]:
    """Turn the recomputed forward values that the backward part of a reverse body reads into inputs of that body.
    Returns (forward-body value, new reverse-body input) pairs; the recomputation they replace becomes dead."""
    from bmc.ops.elementwise import Const

    recomputed = {}
    for original, value in env.items():
        producer = value.producer
        if producer is not None and producer in rb.nodes[:forward_end] and not isinstance(producer.op, Const):
            recomputed[value] = original
    backward = rb.nodes[forward_end:]
    read = [v for n in backward for v in n.inputs] + list(rb.outputs.values())
    chosen = [v for v in dict.fromkeys(read) if v in recomputed]
    pairs = []
    for v in chosen:
        saved = rb.add_input(v.type, f"{v.name}_saved" if v.name else f"saved{len(pairs)}", "input")
        pairs.append((recomputed[v], saved))
        for n in backward:
            if v in n.inputs:
                n.inputs = tuple(saved if x is v else x for x in n.inputs)
        rb.outputs = {k: (saved if x is v else x) for k, x in rb.outputs.items()}
    return pairs


def _forward_with_residuals(b: Builder, node, values: list[Value]):
    """Replace the forward scan `node` by one whose body also returns `values` as sequences (placed where `node`
    was, its outputs taking over every use of the old ones); return the new node and its history outputs."""
    op: Scan = node.op
    body = Graph(op.body.name, list(op.body.inputs), dict(op.body.roles), list(op.body.nodes),
                 dict(op.body.outputs), dict(op.body.param_info))
    for j, v in enumerate(values):
        body.outputs[f"saved{j}"] = v
    graph = b.graph
    b.emit(Scan(body, op.num_carries, op.num_xs, op.reverse), *node.inputs, span=node.span)
    new = graph.nodes.pop()
    graph.nodes.insert(graph.nodes.index(node), new)
    k, ny = op.num_carries, op.num_ys
    old_outs = node.outputs
    mapping = dict(zip(old_outs[:k + ny], new.outputs[:k + ny], strict=True))
    mapping.update(zip(old_outs[k + ny:], new.outputs[k + ny + len(values):], strict=True))
    for o, n in mapping.items():
        n.name = o.name
    for n in graph.nodes:
        if any(v in mapping for v in n.inputs):
            n.inputs = tuple(mapping.get(v, v) for v in n.inputs)
    graph.outputs = {key: mapping.get(v, v) for key, v in graph.outputs.items()}
    graph.nodes.remove(node)  # nothing reads it any more
    return new, new.outputs[k + ny + len(values):]


def _drop_unread(rb: Graph, carries: int, seqs: list[Value], consts: list[Value]) -> tuple[list, list]:
    """Remove the sequence and constant inputs a (reverse) body no longer reads, and the values fed to them."""
    read = {v for n in rb.nodes for v in n.inputs} | set(rb.outputs.values())
    inputs = rb.inputs
    keep_seqs = [i for i in range(len(seqs)) if inputs[carries + i] in read]
    keep_consts = [i for i in range(len(consts)) if inputs[carries + len(seqs) + i] in read]
    if not keep_seqs:  # a scan needs one sequence to know its length
        keep_seqs = [0]
    rb.inputs = (inputs[:carries] + [inputs[carries + i] for i in keep_seqs]
                 + [inputs[carries + len(seqs) + i] for i in keep_consts])
    return [seqs[i] for i in keep_seqs], [consts[i] for i in keep_consts]
