"""Lint: likely mistakes in a lowered model that still compile, reported as located warnings.

Each rule reads the model's graph (ops, shapes, spans) and never changes it, so warnings cannot change the generated
code. The rules:

- a loss given probabilities: `cross_entropy(softmax(z), y)`, `binary_cross_entropy(sigmoid(z), y)`. Losses take
  logits and apply the (log-)softmax or sigmoid themselves, so squashing twice trains badly with no error.
  (`cross_entropy(log_softmax(z), y)` is fine: log-softmax of log-probabilities gives them back.)
- an accidental outer product: an elementwise op whose lower-rank operand is broadcast along a missing leading
  axis against the same symbolic dim it already has, as in `pred - y` with pred [N, 1] and y [N], which makes
  [N, N]. Explicit size-1 axes on both sides ([N, 1] and [1, N]) say the outer product is meant and do not warn.

The IR keeps one span per node (the whole call or operation); the file's AST gives the spans and text of its
operands, so messages point at and quote what the user wrote.
"""

from __future__ import annotations

from collections.abc import Iterator

from bmc import ops
from bmc.diagnostics import BmcWarning, Span
from bmc.frontend.model_ir import ModelIR
from bmc.ir import dims
from bmc.ir.graph import Node, Value
from bmc.ir.types import shape_str
from bmc.syntax import ast

SYMBOLS = {ops.Add: "+", ops.Sub: "-", ops.Mul: "*", ops.Div: "/", ops.Pow: "**", ops.Maximum: "maximum",
           ops.Minimum: "minimum", ops.Where: "where"}
CALLED_AS_OP = ("maximum", "minimum", "where")  # builtins whose arguments are their op's inputs, in order
SQUASHED = {ops.CrossEntropy: (ops.Softmax, "softmax", "log-softmax"),
            ops.BinaryCrossEntropy: (ops.Sigmoid, "sigmoid", "the sigmoid")}

Operands = dict[Span, tuple[str, tuple[Span, ...]]]  # operation span -> (operator or function, operand spans)


def lint(module: ast.Module, *models: ModelIR) -> list[BmcWarning]:
    """The warnings of a model's lowerings (training and inference), each once, in source order."""
    operands = operand_spans(module)
    found: dict[BmcWarning, None] = {}
    for model in models:
        for node in model.graph.nodes:
            for w in (*probabilities_to_loss(node, operands), *outer_product(node, operands)):
                found.setdefault(w, None)
    return sorted(found, key=lambda w: (w.span.line, w.span.column) if w.span else (0, 0))


# ---- a loss given probabilities ------------------------------------------------------------------------------------


def probabilities_to_loss(node: Node, operands: Operands) -> Iterator[BmcWarning]:
    rule = SQUASHED.get(type(node.op))
    if rule is None:
        return
    squash, what, applies = rule
    z = node.inputs[0]
    while z.producer is not None and isinstance(z.producer.op, ops.Reshape):  # a reshape changes no value
        z = z.producer.inputs[0]
    made = z.producer
    if made is None or not isinstance(made.op, squash) or made.span is None:
        return
    loss = node.op.name
    squashed = _text(_operands(operands, made, what)[:1], f"the {what}'s input")
    hint = f"losses take logits: pass {squashed} itself ({loss} applies {applies})"
    if _inside(made.span, node.span):  # written inline: point at it
        yield BmcWarning(f"{loss} takes logits, but this is the output of {what}", made.span, (hint,))
        return
    argument = (*_operands(operands, node, loss), node.span)[0]
    name = _text((argument,), "its first argument")
    yield BmcWarning(f"{loss} takes logits, but {name} is the output of {what}", argument,
                     (f"{name} is {made.span.text()} ({made.span})", hint))


# ---- an accidental outer product -----------------------------------------------------------------------------------


def outer_product(node: Node, operands: Operands) -> Iterator[BmcWarning]:
    symbol = node.op.op if isinstance(node.op, ops.Compare) else SYMBOLS.get(type(node.op))
    if symbol is None:
        return
    spans = _operands(operands, node, symbol)
    fallbacks = (("the left operand", "the right operand") if len(node.inputs) == 2 else
                 ("the condition", "the first value", "the second value"))
    names = [_text((s,), f) for s, f in zip(spans, fallbacks, strict=True)] if len(spans) == len(fallbacks) \
        else list(fallbacks)
    pairs = [(i, j) for i in range(len(node.inputs)) for j in range(i + 1, len(node.inputs))]
    if isinstance(node.op, ops.Where):
        pairs = [(1, 2)]  # the condition selects; x and y are the values combined
    for i, j in pairs:
        a, b = node.inputs[i], node.inputs[j]
        hi, lo = (i, j) if a.type.rank > b.type.rank else (j, i)
        dim = _paired_with_itself(node.inputs[hi].type.shape, node.inputs[lo].type.shape)
        if dim is not None:
            yield _outer_warning(node, symbol, dim, (a, names[i]), (b, names[j]), (node.inputs[hi], names[hi]),
                                 (node.inputs[lo], names[lo]))
            return


def _paired_with_itself(hi: tuple, lo: tuple) -> str | None:
    """A symbolic dim that `hi` has on an axis `lo` lacks (lo is broadcast there) while `lo` has it where `hi` has a
    size-1 axis: after broadcasting it appears twice, once from each operand ([N, 1] and [N] make [N, N])."""
    offset = len(hi) - len(lo)
    if offset <= 0:
        return None
    missing = {d for d in hi[:offset] if isinstance(d, str)}
    for j, d in enumerate(lo):
        if hi[offset + j] == 1 and d in missing:
            return d
    return None


def _outer_warning(node: Node, symbol: str, dim: str, *named: tuple[Value, str]) -> BmcWarning:
    (a, first), (b, second), (hi, high), (lo, low) = named
    out = node.outputs[0].type.shape
    message = (f"this '{symbol}' broadcasts {first} {shape_str(a.type.shape)} and {second} "
               f"{shape_str(b.type.shape)} to {shape_str(out)}, an outer product over {dim}")
    if dims.product(hi.type.shape) == dims.product(lo.type.shape):
        fix = (f"reshape {low} to {shape_str(hi.type.shape)} (or {high} to {shape_str(lo.type.shape)}) so the "
               "shapes match")
    else:
        fix = f"make the shapes of {first} and {second} match so the op is elementwise"
    explicit = shape_str((1,) * (hi.type.rank - lo.type.rank) + lo.type.shape)
    return BmcWarning(message, node.span,
                      (fix, f"for an intended outer product, give {low} its size-1 axes explicitly: {explicit}"))


# ---- where the operands are in the source --------------------------------------------------------------------------


def operand_spans(module: ast.Module) -> Operands:
    """By the span of each operation in the file (`a - b`, `maximum(a, b)`, any call), the spans of its operands
    (a call's arguments)."""
    found: Operands = {}

    def visit(e) -> None:
        if isinstance(e, ast.BinOp):
            found[e.span] = (e.op, (e.lhs.span, e.rhs.span))
            children = (e.lhs, e.rhs)
        elif isinstance(e, ast.Call):
            children = (*e.args, *(k.value for k in e.kwargs))
            found[e.span] = (e.func, tuple(c.span for c in children))
        elif isinstance(e, ast.Neg):
            children = (e.operand,)
        elif isinstance(e, ast.ListExpr):
            children = e.items
        elif isinstance(e, ast.Subscript):
            children = e.children
        else:
            children = ()
        for child in children:
            visit(child)

    for item in module.items:
        for stmt in getattr(item, "body", ()):
            visit(getattr(stmt, "value", None))
    return found


def _operands(operands: Operands, node: Node, written: str | None) -> tuple[Span, ...]:
    """The operand spans of the source operation `node` came from, if it was written as `written` (an operator or a
    function name); nodes a builtin emits internally share its call's span and are not what the user wrote."""
    kind, spans = operands.get(node.span, ("", ()))
    return spans if kind == written else ()


def _text(spans: tuple[Span, ...], fallback: str) -> str:
    """The quoted source text of an operand, when it is on one line."""
    if spans and spans[0].line == spans[0].end_line:
        return f"'{spans[0].text()}'"
    return fallback


def _inside(inner: Span, outer: Span | None) -> bool:
    return (outer is not None and inner.source == outer.source
            and (outer.line, outer.column) <= (inner.line, inner.column)
            and (inner.end_line, inner.end_column) <= (outer.end_line, outer.end_column))
