"""Grammar-based fuzzing: well-formed programs, and well-formed programs with one argument out of its domain.

Well-formed programs come from the differential tester's strategy (tests/differential/generate.py `programs()`),
whose `Program.render()` is a valid `.bm` file; bmc must accept, build and run every one. An out-of-domain program
is one of them with exactly one token replaced: an integer by 0, -1, 2**31, 2**63 or 10**30, a float by -1, 1.5, nan,
inf or 1e999, a dtype by one bmc does not have, a keyword argument renamed, a keyword argument added, an initializer
made invalid, a string replaced. bmc may accept it (many values are still in the domain) or refuse it with a located
error, nothing else.
"""

from __future__ import annotations

from hypothesis import strategies as st

from tests.differential.generate import programs
from tests.fuzz.tokens import Token, join, tokenize

DOMAIN = {
    "int": ["0", "-1", "-3", "2147483648", "9223372036854775808", "1" + "0" * 30, "1.5", "nan"],
    "float": ["-1.0", "1.5", "2.0", "nan", "inf", "-inf", "1e308", "1e999", "0.0", "-0.0", "1e-320", "-1e999"],
    "dtype": ["f16", "u8", "i8", "int", "float32", "bf16", "str", "f32x"],
    "keyword": ["bogus", "axis", "rate", "units", "lr", "init"],
    "extra": [", bogus = 1", ", axis = 7", ", rate = 2", ", units = -3", ", init = nan", ", 5"],
    "init": ["glorot_bogus", "constant(nan)", "uniform(1, -1)", "normal(std = -1)", "constant(1e999)", "he(3)"],
    "init_call": ["glorot_bogus", "constant", "he", "zeros"],  # the name of a call: uniform(...) -> he(...)
    "string": ['"bogus"', '""', '"\\u0000"'],
}
DTYPES = {"f32", "f64", "i32", "i64", "bool"}
INITS = {"glorot_uniform", "xavier", "glorot_normal", "he", "he_uniform", "he_normal", "normal", "uniform",
         "gaussian", "random", "zeros", "ones", "constant", "glorot"}


def domain_sites(tokens: list[Token]) -> list[tuple[int, str]]:
    """(token index, kind of replacement) for every token an out-of-domain value can replace or follow: numbers,
    strings, dtypes, initializers, keyword names, and the closing parenthesis of a call that has arguments."""
    sites = []
    calls: list[bool] = []  # for each open parenthesis: does it open a call's arguments?
    previous: Token | None = None
    after = [next((t for t in tokens[i + 1:] if t.kind != "space"), None) for i in range(len(tokens))]
    for i, t in enumerate(tokens):
        if t.text == "(":
            calls.append(previous is not None and previous.kind == "name")
        elif t.text == ")":
            is_call = calls.pop() if calls else False
            if is_call and previous is not None and previous.text != "(":
                sites.append((i, "extra"))
        elif t.kind == "number":
            sites.append((i, "int" if t.is_int else "float"))
        elif t.kind == "string":
            sites.append((i, "string"))
        elif t.kind == "name" and t.text in DTYPES:
            sites.append((i, "dtype"))
        elif t.kind == "name" and t.text in INITS:
            sites.append((i, "init_call" if after[i] is not None and after[i].text == "(" else "init"))
        elif t.kind == "name" and calls and calls[-1] and after[i] is not None and after[i].text == "=":
            sites.append((i, "keyword"))
        if t.kind != "space":
            previous = t
    return sites


def replace(tokens: list[Token], index: int, kind: str, value: str) -> str:
    tokens = list(tokens)
    old = tokens[index]
    tokens[index] = Token(old.kind, value + old.text if kind == "extra" else value)
    return join(tokens)


@st.composite
def well_formed(draw) -> tuple[str, str]:
    return draw(programs()).render(), "well-formed"


@st.composite
def out_of_domain(draw) -> tuple[str, str]:
    text = draw(programs()).render()
    tokens = tokenize(text)
    index, kind = draw(st.sampled_from(domain_sites(tokens)))
    value = draw(st.sampled_from(DOMAIN[kind]))
    return replace(tokens, index, kind, value), f"{kind}: {tokens[index].text!r} -> {value!r}"
