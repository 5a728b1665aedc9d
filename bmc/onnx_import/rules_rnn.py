"""Import rules for ONNX's LSTM, GRU and RNN: bmc's recurrent layers are ONNX's formulation (gate order, weight
layouts, the two biases), batch-first. The time-major sequences ONNX takes and gives are transposes, which compose
with the transposes exporters put around the node, so `lstm(x, 64, return_sequences = true)` is what remains."""

from __future__ import annotations

import numpy as np

from bmc.onnx_import import expr as X
from bmc.onnx_import.context import Context, Unsupported, attrs, rule
from bmc.onnx_import.rules_shape import reshape, transpose
from bmc.onnx_import.values import Filled, Known, Tensor

DEFAULTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}


@rule("LSTM", "GRU", "RNN")
def _recurrent(ctx: Context, node, ins):
    op, a = node.op_type, attrs(node)
    func = op.lower()
    x = ins[0]
    if not isinstance(x, Tensor) or x.rank != 3:
        raise Unsupported("its input is not a computed sequence [T, N, features]")
    direction = a.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    dirs = 2 if direction == "bidirectional" else 1
    acts = [s.decode() if isinstance(s, bytes) else s for s in a.get("activations", DEFAULTS[op] * dirs)]
    if acts != DEFAULTS[op] * dirs or a.get("clip") is not None or a.get("input_forget", 0):
        raise Unsupported("it sets activations, clip or input_forget, which bmc's layers do not take")
    layout = a.get("layout", 0)
    hidden = int(a["hidden_size"])
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
    for i, what in ((4, "sequence_lens"), (5, "initial_h"), (6, "initial_c"), (7, "peepholes")):
        if len(ins) > i and ins[i] is not None:
            v = ins[i]
            zero = (isinstance(v, Known) and not v.symbolic and not np.any(v.value)) or \
                (isinstance(v, Filled) and not v.fill)  # PyTorch's zero states of a dynamic batch
            if not zero or what == "sequence_lens":
                raise Unsupported(f"its {what} input is given; bmc's layers start from zero states over whole "
                                  "sequences")
    w, r = ctx.known(ins[1], "W"), ctx.known(ins[2], "R")
    b = ctx.known(ins[3], "B") if len(ins) > 3 and ins[3] is not None else np.zeros((dirs, 2 * gates * hidden),
                                                                                      w.dtype)
    if w.dtype.kind != "f" or w.shape[0] != dirs:
        raise Unsupported("its weights are not float initializers with one slice per direction")
    seq = x if layout else transpose(ctx, x, [1, 0, 2], [x])  # batch-first [N, T, F]
    n, t = seq.shape[0], seq.shape[1]
    used = [bool(o) and (ctx.uses.get(o, 0) > 0 or o in ctx.outputs) for o in node.output]
    used += [False] * (3 - len(used))  # Y, Y_h, Y_c: trailing outputs may be left out
    if len(used) > 2 and used[2]:
        raise Unsupported("its final cell state Y_c is used; bmc's lstm gives the hidden states")
    names = [""] if dirs == 1 else [".forward", ".backward"]
    arrays = {}
    for k, suffix in enumerate(names):
        arrays[f"{suffix.lstrip('.') + '.' if suffix else ''}W"] = w[k]
        arrays[f"{suffix.lstrip('.') + '.' if suffix else ''}R"] = r[k]
        arrays[f"{suffix.lstrip('.') + '.' if suffix else ''}B"] = b[k]
    sequences = used[0] or dirs == 2  # Y, or both directions' last states: every step
    kw = [("return_sequences", X.Lit(True))] if sequences else []
    if dirs == 2:
        kw.append(("bidirectional", X.Lit(True)))
    if direction == "reverse":
        kw.append(("reverse", X.Lit(True)))
    if op == "GRU" and not a.get("linear_before_reset", 0):
        kw.append(("reset_after", X.Lit(False)))
    e = X.Call(func, (ctx.tensor(seq), X.lit(hidden)), tuple(kw), X.Owned(func, arrays))
    outs: list = [None] * 3
    if not sequences:  # only the last hidden state: [N, H] -> Y_h [1, N, H] ([N, 1, H] batch-first)
        last = ctx.result(e, x.dtype, (n, hidden), out=1, inputs=ins)
        outs[1] = reshape(ctx, last, (n, 1, hidden) if layout else (1, n, hidden), [last])
        return outs
    ys = ctx.result(e, x.dtype, (n, t, dirs * hidden), out=0, inputs=ins)
    if used[1]:  # Y_h [dirs, N, H]: the forward direction's last step, the backward direction's first
        if used[0]:
            ctx.materialize(ys)
        outs[1] = _last(ctx, ys, n, hidden, dirs, layout, direction == "reverse")
    if used[0] and layout:  # Y [N, T, dirs, H]
        outs[0] = reshape(ctx, ys, (n, t, dirs, hidden), [ys])
    elif used[0]:  # Y [T, dirs, N, H]
        if dirs == 1:
            outs[0] = reshape(ctx, transpose(ctx, ys, [1, 0, 2], [ys]), (t, 1, n, hidden), [ys])
        else:
            split = reshape(ctx, ys, (n, t, 2, hidden), [ys])
            outs[0] = transpose(ctx, split, [1, 2, 0, 3], [split])
    return outs


def _last(ctx: Context, ys: Tensor, n, hidden: int, dirs: int, layout: int, reverse: bool) -> Tensor:
    """Y_h from the sequence [N, T, dirs * H]: ys[:, -1] forward, ys[:, 0, H:] backward, as [dirs, N, H] (or
    batch-first, layout 1: [N, dirs, H])."""
    seq = ctx.tensor(ys, twice=dirs == 2)
    steps = [X.Sub(seq, (X.Slice(), 0 if reverse else -1))] if dirs == 1 else [
        X.Sub(seq, (X.Slice(), -1, X.Slice(None, hidden))), X.Sub(seq, (X.Slice(), 0, X.Slice(hidden, None)))]
    one = (n, 1, hidden) if layout else (1, n, hidden)
    parts = [X.Call("reshape", (s, X.shape(one))) for s in steps]
    e = parts[0] if dirs == 1 else X.Call("concat", (X.Items(tuple(parts)),), (("axis", X.lit(1 if layout else 0)),))
    return ctx.result(e, ys.dtype, (n, dirs, hidden) if layout else (dirs, n, hidden), out=1, inputs=[ys])
