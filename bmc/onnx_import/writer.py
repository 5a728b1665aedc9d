"""The text of an imported model: a header saying where it came from, the inputs, explicit parameters, one
statement per line with a comment naming the ONNX nodes it came from, and (with a loss) the target and loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from bmc.diagnostics import BmcError
from bmc.onnx_import import expr as X
from bmc.onnx_import.context import Context, Statement
from bmc.onnx_import.names import comment
from bmc.onnx_import.values import Tensor

HEADER = "# Imported by bmc import from "
LOSSES = ("cross_entropy", "binary_cross_entropy", "mse")
COMMENT_WIDTH = 116


def write(ctx: Context, model: onnx.ModelProto, path: Path, name: str, inputs: dict[str, Tensor],
          loss: str | None, params_file: str) -> tuple[str, dict[str, np.ndarray]]:
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p) or "an unnamed producer"
    lines = [
        f"{HEADER}{comment(path.name)} ({comment(producer)}, ONNX opset {ctx.opset}, {len(model.graph.node)} nodes).",
        f"# Its parameters are in {comment(params_file)}: bmc train THIS_FILE --params {comment(params_file)}",
        f"model {name} {{",
    ]
    for t in inputs.values():
        lines.append(f"    input {t.expr.name}: {t.dtype}[{', '.join(X.render(X.dim(d)) for d in t.shape)}]")
    statements = list(ctx.statements)
    extra: list[str] = []
    if loss is not None:
        statements, extra = _loss(ctx, statements, loss)
    params: dict[str, np.ndarray] = {}
    if ctx.declared:
        lines.append("")
        for d in ctx.declared.values():
            init = "~ glorot_uniform" if len(d.shape) == 2 else "= 0"
            lines.append(f"    param {d.name}: {d.dtype}[{', '.join(map(str, d.shape))}] {init}  "
                         f"# {comment(d.onnx)}")
            params[d.name] = d.value
    lines.append("")
    for s in statements:
        text = ", ".join(s.nodes)
        if text:
            for part in _wrap(comment(text)):
                lines.append(f"    # {part}")
        keyword = "output " if s.output else ""
        lines.append(f"    {keyword}{s.name} = {X.render(s.expr)}")
        params.update(s.params)
    lines += extra
    lines.append("}")
    return "\n".join(lines) + "\n", params


def _wrap(text: str) -> list[str]:
    out, line = [], ""
    for word in text.split(", "):
        if line and len(line) + len(word) + 2 > COMMENT_WIDTH:
            out.append(line + ",")
            line = word
        else:
            line = f"{line}, {word}" if line else word
    return [*out, line] if line else out


def _loss(ctx: Context, statements: list[Statement], loss: str) -> tuple[list[Statement], list[str]]:
    """A target and a loss on the model's one output: softmax(logits) trains through its logits."""
    outs = [s for s in statements if s.output]
    if len(outs) != 1:
        raise BmcError(f"--loss needs a model with one output; this one has {len(outs)}")
    out = outs[0]
    pred = X.Ref(out.name)
    if loss in ("cross_entropy", "binary_cross_entropy") and isinstance(out.expr, X.Call) and \
            out.expr.func in ("softmax", "sigmoid") and not out.expr.kwargs:
        logits = ctx.names.identifier("logits")
        inner = Statement(logits, out.expr.args[0], [], params=ctx.name_params(logits, out.expr.args[0]))
        out.expr = X.Call(out.expr.func, (X.Ref(logits),))
        out.params = {}
        statements = [*statements[:statements.index(out)], inner, *statements[statements.index(out):]]
        pred = X.Ref(logits)
    label = ctx.names.identifier("label")
    shape = ctx.shapes.get(out.name, ())
    if loss == "cross_entropy":  # a class per row: [N] for logits [N, C], [N, T] for [N, T, C]
        target = f"    target {label}: i64[{', '.join(X.render(X.dim(d)) for d in shape[:-1])}]"
    else:
        target = f"    target {label}: f32[{', '.join(X.render(X.dim(d)) for d in shape)}]"
    return statements, ["", target, f"    loss = {loss}({X.render(pred)}, {label})"]

