"""The values of number literals, with located errors for those no program can mean.

Integers are 64-bit (larger ones would overflow every integer dtype, and Python refuses to even convert more than
4,300 digits); floats are IEEE doubles, so a literal that rounds to infinity is an error rather than a silent `inf`.
(String escapes are decoded by the parser, bmc/syntax/parser.py.)
"""

from __future__ import annotations

import math

from bmc.diagnostics import BmcError, Span

INT_MAX = 2**63 - 1  # the largest integer literal: an i64


def number_value(text: str, span: Span) -> int | float:
    """The value of a NUMBER token (digits, optionally a fraction and an exponent; never a sign)."""
    if not any(c in text for c in ".eE"):
        digits = text.lstrip("0") or "0"
        if len(digits) > len(str(INT_MAX)) or int(digits) > INT_MAX:
            shown = text if len(text) <= 24 else f"{text[:20]}... ({len(text)} digits)"
            raise BmcError(f"the integer {shown} is too large: integers are at most {INT_MAX} (2**63 - 1)", span,
                           notes=("write a large number as a float, e.g. 1e30",))
        return int(digits)
    value = float(text)
    if math.isinf(value):
        shown = text if len(text) <= 24 else f"{text[:20]}..."
        raise BmcError(f"the number {shown} is too large: floats are at most about 1.8e308", span)
    return value

