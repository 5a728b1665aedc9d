"""Calls of user-defined layers: a layer's body lowered in a scope of its own (its arguments bound, its tensor
arguments matched against their shape patterns), and `repeat`, which applies a layer n times with fresh parameters
each time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bmc.diagnostics import BmcError, Span, suggest
from bmc.frontend.domains import Number
from bmc.frontend.origin import calls
from bmc.frontend.scope import Bound, Naming, Scope, count_owners
from bmc.frontend.signature import REQUIRED, Param, Signature
from bmc.ir.graph import Value
from bmc.ir.types import DTYPES
from bmc.syntax import ast

if TYPE_CHECKING:
    from bmc.frontend.lower import Lowerer

REPEAT_COUNT = Number(1, 10_000, integer=True)


def repeat(lw: Lowerer, e: ast.Call) -> Value:
    """`repeat(6, block(h, heads = 4))`: block applied 6 times, each copy with its own parameters (h.0.*, h.1.*);
    the first argument of the call is the tensor threaded through the copies."""
    if len(e.args) != 2 or e.kwargs or not isinstance(e.args[1], ast.Call):
        raise BmcError("repeat takes a count and a layer call: repeat(6, block(h))", e.span)
    count = REPEAT_COUNT.take(lw, e.args[0], "repeat's count", e.args[0].span)
    call = e.args[1]
    if call.func not in lw.module.layers:
        raise BmcError(f"repeat applies a user-defined layer; '{call.func}' is not one", call.func_span,
                       notes=suggest(call.func, list(lw.module.layers)))
    if not call.args:
        raise BmcError(f"{call.func}() needs the tensor to thread through the copies as its first argument",
                       call.span)
    x = lw.tensor(call.args[0], "the repeated layer's first argument")
    base = lw.owner_prefix("repeat")
    saved = lw.origins.enter(base, "repeat", f"repeat {count} × {call.func}", e.span)
    lw.origins.table[base].repeat = count
    lw.origins.table[base].layer = call.func
    for i in range(count):
        step = ast.Call(call.func, call.func_span, (Bound(x, call.args[0].span), *call.args[1:]), call.kwargs,
                        call.span)
        with lw.within(naming=Naming(f"{base}.{i}")):
            x = call_layer(lw, lw.module.layers[call.func], step)
    lw.origins.leave(saved)
    return x

def call_layer(lw: Lowerer, layer: ast.LayerDef, e: ast.Call) -> Value:
    if layer.name in lw.layer_stack:
        raise BmcError(f"layer '{layer.name}' calls itself", e.func_span,
                       notes=("layers cannot be recursive",))
    sig = Signature(layer.name, tuple(Param(a.name, a.default if a.default is not None else REQUIRED)
                                      for a in layer.args))
    bound = sig.bind(e)
    inner = Scope("layer", layer.name, lw.owner_prefix(layer.name) + ".")
    frame = inner.prefix.removesuffix(".")
    caller = lw.origins.enter(frame, "layer", layer.name, e.span)
    lw.origins.table[frame].layer = layer.name
    inner.path = tuple(lw.origins.path)
    lw.origins.leave(caller)  # the arguments belong to the calling statement
    for arg in layer.args:
        expr = bound[arg.name]
        value = lw.expr(expr)
        if arg.type is not None:
            if not isinstance(value, Value):
                raise BmcError(f"argument '{arg.name}' of {layer.name} must be a tensor", expr.span)
            match_pattern(arg, value, inner, expr.span)
            inner.values[arg.name] = value
        elif arg.scalar is not None:
            kinds = {"int": (int,), "float": (int, float), "bool": (bool,)}.get(arg.scalar)
            if kinds is None:
                raise BmcError(f"unknown argument type '{arg.scalar}'", arg.span,
                               notes=("a layer argument is a tensor (x: f32[..., d]) or int, float or bool",))
            inner.constants[arg.name] = lw.scalar(expr, f"argument '{arg.name}'", kinds)
        elif isinstance(value, Value):
            inner.values[arg.name] = value
        else:
            inner.constants[arg.name] = value
    with lw.within(scope=inner, layer=layer.name):
        lw.collect(inner, layer.body)
        ret = inner.returned
        if ret is None:
            raise BmcError(f"layer '{layer.name}' has no 'return'", layer.name_span,
                           notes=("a layer gives its result with 'return expression'",))
        for stmt in list(inner.statements.values()):
            lw.lower_statement(stmt)
        with lw.within(naming=Naming(inner.prefix.rstrip("."), count_owners(ret.value, lw.module.layers))):
            saved = lw.origins.path[:]
            lw.origins.path[:] = inner.path
            lw.origins.enter(inner.prefix + "return", "return", "return", ret.span)
            lw.origins.table[inner.prefix + "return"].calls = calls(ret.value, inner.is_number)
            try:
                result = lw.expr(ret.value)
            finally:
                lw.origins.leave(tuple(saved))
            if isinstance(result, Value):
                lw.origins.table[inner.prefix + "return"].value = result
    if not isinstance(result, Value):
        raise BmcError(f"layer '{layer.name}' must return a tensor", ret.span)
    return result

def match_pattern(arg: ast.LayerArg, value: Value, scope: Scope, span: Span) -> None:
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
