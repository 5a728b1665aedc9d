"""The gradient of a scan: another scan, run backwards, whose body recomputes one forward step and applies its VJP.

Autodiff calls `vjp` for every scan node, with its own `backprop` (which differentiates the body). The steps:

1. `_reverse_body`: a body taking (d carries, d constants so far | x_t, carry entering t, d y_t, d carry_t |
   constants) that inlines one forward step and backpropagates through it.
2. `_outputs`: what each reverse step returns: the carries' gradients, each sequence input's gradient, and each
   constant's gradient term. A term that is `a^T b` (a weight) or a column sum (a bias) leaves the scan as
   sequences, so one large product after the scan replaces a small product and an accumulation per step; other
   terms accumulate in a carry.
3. `_save_residuals`: the step values the backward part reads (gate activations, ...) are saved by the forward
   scan as extra sequences instead of being recomputed; the forward scan is replaced by one that returns them.
4. `_emit`: the optimized reverse body as a reversed Scan, and each input's gradient from its results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bmc.ir.graph import Builder, Graph, Node, Value
from bmc.ops import emit as E
from bmc.ops.elementwise import Const
from bmc.ops.linalg import MatMul
from bmc.ops.reduce import Sum
from bmc.ops.scan import Scan, inline, step_type
from bmc.ops.shape import Reshape
from bmc.passes.pipeline import optimize

Backprop = Callable[[Builder, list[Node], dict[Value, Value], set[Value]], dict[Value, Value]]


def vjp(b: Builder, node: Node, grads: tuple[Value | None, ...], backprop: Backprop) -> tuple[Value | None, ...]:
    """The gradients of the scan `node`'s inputs, given its outputs' (None where nothing flows)."""
    g = _ScanGradient(b, node, grads)
    g.reverse_body(backprop)
    g.outputs()
    g.save_residuals()
    return g.emit()


@dataclass
class _ScanGradient:
    b: Builder
    node: Node
    grads: tuple[Value | None, ...]
    rb: Graph = field(init=False)
    inner: Builder = field(init=False)
    local: dict[Value, Value] = field(init=False)

    def __post_init__(self) -> None:
        op: Scan = self.node.op
        self.op = op
        k, m, ny = op.num_carries, op.num_xs, op.num_ys
        ins, outs = self.node.inputs, self.node.outputs
        self.carries0, self.xs, self.consts = ins[:k], ins[k:k + m], ins[k + m:]
        self.finals, self.ys, self.history = outs[:k], outs[k:k + ny], outs[k + ny:]
        self.g_finals, self.g_ys, self.g_history = self.grads[:k], self.grads[k:k + ny], self.grads[k + ny:]
        self.diff_consts = [i for i, v in enumerate(self.consts) if v.type.is_float]
        self.diff_xs = [i for i, v in enumerate(self.xs) if v.type.is_float]
        self.dy_used = [i for i, g in enumerate(self.g_ys) if g is not None]
        self.dh_used = [i for i, g in enumerate(self.g_history) if g is not None]

    # ---- 1. the reverse body: one forward step, inlined, and its backpropagation ----------------------------------

    def reverse_body(self, backprop: Backprop) -> None:
        op, k = self.op, self.op.num_carries
        rb = self.rb = Graph(f"{op.body.name}_grad")
        self.d_carry = [rb.add_input(v.type, f"d_{v.name or 'carry'}", "input") for v in self.carries0]
        self.d_const_acc = [rb.add_input(self.consts[i].type, f"d_{self.consts[i].name or 'const'}", "input")
                            for i in self.diff_consts]
        self.x_t = [rb.add_input(step_type(v.type), v.name or "x", "input") for v in self.xs]
        self.carry_in = [rb.add_input(step_type(h.type), f"{h.name or 'carry'}_in", "input") for h in self.history]
        self.dy_t = [rb.add_input(step_type(self.ys[i].type), f"d_{self.ys[i].name or 'y'}", "input")
                     for i in self.dy_used]
        self.dh_t = [rb.add_input(step_type(self.history[i].type), f"d_{self.history[i].name or 'carry'}_in",
                                  "input") for i in self.dh_used]
        self.const_in = [rb.add_input(v.type, v.name or "const", "input") for v in self.consts]
        inner = self.inner = Builder(rb, self.node.span)
        self.env: dict[Value, Value] = {}
        outs = inline(inner, op.body, [*self.carry_in, *self.x_t, *self.const_in], self.env)
        self.forward_end = len(rb.nodes)
        seeds: dict[Value, Value] = dict(zip(outs[:k], self.d_carry, strict=True))
        for i, g in zip(self.dy_used, self.dy_t, strict=True):
            o = outs[k + i]
            seeds[o] = E.add(inner, seeds[o], g) if o in seeds else g
        sources = {*self.carry_in, *(self.x_t[i] for i in self.diff_xs), *(self.const_in[i] for i in self.diff_consts)}
        self.local = backprop(inner, list(rb.nodes), seeds, sources)

    def _grad_or_zero(self, v: Value) -> Value:
        return self.local[v] if v in self.local else E.broadcast_to(self.inner, E.like(self.inner, 0.0, v),
                                                                    v.type.shape)

    # ---- 2. what each reverse step returns ----------------------------------------------------------------------

    def outputs(self) -> None:
        rb, inner = self.rb, self.inner
        rb.outputs = {f"carry{j}": self._grad_or_zero(v) for j, v in enumerate(self.carry_in)}
        for j, i in enumerate(self.dh_used):  # the history output reads the carry entering step t directly
            rb.outputs[f"carry{i}"] = E.add(inner, rb.outputs[f"carry{i}"], self.dh_t[j])
        self.hoisted = {i: _hoistable(self._grad_or_zero(self.const_in[i])) for i in self.diff_consts}
        self.carried = [i for i in self.diff_consts if self.hoisted[i] is None]
        for j, i in enumerate(self.carried):
            acc = self.d_const_acc[self.diff_consts.index(i)]
            rb.outputs[f"const{j}"] = E.add(inner, acc, self._grad_or_zero(self.const_in[i]))
        for j, i in enumerate(self.diff_xs):
            rb.outputs[f"dx{j}"] = self._grad_or_zero(self.x_t[i])
        # a term that is already a sequence outside (a carry's history, a step's input gradient) is not stacked again
        self.outside: dict[Value, tuple[str, int | None]] = {v: ("history", j) for j, v in enumerate(self.carry_in)}
        self.outside.update({rb.outputs[f"dx{j}"]: ("dx", j) for j in range(len(self.diff_xs))})
        for i in self.diff_consts:
            for n, part in enumerate(self.hoisted[i] or ()):
                if part not in self.outside:
                    rb.outputs[f"term{i}_{n}"] = part
                    self.outside[part] = ("term", None)
        rb.inputs = [v for v in rb.inputs
                     if v not in self.d_const_acc or self.diff_consts[self.d_const_acc.index(v)] in self.carried]

    # ---- 3. residuals: forward values the backward part reads, saved by the forward scan ----------------------------

    def save_residuals(self) -> None:
        k, ny = self.op.num_carries, self.op.num_ys
        residuals = _save_residuals(self.rb, self.forward_end, self.env)
        self.saved: tuple[Value, ...] = ()
        if not residuals:
            return
        # the saved sequences are read as xs: they go after the other sequences, before the constants
        saved_inputs = [r for _, r in residuals]
        rest = [v for v in self.rb.inputs if v not in saved_inputs]
        at = rest.index(self.const_in[0]) if self.const_in else len(rest)
        self.rb.inputs = rest[:at] + saved_inputs + rest[at:]
        self.node, self.history = _forward_with_residuals(self.b, self.node, [f for f, _ in residuals])
        self.saved = self.node.outputs[k + ny:k + ny + len(residuals)]

    # ---- 4. the reverse scan, and each input's gradient from its results --------------------------------------------

    def emit(self) -> tuple[Value | None, ...]:
        b, op = self.b, self.op
        k, m, c = op.num_carries, op.num_xs, len(self.consts)
        rb = optimize(self.rb)
        init = [g if g is not None else E.broadcast_to(b, E.like(b, 0.0, f), f.type.shape)
                for g, f in zip(self.g_finals, self.finals, strict=True)]
        init += [E.broadcast_to(b, E.like(b, 0.0, self.consts[i]), self.consts[i].type.shape) for i in self.carried]
        seqs = [*self.xs, *self.history, *(self.g_ys[i] for i in self.dy_used),
                *(self.g_history[i] for i in self.dh_used), *self.saved]
        seqs, step_consts = _drop_unread(rb, len(init), seqs, list(self.consts))
        results = b.emit(Scan(rb, num_carries=len(init), num_xs=len(seqs), reverse=not op.reverse),
                         *init, *seqs, *step_consts)
        d_init = results[:k]
        d_carried = dict(zip(self.carried, results[k:k + len(self.carried)], strict=True))
        pos = k + len(self.carried)
        d_xs = results[pos:pos + len(self.diff_xs)]
        stacked = iter(results[pos + len(self.diff_xs):])
        sequences: dict[Value, Value] = {}

        def sequence(part: Value) -> Value:
            where, j = self.outside[part]
            if where == "history":
                return self.history[j]
            if where == "dx":
                return d_xs[j]
            if part not in sequences:
                sequences[part] = next(stacked)
            return sequences[part]

        out: list[Value | None] = [*d_init, *([None] * m), *([None] * c)]
        for j, i in enumerate(self.diff_xs):
            out[k + i] = d_xs[j]
        for i in self.diff_consts:
            if i in d_carried:
                out[k + m + i] = d_carried[i]
            elif len(self.hoisted[i]) == 2:  # sum_t a_t^T b_t over every step and row: one [N*T, P]^T [N*T, Q]
                a, bb = (sequence(part) for part in self.hoisted[i])
                flat_a = E.reshape(b, a, (-1, a.type.shape[-1]))
                flat_b = E.reshape(b, bb, (-1, bb.type.shape[-1]))
                out[k + m + i] = E.matmul(b, flat_a, flat_b, transpose_a=True)
            else:  # sum_t colsum(g_t)
                out[k + m + i] = E.sum_(b, sequence(self.hoisted[i][0]), (0, 1))
        return tuple(out)


def _hoistable(g: Value) -> tuple[Value, ...] | None:
    """(a, b) when g = a^T b of two [N, .] step values, (v,) when g = the column sum of a [N, .] step value."""
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


def _forward_with_residuals(b: Builder, node: Node, values: list[Value]) -> tuple[Node, tuple[Value, ...]]:
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
