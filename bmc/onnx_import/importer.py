"""`bmc import`: an ONNX model as a `.bm` model and its parameters.

The graph is walked once, in its (topological) node order. A node whose inputs are all known at import is folded
(fold.py); any other is written by its import rule (rules_*.py) as an expression over the language's functions,
layer calls owning the initializers they read. Every node that cannot be written exactly is collected, and the
import fails with one error naming all of them: never a partial model. The text is finally compiled by bmc itself,
and its parameter names and shapes must be the ones the import gives values for."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from bmc.diagnostics import BmcError
from bmc.onnx_import import expr as X
from bmc.onnx_import import patterns, reader, rules_math, rules_nn, rules_rnn, rules_shape  # noqa: F401 - they register rules
from bmc.onnx_import.context import RULES, Context, Statement, Unsupported
from bmc.onnx_import.fold import fold
from bmc.onnx_import.names import Names
from bmc.onnx_import.values import Known, Tensor
from bmc.onnx_import.writer import LOSSES, write

NOT_FOLDED = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}


@dataclass
class Problem:
    node: str
    op_type: str
    domain: str
    version: int
    reason: str

    def __str__(self) -> str:
        return f"node '{self.node}' ({self.op_type}, {self.domain or 'ai.onnx'} opset {self.version}): {self.reason}"


@dataclass
class Imported:
    """An imported model: its `.bm` source and the parameter values, by the names the compiler gives them."""

    source: str
    params: dict[str, np.ndarray]
    name: str
    nodes: int
    statements: int
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def save(self, bm_path: str | Path, params_path: str | Path | None = None) -> tuple[Path, Path]:
        from bmc.onnx_import.files import save

        return save(self, Path(bm_path), None if params_path is None else Path(params_path))


def import_onnx(path: str | Path, *, name: str | None = None, loss: str | None = None,
                params_file: str = "params.npz") -> Imported:
    """Import the ONNX model at `path`. `loss` (cross_entropy, binary_cross_entropy or mse) adds a target and a
    loss on the model's output, so it trains as it is; `params_file` is what the header tells `--params` to read."""
    if loss is not None and loss not in LOSSES:
        raise BmcError(f"--loss must be one of {', '.join(LOSSES)}, not '{loss}'")
    path = Path(path)
    model = reader.read(path)
    graph, opset = model.graph, reader.opset(model)
    names = Names()
    values: dict[str, Tensor | Known] = dict(reader.initializers(graph))
    graph_inputs, problems = reader.inputs(graph, names, set(values))
    if problems:
        raise BmcError(f"{path}: the model's inputs cannot be imported", notes=tuple(problems))
    values.update(graph_inputs)
    outputs = {o.name for o in graph.output}
    nodes = patterns.rewrite(graph, opset)
    uses: dict[str, int] = {}
    for node in nodes:
        for i in node.input:
            if i:
                uses[i] = uses.get(i, 0) + 1
    ctx = Context(uses, outputs, opset, names)
    found: list[Problem] = []
    poisoned: set[str] = set()
    for node in nodes:
        version = opset if node.domain in ("", "ai.onnx") else _version(model, node.domain)
        if any(i in poisoned for i in node.input if i):
            poisoned.update(node.output)
            continue
        missing = [i for i in node.input if i and i not in values]
        try:
            if node.domain not in ("", "ai.onnx"):
                raise Unsupported(f"it is in the domain {node.domain}; bmc imports standard ONNX (ai.onnx) ops")
            if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
                raise Unsupported("it has a subgraph (control flow); the language has no If, Loop or Scan")
            if missing:
                raise Unsupported(f"its inputs {missing} are not computed before it")
            ins = [values[i] if i else None for i in node.input]
            ctx.node = node
            if _folds(node, ins):
                outs = _rule(node)(ctx, node, ins) if node.op_type == "Constant" else fold(node, ins, opset)
            else:
                outs = _rule(node)(ctx, node, ins)
        except Unsupported as e:
            ctx.created = []
            found.append(Problem(node.name or node.output[0], node.op_type, node.domain, version, str(e)))
            poisoned.update(node.output)
            continue
        ctx.finish(node, outs)
        for o, v in zip(node.output, outs, strict=False):
            if o and v is not None:
                values[o] = v
    for o in graph.output:
        v = values.get(o.name)
        if o.name in poisoned:
            continue
        if v is None:
            found.append(Problem(o.name, "output", "", opset, "the import does not compute this output (an index or "
                                 "statistics output of its node, which bmc's layer does not give)"))
        elif not isinstance(v, Tensor):
            found.append(Problem(o.name, "output", "", opset, "the output is a constant: nothing computes it"))
    if found:
        shown = [str(p) for p in found[:200]]
        if len(found) > 200:
            shown.append(f"... and {len(found) - 200} more")
        kinds = sorted({p.op_type for p in found})
        raise BmcError(f"{path}: {len(found)} ONNX node{'s' if len(found) != 1 else ''} cannot be imported "
                       f"({', '.join(kinds)}); nothing was written", notes=tuple(shown))
    for o in graph.output:
        ctx.node = None
        t = values[o.name]
        _output(ctx, t, o.name)
    model_name = names.identifier(name or path.stem, "model", "imported")
    source, params = write(ctx, model, path, model_name, graph_inputs, loss, params_file)
    imported = Imported(source, params, model_name, len(graph.node), len(ctx.statements),
                        [t.expr.name for t in graph_inputs.values()], [o.name for o in graph.output])
    _verify(imported, path)
    return imported


def _verify(imported: Imported, path: Path) -> None:
    """The written model must compile, with exactly the parameters (names and shapes) the import has values for;
    anything else is a bug of the importer, reported as one rather than written."""
    from bmc.api import compile_string

    bug = f"bmc import wrote a model from {path.name} that "
    hint = ("this is a bug in bmc import; please report it with the ONNX file",)
    try:
        model = compile_string(imported.source, filename=f"{imported.name}.bm", warnings="ignore",
                               memory_limit="none")
    except BmcError as e:
        raise BmcError(bug + f"bmc rejects:\n{e.render()}", notes=hint) from None
    have = {p.name: tuple(p.type.shape) for p in model.compiled.model.graph.params}
    given = {k: tuple(v.shape) for k, v in imported.params.items()}
    if have != given:
        wrong = sorted(set(have.items()) ^ set(given.items()))
        raise BmcError(bug + f"does not take the parameters it has values for: {wrong[:6]}", notes=hint)


def _folds(node: onnx.NodeProto, ins: list) -> bool:
    """Whether a node is computed at import: all its inputs are known, and it is not a table cut to a symbolic
    length (Slice of a float initializer to T), which the model writes as table[:T]."""
    if node.op_type in NOT_FOLDED or not (node.input or node.op_type in ("Constant", "ConstantOfShape")):
        return False
    if not all(v is None or isinstance(v, Known) for v in ins):
        return False
    data = ins[0] if ins else None
    return not (node.op_type == "Slice" and data is not None and not data.symbolic and data.value.dtype.kind == "f"
                and any(v is not None and v.symbolic for v in ins[1:]))


def _rule(node: onnx.NodeProto):
    if node.op_type not in RULES:
        raise Unsupported(f"no bmc function computes {node.op_type}" + (
            "" if node.op_type not in ("If", "Loop", "Scan") else " (control flow)"))
    return RULES[node.op_type][0]


def _output(ctx: Context, t: Tensor, onnx_name: str) -> None:
    """The graph output `onnx_name`: an `output` statement, or the statement that already computes it marked."""
    if isinstance(t.expr, X.Ref) and not any(s.name == t.expr.name for s in ctx.statements):  # an input, as it is
        name = ctx.names.identifier(onnx_name, "output")
        ctx.statements.append(Statement(name, t.expr, [], output=True))
        ctx.shapes[name] = t.shape
        return
    own = ctx.names.identifier(onnx_name)
    for stmt in ctx.statements:
        if stmt.name == own and getattr(t.expr, "name", None) == own:
            stmt.output = True
            return
    if t.onnx != onnx_name:  # another tensor's value (an Identity): its own statement
        t = Tensor(t.expr, t.dtype, t.shape, onnx_name, list(t.nodes))
    ctx.materialize(t, output=True)
    ctx.statements[-1].output = True


def _version(model: onnx.ModelProto, domain: str) -> int:
    return next((int(o.version) for o in model.opset_import if o.domain == domain), 1)


__all__ = ["Imported", "Problem", "import_onnx"]
