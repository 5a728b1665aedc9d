"""Mutational fuzzing: every `.bm` file of the repository, changed a few bytes or tokens at a time.

A mutant is one to three mutations of one corpus file, drawn from a `random.Random` seeded by the campaign's seed
and the mutant's index, so a run is reproducible input by input. Mutations work on bytes (flips, invalid UTF-8,
truncation), on tokens (delete, duplicate, swap, splice from other files), on numbers (extremes: 0, -1, 2**31,
2**63, 1e308, 1e999, nan, a 5,000-digit integer), on names (keywords and names of the generated code, look-alike
Unicode), and on structure (deep nesting, very long lines, duplicated or shuffled lines); some insert payloads that
would leave a marker file if executed (payloads.py), in comments, strings, names or the file name.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bmc.compiler import MAX_SOURCE_BYTES
from tests.fuzz import payloads
from tests.fuzz.tokens import Token, join, significant, tokenize

ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIRS = ("examples", "tests/diagnostics", "tests/warnings")

NUMBERS = ["0", "-1", "1", "-0", "0.0", "2", "3", "1.5", "0.5", "-0.5", "65536", "1e6", "2147483647", "2147483648",
           "4294967296", "9223372036854775807", "9223372036854775808", "18446744073709551616", "1e308",
           "1.7976931348623157e308", "1e309", "1e999", "-1e999", "1e-320", "1e-400", "nan", "inf", "-inf", "NaN",
           "1" + "0" * 5000, "9" * 400 + ".5", "0.1e-99999", "1e99999999999", "00", "0x10", "1_000", "1e", ".5", "5."]
NAMES = ["np", "os", "sys", "params", "state", "batch", "lr", "rng", "self", "None", "True", "class", "def", "lambda",
         "import", "__import__", "__builtins__", "t0", "forward", "train_step", "DTYPE", "INPUTS", "_softmax", "N",
         "T", "loss", "input", "output", "target", "param", "model", "layer", "return", "train", "repeat", "f32",
         "i64", "bool", "relu", "dense", "softmax", "_", "__", "é", "ĥidden", "ＡＢ", "ℌ", "ﬁ", "𝓍", "аb", "x\u200b",
         "_" * 300, "a" * 5000]
CHARS = ["\x00", "\x01", "\x07", "\x08", "\x1b", "\x7f", "\x85", "\xa0", "\u00ad", "\u200b", "\u200d", "\u202e",
         "\u2028", "\u2029", "\ufeff", "\ufffd", "\U0001f600", "\u0301", "\t", "\r", "\x0b", "\x0c", "é", "中",
         "\uffff", "\U0010ffff", "\\", "\"", "'", "{", "}", "`", "$", "%s", "{0}", "{{", "}}"]
BYTES = [b"\xff", b"\xfe", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf", b"\x00", b"\xe2\x80", b"\xf4\x90\x80\x80"]
VALID_SHARE = 0.75  # mutants of files that compile reach the later stages more often
DEPTHS = [10, 100, 500, 1000, 3000, 10000, 50000]
FILE_NAMES = ["input.bm", "in put.bm", "é.bm", "中文.bm", "x'y.bm", "x\"y.bm", "x\\y.bm", "x\ny.bm", "x\ry.bm",
              "x\ty.bm", "-x.bm", "x.bm.bm", "noext", ".bm", "{{x}}.bm", "%s.bm", "x\u202eyb.bm", "a" * 250 + ".bm",
              "x\x1b[31m.bm", "x\u2028y.bm"]


@dataclass
class Mutant:
    index: int
    origin: str  # the corpus file it was made from
    mutations: list[str]
    data: bytes
    filename: str


class Context:
    """What mutations draw from: the random stream, every corpus token, the input's id and the markers folder."""

    def __init__(self, rng: random.Random, pool: list[Token], job_id: str, markers: Path):
        self.rng, self.pool, self.job_id, self.markers = rng, pool, job_id, markers
        self.filename = "input.bm"


Mutation = Callable[[Context, str], str | bytes]


def corpus(root: Path = ROOT) -> dict[str, str]:
    files = sorted(p for d in CORPUS_DIRS for p in (root / d).rglob("*.bm"))
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in files}


# ---- bytes -----------------------------------------------------------------------------------------------------


def flip_bytes(c: Context, text: str) -> bytes:
    data = bytearray(text.encode("utf-8"))
    for _ in range(c.rng.randint(1, 4)):
        if data:
            data[c.rng.randrange(len(data))] = c.rng.randrange(256)
    return bytes(data)


def insert_bytes(c: Context, text: str) -> bytes:
    data = text.encode("utf-8")
    at = c.rng.randint(0, len(data))
    return data[:at] + c.rng.choice(BYTES) + data[at:]


def truncate(c: Context, text: str) -> str:
    return text[: c.rng.randint(0, len(text))]


def delete_span(c: Context, text: str) -> str:
    at = c.rng.randint(0, len(text))
    return text[:at] + text[at + c.rng.randint(1, 40):]


# ---- tokens ----------------------------------------------------------------------------------------------------


def _edit_token(c: Context, text: str, kinds: tuple[str, ...], edit: Callable[[Token], str]) -> str:
    tokens = tokenize(text)
    sites = [i for i in significant(tokens) if not kinds or tokens[i].kind in kinds]
    if not sites:
        return text
    i = c.rng.choice(sites)
    tokens[i] = Token(tokens[i].kind, edit(tokens[i]))
    return join(tokens)


def delete_token(c: Context, text: str) -> str:
    return _edit_token(c, text, (), lambda t: "")


def duplicate_token(c: Context, text: str) -> str:
    return _edit_token(c, text, (), lambda t: t.text + " " + t.text)


def splice_token(c: Context, text: str) -> str:
    return _edit_token(c, text, (), lambda t: c.rng.choice(c.pool).text)


def swap_tokens(c: Context, text: str) -> str:
    tokens = tokenize(text)
    sites = significant(tokens)
    if len(sites) < 2:
        return text
    i, j = c.rng.sample(sites, 2)
    tokens[i], tokens[j] = tokens[j], tokens[i]
    return join(tokens)


def extreme_number(c: Context, text: str) -> str:
    return _edit_token(c, text, ("number",), lambda t: c.rng.choice(NUMBERS))


def tricky_name(c: Context, text: str) -> str:
    return _edit_token(c, text, ("name",), lambda t: c.rng.choice(NAMES))


def insert_char(c: Context, text: str) -> str:
    ch = c.rng.choice(CHARS) * c.rng.choice([1, 1, 2, 100])
    if c.rng.random() < 0.5:  # inside a token
        return _edit_token(c, text, ("name", "number", "string", "comment"),
                           lambda t: t.text[: len(t.text) // 2] + ch + t.text[len(t.text) // 2:])
    at = c.rng.randint(0, len(text))
    return text[:at] + ch + text[at:]


# ---- structure -------------------------------------------------------------------------------------------------


def deep_nesting(c: Context, text: str) -> str:
    d = c.rng.choice(DEPTHS)
    forms = [lambda t: "(" * d + t + ")" * d, lambda t: "relu(" * d + t + ")" * d, lambda t: "-" * d + t,
             lambda t: "[" * d + t + "]" * d, lambda t: t + (" + " + t) * d, lambda t: t + " ** 1" * d,
             lambda t: "sum(" * d + t + ")" * d, lambda t: "{" * d + t + "}" * d]
    form = c.rng.choice(forms)
    return _edit_token(c, text, ("name", "number"), lambda t: form(t.text))


def long_line(c: Context, text: str) -> str:
    n = c.rng.choice([1000, 100_000, 1_000_000])
    forms = [lambda t: "a" * n, lambda t: "9" * n, lambda t: '"' + "s" * n + '"', lambda t: t + " # " + "c" * n,
             lambda t: t + " " * n]
    form = c.rng.choice(forms)
    return _edit_token(c, text, ("name", "number", "string", "op"), lambda t: form(t.text))


def shuffle_lines(c: Context, text: str) -> str:
    lines = text.split("\n")
    if len(lines) < 2:
        return text
    i, j = c.rng.randrange(len(lines)), c.rng.randrange(len(lines))
    action = c.rng.choice(["swap", "duplicate", "delete", "repeat"])
    if action == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif action == "duplicate":
        lines.insert(j, lines[i])
    elif action == "delete":
        del lines[i]
    else:
        lines[i:i + 1] = [lines[i]] * c.rng.choice([2, 50, 2000])
    return "\n".join(lines)


# ---- code-execution payloads -------------------------------------------------------------------------------------


def payload(c: Context, text: str) -> str:
    """A payload in a comment, a string, a name or between tokens; or a file name that is one."""
    code = c.rng.choice(payloads.all_payloads(c.markers, c.job_id))
    where = c.rng.choice(["comment", "string", "name", "anywhere", "file"])
    if where == "file":
        c.filename = c.rng.choice(payloads.file_names(c.job_id))
        return text
    if where == "comment":
        lines = text.split("\n")
        i = c.rng.randrange(len(lines))
        lines[i] += " # " + code
        return "\n".join(lines)
    if where == "string":
        tokens = tokenize(text)
        strings = [i for i, t in enumerate(tokens) if t.kind == "string"]
        if strings:
            i = c.rng.choice(strings)
            tokens[i] = Token("string", '"' + code.replace('"', '\\"') + '"')
            return join(tokens)
        return _edit_token(c, text, ("number",), lambda t: '"' + code.replace('"', '\\"') + '"')
    if where == "name":
        return _edit_token(c, text, ("name",), lambda t: t.text + code)
    at = c.rng.randint(0, len(text))
    return text[:at] + code + text[at:]


def file_name(c: Context, text: str) -> str:
    c.filename = c.rng.choice(FILE_NAMES)
    return text


MUTATIONS: dict[str, tuple[Mutation, int]] = {  # name -> (mutation, weight)
    "flip_bytes": (flip_bytes, 2), "insert_bytes": (insert_bytes, 2), "truncate": (truncate, 1),
    "delete_span": (delete_span, 1), "delete_token": (delete_token, 4), "duplicate_token": (duplicate_token, 3),
    "splice_token": (splice_token, 4), "swap_tokens": (swap_tokens, 3), "extreme_number": (extreme_number, 8),
    "tricky_name": (tricky_name, 5), "insert_char": (insert_char, 4), "deep_nesting": (deep_nesting, 2),
    "long_line": (long_line, 1), "shuffle_lines": (shuffle_lines, 3), "payload": (payload, 4),
    "file_name": (file_name, 1),
}


def mutants(seed: int, count: int, markers: Path, root: Path = ROOT, start: int = 0):
    """`count` mutants, reproducible from (seed, index)."""
    files = corpus(root)
    valid = sorted(n for n in files if not n.startswith("tests/diagnostics"))  # examples and warnings compile
    invalid = sorted(n for n in files if n.startswith("tests/diagnostics"))  # each one error, on purpose
    pool = [t for text in files.values() for t in tokenize(text) if t.kind != "space"]
    kinds = list(MUTATIONS)
    weights = [MUTATIONS[k][1] for k in kinds]
    for index in range(start, start + count):
        rng = random.Random(f"{seed}:{index}")
        origin = rng.choice(valid if rng.random() < VALID_SHARE or not invalid else invalid)
        c = Context(rng, pool, f"m{index}", markers)
        text: str | bytes = files[origin]
        applied = []
        for kind in rng.choices(kinds, weights, k=rng.choice([1, 1, 2, 3])):
            if isinstance(text, bytes):  # byte mutations come last: the others work on text
                break
            text = MUTATIONS[kind][0](c, text)
            applied.append(kind)
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        # a long line inside deep nesting can reach a gigabyte: past bmc's source limit any size is refused alike,
        # so the mutant is cut to just over it (the harness does not ship a gigabyte to a worker)
        data = data[:MAX_SOURCE_BYTES + 1024]
        yield Mutant(index, origin, applied, data, c.filename)
