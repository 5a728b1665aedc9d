"""Pieces of C text: identifiers, literals, dtypes, dims, string literals and comments.

Text from outside bmc (`.bm` names, dims, the source file's name and lines) reaches model.cu only through these
functions: as an identifier from `c_identifier`, inside a string literal from `c_string`, or inside a `//` comment
from `comment`. None of them can end the literal or comment it writes, so the code of model.cu is bmc's own whatever
the input.

Every identifier made from a `.bm` name (values and symbolic dims alike) starts with USER_PREFIX. A blacklist could
not work in C: the headers model.cu includes declare thousands of names and macros (`memcpy`, `exp`, `y0`, `EOF`,
`u_int`, `linux`), and they differ between toolchains. The generated code's own names never start with the prefix,
and tests/test_hostile_names.py checks, with the preprocessor of every toolchain present (g++ with the emulator's
header, nvcc), that no name the headers declare does.
"""

from __future__ import annotations

import math
import re

from bmc.ir import dims
from bmc.ir.types import Dim

C_TYPES = {"f32": "float", "f64": "double", "i32": "int", "i64": "int64_t", "bool": "bool"}
SIZES = {"f32": 4, "f64": 8, "i32": 4, "i64": 8, "bool": 1}
USER_PREFIX = "v_"


def c_word(text: str) -> str:
    """Letters, digits and single underscores: `.bm` text as a part of an identifier (a kernel's name, `k3_h_W`).
    Runs of `_` become one, since an identifier containing `__` is reserved to the C++ implementation."""
    return re.sub(r"_+", "_", re.sub(r"\W", "_", text, flags=re.ASCII))


def c_identifier(name: str) -> str:
    """The C identifier for a `.bm` name: USER_PREFIX and the name as a `c_word` (`h.W` -> `v_h_W`, `N` -> `v_N`,
    `memcpy` -> `v_memcpy`, `__init__` -> `v_init_`). Different names may meet (`a.b`, `a_b`): the Namer then
    keeps them apart."""
    return c_word(USER_PREFIX + name)


def c_string(text: str) -> str:
    """A C string literal holding `text` (UTF-8; a lone surrogate as its `\\udcXX` escape), safe for any input:
    every byte outside printable ASCII is an octal escape, and quotes, backslashes and `?` (trigraphs) are escaped."""
    out = []
    for byte in text.encode("utf-8", "backslashreplace"):
        ch = chr(byte)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def comment(text: str) -> str:
    """Text that is safe inside a `//` comment: one line of printable characters (a newline, `\\r`, U+2028 or a
    bidirectional control becomes `?`), and no backslash or `??/` trigraph at its end, which would splice the next
    line into the comment."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    while True:
        kept = text.rstrip(" \\")
        kept = kept[:-3] if kept.endswith("??/") else kept
        if kept == text:
            return text
        text = kept


def literal(value: float | int | bool, dtype: str) -> str:
    """A C literal of the given dtype (float constants keep the `f` suffix, so f32 math stays in f32)."""
    if dtype in ("f32", "f64"):
        v = float(value)
        suffix = "f" if dtype == "f32" else ""
        cast = "" if dtype == "f32" else "(double)"
        if math.isnan(v):
            return f"{cast}NAN"
        if math.isinf(v):
            return f"{cast}INFINITY" if v > 0 else f"(-{cast}INFINITY)"
        text = repr(v) + suffix
        return f"({text})" if text.startswith("-") else text
    if dtype == "bool":
        return "true" if value else "false"
    text = f"INT64_C({int(value)})" if dtype == "i64" else str(int(value))
    return f"({text})" if text.startswith("-") else text


def dim(d: Dim, symbols: dict[str, str]) -> str:
    """A dim as a C integer expression over the symbols' C names: 784, N, (4 * N * T)."""
    if isinstance(d, int):
        return str(d)
    static, syms = dims.factors(d)
    factors = ([str(static)] if static != 1 else []) + [symbols[s] for s in syms]
    return factors[0] if len(factors) == 1 else "(" + " * ".join(factors) + ")"


def product(shape: tuple[Dim, ...] | list[Dim]) -> Dim:
    return dims.product(list(shape))


def strides(shape: tuple[Dim, ...]) -> list[Dim]:
    """Row-major strides in elements, as canonical dims."""
    out: list[Dim] = []
    for k in range(len(shape)):
        out.append(product(shape[k + 1:]))
    return out


def flat_offset(index: str, sizes: list[Dim] | tuple[Dim, ...], axis_strides: list[Dim], fmt) -> str:
    """sum over axes of coordinate * stride for a row-major flat `index` over `sizes`, merging axes that stay
    contiguous (so a same-shape read is just `index`, a bias read `index % M`); `fmt` formats a dim."""
    merged: list[list[Dim]] = []  # [size, stride], innermost first
    for size, stride in zip(reversed(list(sizes)), reversed(axis_strides), strict=True):
        if size == 1:
            continue
        if merged:
            prev_size, prev_stride = merged[-1]
            if (stride == 0 and prev_stride == 0) or (prev_stride != 0 and stride == product([prev_stride,
                                                                                               prev_size])):
                merged[-1][0] = product([prev_size, size])
                continue
        merged.append([size, stride])
    terms, inner = [], 1
    for k, (size, stride) in enumerate(merged):
        if stride != 0:
            e = index if inner == 1 else f"{index} / {fmt(inner)}"
            if k < len(merged) - 1:
                e = f"({e}) % {fmt(size)}" if inner != 1 else f"{index} % {fmt(size)}"
            elif inner != 1:
                e = f"({e})"
            terms.append(e if stride == 1 else f"{e} * {fmt(stride)}")
        inner = product([inner, size])
    return " + ".join(terms) or "0"
