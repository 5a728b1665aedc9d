"""Pieces of C text: identifiers, literals, dtypes, dims and string literals.

Every `.bm` name reaches the generated source only through `c_identifier` (letters, digits and `_`, never a keyword)
or inside a `c_string` literal (every byte outside printable ASCII, quotes and backslashes escaped), so a `.bm` file
cannot inject code into model.cu.
"""

from __future__ import annotations

import math
import re

from bmc.ir import dims
from bmc.ir.types import Dim

C_TYPES = {"f32": "float", "f64": "double", "i32": "int", "i64": "int64_t", "bool": "bool"}
SIZES = {"f32": 4, "f64": 8, "i32": 4, "i64": 8, "bool": 1}

C_KEYWORDS = {
    "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break", "case", "catch",
    "char", "char16_t", "char32_t", "char8_t", "class", "compl", "concept", "const", "const_cast", "consteval",
    "constexpr", "constinit", "continue", "co_await", "co_return", "co_yield", "decltype", "default", "delete",
    "do", "double", "dynamic_cast", "else", "enum", "explicit", "export", "extern", "false", "float", "for",
    "friend", "goto", "if", "inline", "int", "long", "mutable", "namespace", "new", "noexcept", "not", "not_eq",
    "nullptr", "operator", "or", "or_eq", "private", "protected", "public", "register", "reinterpret_cast",
    "requires", "return", "short", "signed", "sizeof", "static", "static_assert", "static_cast", "struct",
    "switch", "template", "this", "thread_local", "throw", "true", "try", "typedef", "typeid", "typename",
    "union", "unsigned", "using", "virtual", "void", "volatile", "wchar_t", "while", "xor", "xor_eq", "restrict",
    "int8_t", "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t", "uint32_t", "uint64_t", "size_t", "main",
    "threadIdx", "blockIdx", "blockDim", "gridDim", "warpSize", "dim3", "NAN", "INFINITY",
}


def c_identifier(name: str) -> str:
    """A legal C identifier from a `.bm` name: other characters become `_`; never a keyword, nor a name of the
    generator's own forms (`bmc_...`, `v3`, `ax0`, `k12_softmax`, `run_...`): those get a `u_` prefix."""
    ident = re.sub(r"\W", "_", name, flags=re.ASCII) or "v"
    if ident[0].isdigit():
        ident = "v" + ident
    if ident in C_KEYWORDS or ident.startswith(("bmc_", "BMC_", "__", "cuda", "run_", "plan_")) or \
            re.fullmatch(r"(v|ax)\d+|k\d+_\w*", ident):  # the generator's own names: v3, ax0, k12_softmax
        ident = "u_" + ident
    return ident


def c_string(text: str) -> str:
    """A C string literal holding `text` (UTF-8), safe for any input."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def comment(text: str) -> str:
    """Text that is safe inside a `//` comment: one line, printable, no trailing backslash."""
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text.rstrip("\\ ")


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
