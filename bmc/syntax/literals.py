r"""The values of number and string literals, with located errors for those no program can mean.

Integers are 64-bit (larger ones would overflow every integer dtype, and Python refuses to even convert more than
4,300 digits); floats are IEEE doubles, so a literal that rounds to infinity is an error rather than a silent `inf`.
Strings are UTF-8 text with the escapes \\ \" \n \t \r \xHH \uHHHH \UHHHHHHHH, decoded character by character (so
"données\x41.npz" is "donnéesA.npz"); any other backslash is an error at its column (a Windows path "C:\data" is
written "C:\\data" or "C:/data").
"""

from __future__ import annotations

import math
import re

from bmc.diagnostics import BmcError, Span

INT_MAX = 2**63 - 1  # the largest integer literal: an i64
ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}  # escape letter -> number of hex digits
ESCAPE_LIST = r'\\ \" \n \t \r \xHH \uHHHH \UHHHHHHHH'


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


_BACKSLASH = re.compile(r"\\(.?)")


def unescape(raw: str, span: Span) -> str:
    """The text of a string literal whose characters between the quotes are `raw`; `span` is the whole token."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    pos = 0
    while True:
        i = raw.find("\\", pos)
        if i < 0:
            out.append(raw[pos:])
            return "".join(out)
        out.append(raw[pos:i])
        letter = raw[i + 1 : i + 2]
        if letter in ESCAPES:
            out.append(ESCAPES[letter])
            pos = i + 2
            continue
        if letter in HEX_ESCAPES:
            width = HEX_ESCAPES[letter]
            digits = raw[i + 2 : i + 2 + width]
            hex_run = len(digits) - len(digits.lstrip("0123456789abcdefABCDEF"))
            if hex_run == width:
                code = int(digits, 16)
                if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                    what = "a NUL character" if code == 0 else f"U+{code:X}, which is not a character"
                    raise BmcError(f"the escape \\{letter}{digits} is {what}", _at(span, i, 2 + width))
                out.append(chr(code))
                pos = i + 2 + width
                continue
            raise BmcError(f"the escape \\{letter} takes {width} hex digits", _at(span, i, 2 + hex_run),
                           notes=(f"escapes: {ESCAPE_LIST}",))
        raise BmcError(f"unknown escape \\{letter} in a string", _at(span, i, 2),
                       notes=(f"escapes: {ESCAPE_LIST}",
                              "write \\\\ for a backslash (or use '/' in paths)"))


def _at(span: Span, offset: int, width: int) -> Span:
    """The span of `width` characters at `offset` in a string literal's contents (after its opening quote)."""
    column = span.column + 1 + offset
    return Span(span.source, span.line, column, span.line, column + width)
