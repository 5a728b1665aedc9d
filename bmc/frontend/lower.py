"""Lowering: a model of the AST becomes a typed SSA graph.

Statements are equations, order-free: a name is lowered when first needed (a cycle is an error). Layer calls that
own parameters (`dense(x, 128)`, user layers) add those parameters to the graph, named after the statement that
makes them (`h.W`, `h.b`).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any

from bmc import ops
from bmc.diagnostics import BmcError, Span, suggest
from bmc.frontend import layers  # noqa: F401 - importing it registers the neural-network layers as builtins
from bmc.frontend.builtins import BUILTINS
from bmc.frontend.constants import checked_number, constant_arith, model_constants
from bmc.frontend.domains import MAX_SIZE
from bmc.frontend.layer_calls import call_layer, repeat
from bmc.frontend.model_ir import ModelIR
from bmc.frontend.origin import Origins, calls
from bmc.frontend.scope import Bound, Naming, Result, Scalar, Scope, count_owners
from bmc.frontend.signature import Signature
from bmc.frontend.subscript import subscript
from bmc.init import ALIASES, INITIALIZERS, Init, relation_error
from bmc.ir import dims
from bmc.ir.graph import Builder, Graph, ParamInfo, Value
from bmc.ir.types import DTYPES, Dim, TensorType, TypeError_
from bmc.ops.base import Op
from bmc.syntax import ast
from bmc.syntax.nesting import MAX_DEPTH

MAX_NODES = 1_000_000  # operations one lowered model may have: a bound on what `repeat` and layers can unroll


class CheckedBuilder(Builder):
    """The front end's builder: every op a `.bm` file makes is checked where it is made, so no later stage meets a
    result with a dim past MAX_SIZE (padding of 2**31, an overflowing reshape) or a graph that unrolled without
    bound (`repeat` in `repeat`); both are errors at the op's `.bm` span."""

    origins: Origins | None = None  # set by the Lowerer: every op's span says which statement made it

    def emit(self, op: Op, *inputs: Value, span: Span | None = None, name: str = "") -> Any:
        span = span or self.span
        if self.origins is not None:
            span = self.origins.stamp(span)
        if len(self.graph.nodes) >= MAX_NODES:
            raise BmcError(f"this model has more than {MAX_NODES:,} operations; bmc compiles models up to that size",
                           span, notes=("is a repeat count (or a layer calling a repeated layer) larger than meant?",))
        try:
            result = super().emit(op, *inputs, span=span, name=name)
        except TypeError_ as e:
            raise BmcError(str(e), span) from None
        for v in result if isinstance(result, tuple) else (result,):
            if any(isinstance(d, int) and d > MAX_SIZE for d in v.type.shape):
                raise BmcError(f"this gives {v.type}, a dim larger than {MAX_SIZE}", span,
                               notes=("dims (and so every size that leads to one: padding, a reshape) are at most "
                                      f"{MAX_SIZE}",))
        return result


class Lowerer:
    def __init__(self, module: ast.Module, graph: Graph, training: bool = True):
        self.module = module
        self.graph = graph
        self.training = training  # dropout and batch norm behave differently in the train step
        self.updates: dict[Value, Value] = {}  # non-trainable parameters the train step updates (running stats)
        self.salts = 0
        self.key: Value | None = None
        self.b = CheckedBuilder(graph)
        self.origins = self.b.origins = Origins()
        self.depth = 0  # levels of `expr` in progress: nested expressions, names used before their definition
        self.scope: Scope | None = None
        self.naming = Naming("")  # names the implicit parameters of the statement being lowered
        self.layer_stack: list[str] = []

    @contextmanager
    def within(self, scope: Scope | None = None, naming: Naming | None = None, layer: str | None = None):
        """Lower under another scope (a layer's body), another naming (a statement, a repeat copy) or inside a
        layer's call, and come back to the current ones after, however lowering ends."""
        saved = self.scope, self.naming, len(self.layer_stack)
        self.scope, self.naming = scope or self.scope, naming or self.naming
        if layer is not None:
            self.layer_stack.append(layer)
        try:
            yield
        finally:
            self.scope, self.naming = saved[0], saved[1]
            del self.layer_stack[saved[2]:]

    # ---- emitting -----------------------------------------------------------------------------------------------

    def emit(self, op: Op, *inputs: Value, span: Span) -> Value:
        return self.b.emit(op, *inputs, span=span)

    # ---- statements -----------------------------------------------------------------------------------------------

    def collect(self, scope: Scope, body: tuple[ast.Stmt, ...]) -> list[ast.Stmt]:
        """Index the statements of a body by the name they define; reject duplicates and misplaced statements."""
        spans: dict[str, Span] = {}
        ordered = []
        for stmt in body:
            if isinstance(stmt, ast.Return):
                if scope.kind != "layer":
                    raise BmcError("'return' is only allowed in a layer", stmt.span,
                                   notes=("a model names its results with 'output name = ...'",))
                if scope.returned is not None:
                    raise BmcError("a layer has exactly one 'return'", stmt.span)
                scope.returned = stmt
                continue
            if isinstance(stmt, ast.InputDecl) and scope.kind == "layer":
                raise BmcError(f"'{stmt.role}' is only allowed in a model; a layer takes its tensors as arguments",
                               stmt.span)
            if isinstance(stmt, ast.Assign) and stmt.output and scope.kind == "layer":
                raise BmcError("'output' is only allowed in a model; a layer returns its result with 'return'",
                               stmt.span)
            if isinstance(stmt, ast.Assign) and stmt.value is None:
                ordered.append(stmt)  # `output h` marks an existing binding
                continue
            name = stmt.name
            if name in spans:
                raise BmcError(f"'{name}' is defined twice", stmt.name_span,
                               notes=(f"first defined at {spans[name]}",))
            if name in scope.constants:
                raise BmcError(f"'{name}' is already a {scope.kind} parameter", stmt.name_span)
            spans[name] = stmt.name_span
            scope.statements[name] = stmt
            ordered.append(stmt)
        return ordered

    def lookup(self, name: str, span: Span) -> Result:
        scope = self.scope
        assert scope is not None
        if name in scope.values:
            return scope.values[name]
        if name in scope.constants:
            return scope.constants[name]
        if name in scope.dim_vars:  # a size bound by a layer's shape pattern
            d = scope.dim_vars[name]
            if isinstance(d, int):
                return d
            raise BmcError(f"'{name}' is the symbolic dim {d}, known only at run time; it cannot be used as a number",
                           span)
        if name in scope.statements:
            return self.lower_statement(scope.statements[name])
        if name in ("true", "false"):
            return name == "true"
        candidates = [*scope.statements, *scope.constants]
        raise BmcError(f"undefined name '{name}'", span, notes=suggest(name, candidates))

    def lower_statement(self, stmt: ast.Stmt) -> Result:
        scope = self.scope
        assert scope is not None
        name = stmt.name
        if name in scope.values:
            return scope.values[name]
        if name in scope.in_progress:
            cycle = [*scope.in_progress[scope.in_progress.index(name):], name]
            raise BmcError(f"'{name}' depends on itself: {' -> '.join(cycle)}", stmt.name_span)
        scope.in_progress.append(name)
        saved = self.origins.path[:]
        self.origins.path[:] = scope.path
        kind = (stmt.role if isinstance(stmt, ast.InputDecl) else
                "param" if isinstance(stmt, ast.ParamDecl) else "statement")
        self.origins.enter(scope.prefix + name, kind, name, stmt.span)
        if isinstance(stmt, ast.Assign):
            self.origins.table[scope.prefix + name].calls = calls(stmt.value, scope.is_number)
        try:
            if isinstance(stmt, ast.InputDecl):
                value = self.declare_input(stmt)
            elif isinstance(stmt, ast.ParamDecl):
                value = self.declare_param(stmt)
            else:
                with self.within(naming=Naming(scope.prefix + name, count_owners(stmt.value, self.module.layers))):
                    value = self.expr(stmt.value)
                if isinstance(value, Value) and not value.name:
                    value.name = scope.prefix + name
        finally:
            scope.in_progress.pop()
            here = self.origins.here()
            self.origins.path[:] = saved
        if isinstance(value, Value) and here is not None:
            here.value = value
        scope.values[name] = value
        return value

    def declare_input(self, stmt: ast.InputDecl) -> Value:
        t = self.tensor_type(stmt.type, allow_symbols=True)
        return self.graph.add_input(t, stmt.name, stmt.role, self.origins.stamp(stmt.span))

    def declare_param(self, stmt: ast.ParamDecl) -> Value:
        try:
            t = self.tensor_type(stmt.type, allow_symbols=False)
        except BmcError as e:
            raise _with_param_size(e, stmt) from None
        if not t.is_float:
            raise BmcError(f"parameters are floating-point tensors; '{stmt.name}' is {t}", stmt.type.dtype_span)
        init = self.initializer(stmt.init) if stmt.random else self.constant_init(stmt.init)
        name = self.scope.prefix + stmt.name
        return self.add_param(name, t, init, decay=t.rank >= 2, span=stmt.span)

    def add_param(self, name: str, t: TensorType, init: Init, decay: bool, span: Span,
                  trainable: bool = True, fans: tuple[int, int] | None = None) -> Value:
        if any(v.name == name for v in self.graph.params):
            raise BmcError(f"parameter '{name}' is defined twice", span)
        v = self.graph.add_input(t, name, "param", self.origins.stamp(span))
        if (here := self.origins.here()) is not None:
            here.params += t.size or 0
        self.graph.param_info[v] = ParamInfo(init, trainable=trainable, decay=decay, span=span, fans=fans)
        return v

    def record_update(self, param: Value, value: Value) -> None:
        """A non-trainable parameter (a running statistic) that the train step replaces by `value`."""
        self.updates[param] = value

    def rng_key(self) -> Value:
        """The integer key the train step receives each step, from which every random op draws."""
        if self.key is None:
            self.key = self.graph.add_input(TensorType("i64", ()), "rng", "hyper")
        return self.key

    def next_salt(self) -> int:
        """A distinct stream for each random op of the model."""
        self.salts += 1
        return self.salts

    def at(self, call: ast.Call) -> Builder:
        """The builder, positioned at a call's span, for layers that emit several ops."""
        self.b.span = call.span
        return self.b

    def owner_prefix(self, func: str) -> str:
        """The name prefix for the parameters of one parameter-owning call in the current statement."""
        return self.naming.prefix(func)

    # ---- types and compile-time values -------------------------------------------------------------------------------

    def tensor_type(self, tt: ast.TensorType, allow_symbols: bool) -> TensorType:
        if tt.dtype not in DTYPES:
            raise BmcError(f"unknown dtype '{tt.dtype}'", tt.dtype_span,
                           notes=(f"expected one of {', '.join(DTYPES)}",))
        shape = []
        for d in tt.dims:
            if isinstance(d, ast.Ellipsis_):
                raise BmcError("'...' is only allowed in a layer argument's shape pattern", d.span)
            shape.append(self.dim(d, allow_symbols))
        return TensorType(tt.dtype, tuple(shape))

    def dim(self, e: ast.Expr, allow_symbols: bool) -> Dim:
        scope = self.scope
        if isinstance(e, ast.Num):
            if not isinstance(e.value, int) or not 1 <= e.value <= MAX_SIZE:
                raise BmcError(f"a dim must be a positive integer of at most {MAX_SIZE}, not {e.value}", e.span)
            return e.value
        if isinstance(e, ast.Name):
            if e.id in scope.dim_vars:
                return scope.dim_vars[e.id]
            if e.id in scope.constants:
                v = scope.constants[e.id]
                if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_SIZE:
                    raise BmcError(f"'{e.id}' = {v} cannot be a dim: dims are positive integers of at most "
                                   f"{MAX_SIZE}", e.span)
                return v
            if e.id in scope.statements:
                raise BmcError(f"'{e.id}' is a tensor, not a dim", e.span)
            if not allow_symbols:
                raise BmcError(f"a parameter's shape must be static, but '{e.id}' is not a number or a model "
                               "parameter", e.span, notes=suggest(e.id, list(scope.constants))
                               or ("symbolic dims such as N are only allowed in input and target shapes",))
            return e.id
        if isinstance(e, ast.BinOp) and e.op in "+-*":
            a, b = self.dim(e.lhs, allow_symbols), self.dim(e.rhs, allow_symbols)
            if e.op == "*":
                r = dims.product([a, b])
                if isinstance(r, int) and r > MAX_SIZE:
                    raise BmcError(f"this dim is {r}; dims are at most {MAX_SIZE}", e.span)
                return r
            if isinstance(a, int) and isinstance(b, int):
                r = a + b if e.op == "+" else a - b
                if not 1 <= r <= MAX_SIZE:
                    raise BmcError(f"this dim is {r}; dims are positive integers of at most {MAX_SIZE}", e.span)
                return r
            raise BmcError("symbolic dims can only be multiplied", e.span)
        if isinstance(e, ast.BinOp) and e.op == "/":
            raise BmcError("use '*' in dims; division is not supported", e.span)
        raise BmcError("expected a dim: an integer, a model parameter or a symbol such as N", e.span)

    def scalar(self, e: ast.Expr, what: str, kinds: tuple[type, ...] = (int, float)) -> Any:
        v = self.expr(e) if not isinstance(e, int | float | bool) else e
        if isinstance(v, bool) and bool not in kinds:
            raise BmcError(f"{what} must be a number, not {'true' if v else 'false'}", e.span)
        if not isinstance(v, kinds):
            names = "a number" if float in kinds else " or ".join(
                {int: "an integer", bool: "true or false"}[k] for k in kinds)
            got = f"a tensor {v.type}" if isinstance(v, Value) else repr(v)
            raise BmcError(f"{what} must be {names}, not {got}", e.span)
        return v

    def integer(self, e: Any, what: str) -> int:
        return self.scalar(e, what, (int,))

    def boolean(self, e: Any, what: str) -> bool:
        if isinstance(e, bool):
            return e
        return self.scalar(e, what, (bool,))

    def tensor(self, e: ast.Expr, what: str = "this argument") -> Value:
        v = self.expr(e)
        if not isinstance(v, Value):
            raise BmcError(f"{what} must be a tensor, not {v!r}", e.span)
        return v

    def initializer(self, e: Any) -> Init:
        """`xavier`, `normal(std = 0.01)`, `constant(0.1)`: a description of how to draw initial values, its
        arguments taken through their domains (bmc/init.py)."""
        if isinstance(e, Init):
            return e
        if isinstance(e, ast.Name):
            name, args = e.id, ()
            kwargs: tuple[ast.Kwarg, ...] = ()
        elif isinstance(e, ast.Call):
            name, args, kwargs = e.func, e.args, e.kwargs
        else:
            raise BmcError("expected an initializer such as xavier, he, zeros or normal(std = 0.01)", e.span)
        kind = ALIASES.get(name, name)
        if kind not in INITIALIZERS:
            known = sorted([*INITIALIZERS, *ALIASES])
            raise BmcError(f"unknown initializer '{name}'", e.span,
                           notes=suggest(name, known) or (f"initializers: {', '.join(known)}",))
        call = ast.Call(name, e.span, args, kwargs, e.span)
        bound = Signature(name, INITIALIZERS[kind]).arguments(self, call)
        values = {k: float(v) for k, v in bound.items()}
        wrong = relation_error(kind, values)
        if wrong is not None:
            raise BmcError(wrong[0], bound.span(wrong[1]))
        return Init(kind, values)

    def constant_init(self, e: ast.Expr) -> Init:
        value = self.scalar(e, "a parameter's initial value")
        return Init("zeros") if value == 0 else Init("constant", {"value": float(value)})

    # ---- expressions --------------------------------------------------------------------------------------------

    def expr(self, e: ast.Expr) -> Result:
        if isinstance(e, Bound):
            return e.value
        if isinstance(e, ast.Num):
            return e.value
        if isinstance(e, ast.Str):
            return e.value
        if self.depth >= MAX_DEPTH:  # only through names defined after their use, or layers calling layers
            raise BmcError(f"lowering this nests more than {MAX_DEPTH} levels deep, counting the definitions it "
                           "uses before they are defined and the layers it calls", e.span,
                           notes=("define names before their first use, so each is lowered on its own",))
        self.depth += 1
        try:
            return self._expr(e)
        finally:
            self.depth -= 1

    def _expr(self, e: ast.Expr) -> Result:
        if isinstance(e, ast.Name):
            return self.lookup(e.id, e.span)
        if isinstance(e, ast.ListExpr):
            return [self.expr(i) for i in e.items]
        if isinstance(e, ast.Neg):
            v = self.expr(e.operand)
            if isinstance(v, Value):
                return self.emit(ops.Neg(), v, span=e.span)
            if isinstance(v, int | float) and not isinstance(v, bool):
                return checked_number(-v, e.span)
            raise BmcError(f"cannot negate {v!r}", e.span)
        if isinstance(e, ast.BinOp):
            return self.binop(e)
        if isinstance(e, ast.Call):
            return self.call(e)
        if isinstance(e, ast.Subscript):
            return subscript(self, e)
        raise AssertionError(e)  # pragma: no cover

    def binop(self, e: ast.BinOp) -> Result:
        a, b = self.expr(e.lhs), self.expr(e.rhs)
        for v, side in ((a, e.lhs), (b, e.rhs)):
            if not isinstance(v, Value | int | float) or isinstance(v, bool):
                raise BmcError(f"'{e.op}' expects tensors or numbers, not {v!r}", side.span)
        if not isinstance(a, Value) and not isinstance(b, Value):
            return constant_arith(e, a, b)
        if e.op == "@":
            if not (isinstance(a, Value) and isinstance(b, Value)):
                raise BmcError("'@' multiplies two tensors", e.span)
            return self.emit(ops.MatMul(), a, b, span=e.span)
        a, b = self.promote_literal(a, b, e.span), self.promote_literal(b, a, e.span)
        table = {"+": ops.Add(), "-": ops.Sub(), "*": ops.Mul(), "/": ops.Div(), "**": ops.Pow()}
        op = table.get(e.op) or ops.Compare(e.op)
        if isinstance(op, ops.Div) and not a.type.is_float:
            raise BmcError(f"'/' expects floating-point tensors, got {a.type}", e.span,
                           notes=(f"convert it with cast({e.lhs.span.text()}, f32)",))
        return self.emit(op, a, b, span=e.span)

    def promote_literal(self, v: Result, other: Result, span: Span) -> Value:
        """A number next to a tensor becomes a scalar constant of the tensor's dtype (`span`: the expression)."""
        if isinstance(v, Value):
            return v
        assert isinstance(other, Value)
        if isinstance(v, float) and not other.type.is_float:
            raise BmcError(f"cannot combine the {other.type.dtype} tensor with the number {v}", span)
        return self.emit(ops.Const(float(v) if other.type.is_float else int(v), other.type.dtype), span=span)

    def call(self, e: ast.Call) -> Result:
        if e.func == "repeat":
            return repeat(self, e)
        if e.func in self.module.layers:
            return call_layer(self, self.module.layers[e.func], e)
        if e.func in BUILTINS:
            sig, handler = BUILTINS[e.func]
            return handler(self, e, sig.arguments(self, e))
        if e.func in ALIASES or e.func in INITIALIZERS:
            raise BmcError(f"'{e.func}' is an initializer, not a function", e.func_span,
                           notes=(f"use it after '~' in a parameter declaration (param W: f32[4, 3] ~ {e.func}) or "
                                  f"as an argument (dense(x, 3, init = {e.func}))",))
        known = [*BUILTINS, *self.module.layers]
        raise BmcError(f"unknown function '{e.func}'", e.func_span, notes=suggest(e.func, known))

def _with_param_size(e: BmcError, stmt: ast.ParamDecl) -> BmcError:
    """A parameter's dim error, with a note naming the parameter and its size when a literal dim is too large
    (`param W: f32[4, 100000000000000]`: what it would need, as the memory check says of smaller ones)."""
    from bmc.memory import ITEMSIZE, show_bytes

    literal = [d.value for d in stmt.type.dims if isinstance(d, ast.Num) and isinstance(d.value, int)]
    if stmt.type.dtype not in ITEMSIZE or not any(n > MAX_SIZE for n in literal):
        return e
    size = ITEMSIZE[stmt.type.dtype] * math.prod(literal)
    note = f"parameter '{stmt.name}' ({stmt.type.span.text()}) would need at least {show_bytes(size)}"
    return BmcError(e.message, e.span, notes=(note, *e.notes))


# ---- the model ----------------------------------------------------------------------------------------------------


def lower_model(module: ast.Module, name: str | None = None, defines: dict[str, Scalar] | None = None,
                training: bool = True) -> ModelIR:
    """Lower one model of a parsed file (the only one, or the one named) into a `ModelIR`, in training mode (the
    train step's forward: dropout on, batch statistics) or inference mode."""
    defines = dict(defines or {})
    models = module.models
    if not models:
        first = module.source.line(1)
        raise BmcError("this file defines no model", Span(module.source, 1, 1, 1, max(len(first), 1) + 1),
                       notes=("a model is 'model NAME { input x: f32[N, 4] ... output y = ... }' (see "
                              "examples/mlp.bm)",))
    if name is None:
        if len(models) > 1:
            second = list(models.values())[1]
            raise BmcError(f"this file defines several models ({', '.join(models)}); choose one with "
                           "--model NAME", second.name_span)
        name = next(iter(models))
    if name not in models:
        raise BmcError(f"{module.source.name} has no model '{name}' (it has: {', '.join(models)})")
    _check_unique_items(module)
    mdef = models[name]
    graph = Graph(name)
    lw = Lowerer(module, graph, training)
    lw.scope = Scope("model", name, "")
    spans = model_constants(lw, mdef, defines, {})
    ordered = lw.collect(lw.scope, mdef.body)
    outputs: list[str] = []
    input_spans: dict[str, Span] = {}
    for stmt in ordered:  # source order, so inputs and parameters keep the file's order
        if isinstance(stmt, ast.Assign) and stmt.value is None:
            continue
        lw.lower_statement(stmt)
        if isinstance(stmt, ast.InputDecl):
            input_spans[stmt.name] = stmt.type.span
    for stmt in ordered:
        if isinstance(stmt, ast.Assign) and stmt.output:
            value = lw.lookup(stmt.name, stmt.name_span)
            if not isinstance(value, Value):
                raise BmcError(f"output '{stmt.name}' must be a tensor", stmt.name_span)
            if stmt.name in outputs:
                raise BmcError(f"'{stmt.name}' is marked as an output twice", stmt.name_span)
            outputs.append(stmt.name)
            graph.outputs[stmt.name] = value
    loss = None
    if "loss" in lw.scope.statements:
        value = lw.scope.values["loss"]
        stmt = lw.scope.statements["loss"]
        if not isinstance(value, Value) or value.type.rank != 0 or not value.type.is_float:
            shown = value.type if isinstance(value, Value) else repr(value)
            raise BmcError(f"'loss' must be a floating-point scalar, got {shown}", stmt.name_span,
                           notes=("reduce it, e.g. mean(...), or use a loss such as cross_entropy(...)",))
        loss = "loss"
        graph.outputs["loss"] = value
    if not outputs and loss is None:
        raise BmcError(f"model '{name}' has no output and no loss", mdef.name_span,
                       notes=("declare a result with 'output name = ...' or a training objective with 'loss = ...'",))
    return ModelIR(name, module.source, graph, outputs, loss, dict(lw.scope.constants), spans, input_spans, mdef.span,
                   {p.name: v for p, v in lw.updates.items()}, training, lw.origins.table)


def _check_unique_items(module: ast.Module) -> None:
    """No item is defined twice, and every train block trains a model of the file (else it would be ignored)."""
    seen: dict[tuple[str, str], Span] = {}
    for item in module.items:
        if isinstance(item, ast.TrainDef) and item.model not in module.models:
            what = "a layer, not a model" if item.model in module.layers else "not a model of this file"
            raise BmcError(f"train block for '{item.model}', which is {what}", item.model_span,
                           notes=(*suggest(item.model, list(module.models)),
                                  f"models in this file: {', '.join(module.models)}"))
        kind = "train" if isinstance(item, ast.TrainDef) else "definition"
        name = item.model if isinstance(item, ast.TrainDef) else item.name
        span = item.model_span if isinstance(item, ast.TrainDef) else item.name_span
        if (kind, name) in seen:
            what = "a train block for" if kind == "train" else "a model or layer named"
            raise BmcError(f"{what} '{name}' is defined twice", span, notes=(f"first defined at {seen[kind, name]}",))
        seen[kind, name] = span
