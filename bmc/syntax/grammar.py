"""The `.bm` grammar (grammar/bm.lark, shipped as bmc.grammar) as one LALR parser, built once."""

from __future__ import annotations

import functools
from importlib import resources

import lark


@functools.cache
def parser() -> lark.Lark:
    grammar = resources.files("bmc.grammar").joinpath("bm.lark").read_text(encoding="utf-8")
    return lark.Lark(grammar, start="module", parser="lalr", propagate_positions=True, maybe_placeholders=True)
