"""The `.bm` grammar (grammar/bm.lark, shipped as bmc.grammar) as one LALR parser, made once per process.

Building the LALR tables takes about 0.05 s, a fifth of a `bmc build`, so the package ships them beside the grammar
(grammar/bm.tables.pickle, written by `python -m bmc.syntax.tables`); loading them takes 5 ms. They are used only
when their key matches this grammar text, these parser options and the installed lark's version; otherwise the
parser is built from the grammar as before. Nothing is ever written at run time.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import pickle
from importlib import resources

import lark

GRAMMAR = "bm.lark"
TABLES = "bm.tables.pickle"  # {"key": ..., "data": ..., "memo": ...}: what Lark.save writes, as plain data
OPTIONS = {"start": "module", "parser": "lalr", "propagate_positions": True, "maybe_placeholders": True}
FORMAT = 1  # of the tables file


def grammar_text() -> str:
    return resources.files("bmc.grammar").joinpath(GRAMMAR).read_text(encoding="utf-8")


def tables_key(grammar: str) -> str:
    """What the tables were made from: the grammar, the options and lark's version (whose serialized form may
    change between releases)."""
    made_from = {"format": FORMAT, "lark": lark.__version__, "options": OPTIONS, "grammar": grammar}
    return hashlib.sha256(json.dumps(made_from, sort_keys=True).encode("utf-8")).hexdigest()


@functools.cache
def parser() -> lark.Lark:
    grammar = grammar_text()
    return shipped(grammar) or build(grammar)


def build(grammar: str) -> lark.Lark:
    """The parser made from the grammar text (what `parser` falls back on)."""
    return lark.Lark(grammar, **OPTIONS)


def shipped(grammar: str) -> lark.Lark | None:
    """The parser made from the shipped tables, or None when they are missing or were made from something else."""
    saved = read_tables()
    if saved is None or saved.get("key") != tables_key(grammar):
        return None
    return lark.Lark._load_from_dict(saved["data"], saved["memo"])  # what lark's own standalone parsers call


def read_tables() -> dict | None:
    try:
        raw = resources.files("bmc.grammar").joinpath(TABLES).read_bytes()
        saved = _PlainData(io.BytesIO(raw)).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


class _PlainData(pickle.Unpickler):
    """Reads dicts, lists, tuples, strings, numbers, booleans and None only: a class or function in the file is an
    error, never imported or called."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"{TABLES} holds plain data only, not {module}.{name}")
