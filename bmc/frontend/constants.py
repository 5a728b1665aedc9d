"""Compile-time numbers: arithmetic on them (`hidden * 2`) within what every dtype holds, and a model's parameters
with their defaults and `-D` overrides."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from bmc.diagnostics import BmcError, Span, suggest
from bmc.frontend.scope import Scalar
from bmc.syntax import ast
from bmc.syntax.literals import INT_MAX

if TYPE_CHECKING:
    from bmc.frontend.lower import Lowerer


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
