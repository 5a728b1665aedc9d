"""Lowering: a model of the AST becomes a typed SSA graph.

Statements are equations, order-free: a name is lowered when first needed (a cycle is an error). Layer calls that
own parameters (`dense(x, 128)`, user layers) add those parameters to the graph, named after the statement that
makes them (`h.W`, `h.b`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bmc.diagnostics import BmcError, Span, suggest
from bmc.frontend import layers  # noqa: F401 - importing it registers the neural-network layers as builtins
from bmc.frontend.builtins import BUILTINS, PARAM_OWNERS
from bmc.frontend.domains import MAX_SIZE, Number
from bmc.frontend.model_ir import ModelIR
from bmc.frontend.signature import REQUIRED, Param, Signature
from bmc.init import ALIASES, INITIALIZERS, Init, relation_error
from bmc.ir import dims
from bmc.ir.graph import Builder, Graph, ParamInfo, Value
from bmc.ir.types import DTYPES, Dim, TensorType, TypeError_
from bmc.ops.base import Op
from bmc.syntax import ast
from bmc.syntax.literals import INT_MAX
from bmc.syntax.nesting import MAX_DEPTH

Scalar = int | float | bool
Result = Value | Scalar | str | list
MAX_NODES = 1_000_000  # operations one lowered model may have: a bound on what `repeat` and layers can unroll
REPEAT_COUNT = Number(1, 10_000, integer=True)


@dataclass
class Scope:
    """The names of one model or layer body: statements, lowered values, compile-time constants and shape vars."""

    kind: str  # "model" or "layer"
    owner: str  # model or layer name, for messages
    prefix: str  # parameter name prefix ("" for a model, "h." inside a layer called from statement h)
    statements: dict[str, ast.Stmt] = field(default_factory=dict)
    returned: ast.Return | None = None  # a layer's `return`, apart from the names (`return` is not a value)
    values: dict[str, Result] = field(default_factory=dict)
    constants: dict[str, Scalar] = field(default_factory=dict)
    dim_vars: dict[str, Dim] = field(default_factory=dict)
    in_progress: list[str] = field(default_factory=list)


@dataclass
class Naming:
    """How the parameter-owning calls of one statement (or one layer's return) name their parameters: after the
    statement (`h.W`) when it makes one, numbered by function (`h.dense.W`, `h.dense_1.W`) when it makes several.
    Lowering another statement midway (a name used before its definition) works under a Naming of its own."""

    owner: str  # the statement's full name: "h", or "block1.h" inside a layer called from statement block1
    total: int = 1  # how many parameter-owning calls the statement makes
    counts: dict[str, int] = field(default_factory=dict)  # calls named so far, per function

    def prefix(self, func: str) -> str:
        k = self.counts.get(func, 0)
        self.counts[func] = k + 1
        if self.total <= 1:
            return self.owner
        return f"{self.owner}.{func}" + (f"_{k}" if k else "")

    def table(self, name: str) -> str:
        """The name of a fixed table a call adds without owning trainable parameters (`h.sinusoid`), numbered when
        the statement makes several; it does not change how the owning calls are named."""
        k = self.counts.get(f"table:{name}", 0)
        self.counts[f"table:{name}"] = k + 1
        return f"{self.owner}.{name}" + (f"_{k}" if k else "")


class CheckedBuilder(Builder):
    """The front end's builder: every op a `.bm` file makes is checked where it is made, so no later stage meets a
    result with a dim past MAX_SIZE (padding of 2**31, an overflowing reshape) or a graph that unrolled without
    bound (`repeat` in `repeat`); both are errors at the op's `.bm` span."""

    def emit(self, op: Op, *inputs: Value, span: Span | None = None, name: str = "") -> Any:
        span = span or self.span
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
        self.depth = 0  # levels of `expr` in progress: nested expressions, names used before their definition
        self.scope: Scope | None = None
        self.naming = Naming("")  # names the implicit parameters of the statement being lowered
        self.layer_stack: list[str] = []

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
        saved = self.naming
        try:
            if isinstance(stmt, ast.InputDecl):
                value = self.declare_input(stmt)
            elif isinstance(stmt, ast.ParamDecl):
                value = self.declare_param(stmt)
            else:
                self.naming = Naming(scope.prefix + name, count_owners(stmt.value, self))
                value = self.expr(stmt.value)
                if isinstance(value, Value) and not value.name:
                    value.name = scope.prefix + name
        finally:
            scope.in_progress.pop()
            self.naming = saved
        scope.values[name] = value
        return value

    def declare_input(self, stmt: ast.InputDecl) -> Value:
        t = self.tensor_type(stmt.type, allow_symbols=True)
        return self.graph.add_input(t, stmt.name, stmt.role, stmt.span)

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
        v = self.graph.add_input(t, name, "param", span)
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
        if isinstance(e, _Bound):
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
                return self.emit(_ops().Neg(), v, span=e.span)
            if isinstance(v, int | float) and not isinstance(v, bool):
                return checked_number(-v, e.span)
            raise BmcError(f"cannot negate {v!r}", e.span)
        if isinstance(e, ast.BinOp):
            return self.binop(e)
        if isinstance(e, ast.Call):
            return self.call(e)
        raise AssertionError(e)  # pragma: no cover

    def binop(self, e: ast.BinOp) -> Result:
        ops = _ops()
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
        return self.emit(_ops().Const(float(v) if other.type.is_float else int(v), other.type.dtype), span=span)

    def call(self, e: ast.Call) -> Result:
        if e.func == "repeat":
            return self.repeat(e)
        if e.func in self.module.layers:
            return self.call_layer(self.module.layers[e.func], e)
        if e.func in BUILTINS:
            sig, handler = BUILTINS[e.func]
            return handler(self, e, sig.arguments(self, e))
        if e.func in ALIASES or e.func in INITIALIZERS:
            raise BmcError(f"'{e.func}' is an initializer, not a function", e.func_span,
                           notes=(f"use it after '~' in a parameter declaration (param W: f32[4, 3] ~ {e.func}) or "
                                  f"as an argument (dense(x, 3, init = {e.func}))",))
        known = [*BUILTINS, *self.module.layers]
        raise BmcError(f"unknown function '{e.func}'", e.func_span, notes=suggest(e.func, known))

    # ---- user-defined layers --------------------------------------------------------------------------------------

    def repeat(self, e: ast.Call) -> Value:
        """`repeat(6, block(h, heads = 4))`: block applied 6 times, each copy with its own parameters (h.0.*, h.1.*);
        the first argument of the call is the tensor threaded through the copies."""
        if len(e.args) != 2 or e.kwargs or not isinstance(e.args[1], ast.Call):
            raise BmcError("repeat takes a count and a layer call: repeat(6, block(h))", e.span)
        count = REPEAT_COUNT.take(self, e.args[0], "repeat's count", e.args[0].span)
        call = e.args[1]
        if call.func not in self.module.layers:
            raise BmcError(f"repeat applies a user-defined layer; '{call.func}' is not one", call.func_span,
                           notes=suggest(call.func, list(self.module.layers)))
        if not call.args:
            raise BmcError(f"{call.func}() needs the tensor to thread through the copies as its first argument",
                           call.span)
        x = self.tensor(call.args[0], "the repeated layer's first argument")
        saved = self.naming
        base = self.owner_prefix("repeat")
        try:
            for i in range(count):
                self.naming = Naming(f"{base}.{i}")
                step = ast.Call(call.func, call.func_span, (_Bound(x, call.args[0].span), *call.args[1:]),
                                call.kwargs, call.span)
                x = self.call_layer(self.module.layers[call.func], step)
        finally:
            self.naming = saved
        return x

    def call_layer(self, layer: ast.LayerDef, e: ast.Call) -> Value:
        if layer.name in self.layer_stack:
            raise BmcError(f"layer '{layer.name}' calls itself", e.func_span,
                           notes=("layers cannot be recursive",))
        sig = Signature(layer.name, tuple(Param(a.name, a.default if a.default is not None else REQUIRED)
                                          for a in layer.args))
        bound = sig.bind(e)
        inner = Scope("layer", layer.name, self.owner_prefix(layer.name) + ".")
        for arg in layer.args:
            expr = bound[arg.name]
            value = self.expr(expr)
            if arg.type is not None:
                if not isinstance(value, Value):
                    raise BmcError(f"argument '{arg.name}' of {layer.name} must be a tensor", expr.span)
                self.match_pattern(arg, value, inner, expr.span)
                inner.values[arg.name] = value
            elif arg.scalar is not None:
                kinds = {"int": (int,), "float": (int, float), "bool": (bool,)}.get(arg.scalar)
                if kinds is None:
                    raise BmcError(f"unknown argument type '{arg.scalar}'", arg.span,
                                   notes=("a layer argument is a tensor (x: f32[..., d]) or int, float or bool",))
                inner.constants[arg.name] = self.scalar(expr, f"argument '{arg.name}'", kinds)
            elif isinstance(value, Value):
                inner.values[arg.name] = value
            else:
                inner.constants[arg.name] = value
        saved = (self.scope, self.naming)
        self.layer_stack.append(layer.name)
        self.scope = inner
        try:
            self.collect(inner, layer.body)
            ret = inner.returned
            if ret is None:
                raise BmcError(f"layer '{layer.name}' has no 'return'", layer.name_span,
                               notes=("a layer gives its result with 'return expression'",))
            for stmt in list(inner.statements.values()):
                self.lower_statement(stmt)
            self.naming = Naming(inner.prefix.rstrip("."), count_owners(ret.value, self))
            result = self.expr(ret.value)
        finally:
            self.scope, self.naming = saved
            self.layer_stack.pop()
        if not isinstance(result, Value):
            raise BmcError(f"layer '{layer.name}' must return a tensor", ret.span)
        return result

    def match_pattern(self, arg: ast.LayerArg, value: Value, scope: Scope, span: Span) -> None:
        """Check a tensor argument against `f32[..., d]` and bind the pattern's names (d) to its dims."""
        tt = arg.type
        t = value.type
        if tt.dtype not in DTYPES:
            raise BmcError(f"unknown dtype '{tt.dtype}'", tt.dtype_span)
        wanted = f"argument '{arg.name}' of layer '{scope.owner}' is declared {tt.span.text()} at {arg.span}"
        if t.dtype != tt.dtype:
            raise BmcError(f"argument '{arg.name}' must be {tt.dtype}, got {t}", span, notes=(wanted,))
        pattern = list(tt.dims)
        ellipsis = [i for i, d in enumerate(pattern) if isinstance(d, ast.Ellipsis_)]
        if len(ellipsis) > 1:
            raise BmcError("a shape pattern takes at most one '...'", pattern[ellipsis[1]].span)
        if ellipsis:
            i = ellipsis[0]
            head, tail = pattern[:i], pattern[i + 1:]
            if t.rank < len(head) + len(tail):
                raise BmcError(f"argument '{arg.name}' has shape {t}, too few dims for the pattern", span,
                               notes=(wanted,))
            actual = list(t.shape[: len(head)]) + list(t.shape[t.rank - len(tail):])
            pattern = head + tail
        else:
            if t.rank != len(pattern):
                raise BmcError(f"argument '{arg.name}' must have {len(pattern)} dims, got {t}", span,
                               notes=(wanted,))
            actual = list(t.shape)
        for p, d in zip(pattern, actual, strict=True):
            if isinstance(p, ast.Name) and p.id not in scope.dim_vars and p.id not in scope.constants:
                scope.dim_vars[p.id] = d
            elif isinstance(p, ast.Num):
                if p.value != d:
                    raise BmcError(f"argument '{arg.name}' has shape {t}, but its pattern wants a dim of {p.value} "
                                   f"where it has {d}", span, notes=(wanted,))
            elif isinstance(p, ast.Name) and scope.dim_vars.get(p.id) != d:
                raise BmcError(f"argument '{arg.name}' has shape {t}, but its pattern wants '{p.id}' = "
                               f"{scope.dim_vars.get(p.id)} (from an earlier dim or argument) where it has {d}", span,
                               notes=(wanted,))


@dataclass(frozen=True)
class _Bound:
    """An already-lowered value standing in an argument position (repeat threads its tensor this way)."""

    value: Value
    span: Span


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


def constant_arith(e: ast.BinOp, a: Scalar, b: Scalar) -> Scalar:
    """Arithmetic on two compile-time numbers, such as `hidden * 2`: 64-bit integers and finite floats, as the
    literals are (so `10 ** 10 ** 10` is an error, not an hour spent computing a ten-billion-digit number)."""
    if e.op == "@":
        raise BmcError("'@' multiplies two tensors, not numbers", e.span)
    if e.op == "**" and isinstance(b, int) and abs(a) > 1 and b * math.log2(abs(a)) > 64:
        raise BmcError("number too large", e.span, notes=(f"integers are at most {INT_MAX} (2**63 - 1)",))
    try:
        if e.op == "+":
            result = a + b
        elif e.op == "-":
            result = a - b
        elif e.op == "*":
            result = a * b
        elif e.op == "/":
            result = a / b
        elif e.op == "**":
            result = a**b
        else:
            return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[e.op]
    except ZeroDivisionError:
        raise BmcError("division by zero", e.span) from None
    except OverflowError:
        raise BmcError("number too large", e.span) from None
    return checked_number(result, e.span)


def checked_number(v: Any, span: Span) -> int | float:
    """A compile-time number that every dtype can hold: an int of at most 64 bits, a finite float."""
    if isinstance(v, complex):
        raise BmcError(f"this is the complex number {v}; numbers are real", span)
    if isinstance(v, int) and not -INT_MAX - 1 <= v <= INT_MAX:
        raise BmcError("number too large", span, notes=(f"integers are at most {INT_MAX} (2**63 - 1)",))
    if isinstance(v, float) and not math.isfinite(v):
        raise BmcError("number too large" if math.isinf(v) else "this is not a number (nan)", span,
                       notes=("floats are at most about 1.8e308",))
    return v


def count_owners(e: ast.Expr | None, lw: Lowerer) -> int:
    """How many parameter-owning calls an expression makes (not looking inside layers)."""
    if e is None:
        return 0
    if isinstance(e, ast.Call):
        own = 1 if (e.func in PARAM_OWNERS or e.func in lw.module.layers or e.func == "repeat") else 0
        if e.func == "repeat":  # its copies name their own parameters
            return own
        return own + sum(count_owners(a, lw) for a in e.args) + sum(count_owners(k.value, lw) for k in e.kwargs)
    if isinstance(e, ast.BinOp):
        return count_owners(e.lhs, lw) + count_owners(e.rhs, lw)
    if isinstance(e, ast.Neg):
        return count_owners(e.operand, lw)
    if isinstance(e, ast.ListExpr):
        return sum(count_owners(i, lw) for i in e.items)
    return 0


def _ops():
    from bmc import ops

    return ops


# ---- the model ----------------------------------------------------------------------------------------------------


def model_constants(lw: Lowerer, mdef: ast.ModelDef, defines: dict[str, Scalar], define_span: dict[str, Span]):
    scope = lw.scope
    spans = {}
    for p in mdef.params:
        if p.name in scope.constants:
            raise BmcError(f"model parameter '{p.name}' is declared twice", p.span)
        spans[p.name] = p.span
        if p.name in defines:
            scope.constants[p.name] = defines[p.name]
        else:
            v = lw.expr(p.default)
            if not isinstance(v, int | float) or isinstance(v, str):
                raise BmcError(f"model parameter '{p.name}' must default to a number", p.default.span)
            scope.constants[p.name] = v
    for name in defines:
        if name not in scope.constants:
            known = ", ".join(p.name for p in mdef.params) or "none"
            raise BmcError(f"-D {name}: model '{mdef.name}' has no parameter '{name}' (its parameters: {known})",
                           define_span.get(name, mdef.name_span), notes=suggest(name, list(scope.constants)))
    return spans


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
                   {p.name: v for p, v in lw.updates.items()}, training)


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
