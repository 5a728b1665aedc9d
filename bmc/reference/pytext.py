"""Pieces of Python text for the generated module: identifiers, literals, docstrings and comments.

Text from outside bmc (`.bm` names, dims, the source file's name and lines, string values) reaches the generated
module only through these functions: as an identifier from `identifier`, inside a string literal from `literal`,
inside a docstring from `doc`, or as a comment from `comment`. None of them can end the literal, docstring or comment
it writes, so the module's code is bmc's own whatever the input.

Identifiers keep their `.bm` spelling where that is safe, which can be proven here because a Python module's namespace
is known: the generated code's own names are MODULE_NAMES, names that start with `_` (the helpers copied from
kernels.py, scan functions) and the Namer's temporaries (`t0`, which the Namer keeps apart from every other name);
besides those, code can meet only keywords and builtins. `identifier` never returns any of these.
"""

from __future__ import annotations

import builtins
import keyword
import math
import re

# Every name templates/module.py.j2 and codegen.py define or take as arguments, other than `_`-prefixed ones;
# tests/test_hostile_names.py checks that a generated module defines no other.
MODULE_NAMES = frozenset({
    "np", "os", "MODEL", "SOURCE", "SOURCE_SHA256", "BMC_VERSION", "DTYPE", "INPUTS", "OUTPUTS", "PARAMS", "STATE",
    "HYPER", "PREPROCESS", "InputError", "forward", "train_step", "gradients", "apply", "evaluate", "load_params",
    "load_state", "params", "state", "batch", "grads", "feeds", "run",
})
TAKEN = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) | MODULE_NAMES


def identifier(name: str) -> str:
    """The Python identifier for a `.bm` name (value, dim, scan body): itself where that is free, else a spelling
    that cannot meet the module's own names, a keyword or a builtin. Dots and other characters become `_`; a name
    that starts with `_` or a digit gets a `v` in front (`_softmax` -> `v_softmax`); a taken name gets `_` after it
    until it is free (`lambda` -> `lambda_`, `np` -> `np_`, `float` -> `float_`)."""
    ident = re.sub(r"\W", "_", name, flags=re.ASCII)
    if not ident[:1].isalpha():
        ident = "v" + ident
    while ident in TAKEN:
        ident += "_"
    return ident


def literal(value: object) -> str:
    """A Python literal for data (str, numbers, bools, None, and lists, tuples and dicts of them): repr, which
    escapes every quote, backslash and non-printable character of a string, except that inf and nan, which repr
    writes as names, become `float('inf')` and `float('nan')`."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float('{value}')"
    if value is None or isinstance(value, str | bool | int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Python literal for a {type(value).__name__}")


def doc(text: str) -> str:
    """Text for inside a `\"\"\"` docstring: newlines stay, every quote, backslash and other non-printable
    character is escaped, so the text cannot end the docstring."""
    return "".join(ch if ch == "\n" or (ch.isprintable() and ch not in '"\\') else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    return "\\" + ch if ch in '"\\' else ch.encode("unicode_escape").decode("ascii")


def comment(text: str) -> str:
    """A `# ...` comment holding text on one line: every non-printable character (newlines, `\\r`, form feeds,
    U+2028, bidirectional controls, lone surrogates) becomes `?`."""
    return "# " + "".join(c if c.isprintable() else "?" for c in text)
