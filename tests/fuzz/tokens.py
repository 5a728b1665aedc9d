"""A tokenizer for `.bm` text that knows nothing of bmc's grammar: enough to mutate whole tokens (numbers, names,
strings, comments, operators) rather than bytes, and to find the sites of one out-of-domain argument."""

from __future__ import annotations

import re
from dataclasses import dataclass

TOKEN = re.compile(r"""
    (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
  | (?P<space>\s+)
  | (?P<op>\*\*|==|!=|<=|>=|\.\.\.|.)
""", re.VERBOSE | re.DOTALL)


@dataclass(frozen=True)
class Token:
    kind: str  # comment, string, number, name, space, op
    text: str

    @property
    def is_int(self) -> bool:
        return self.kind == "number" and self.text.isdigit()


def tokenize(text: str) -> list[Token]:
    return [Token(m.lastgroup or "op", m.group()) for m in TOKEN.finditer(text)]


def join(tokens: list[Token]) -> str:
    return "".join(t.text for t in tokens)


def significant(tokens: list[Token]) -> list[int]:
    """Indices of the tokens that are not white space."""
    return [i for i, t in enumerate(tokens) if t.kind != "space"]
