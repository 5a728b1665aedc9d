"""A Pygments lexer for `.bm` files (the docs' ```bm fences, `pygmentize -l bm`).

Pygments is optional for bmc: only this module imports it. The keywords are the grammar's (grammar/bm.lark); the
builtin names come from bmc's own tables (functions, initializers, optimizers, schedules), so a new builtin is
highlighted with no change here. Any other name followed by `(` is a call of a user-defined layer.
editors/vscode/syntaxes/bm.tmLanguage.json highlights the same keywords (tests/test_editor.py checks it).
"""

from __future__ import annotations

from typing import ClassVar

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation, String, Text, Whitespace

from bmc.frontend.builtins import BUILTINS
from bmc.init import ALIASES, INITIALIZERS
from bmc.ir.types import DTYPES
from bmc.train.config import OPTIMIZERS
from bmc.train.schedules import SCHEDULES

ITEM_KEYWORDS = ("model", "layer", "train")
STATEMENT_KEYWORDS = ("input", "target", "param", "output", "return")
KEYWORDS = (*ITEM_KEYWORDS, *STATEMENT_KEYWORDS)
CONSTANTS = ("true", "false")
BUILTIN_NAMES = tuple(sorted({*BUILTINS, *INITIALIZERS, *ALIASES, *OPTIMIZERS, *SCHEDULES}, key=lambda n: (-len(n), n)))

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
FLOAT = r"(\d+\.\d*|\.\d+)([eE][-+]?\d+)?|\d+[eE][-+]?\d+"
ESCAPE = r"\\(N\{[^}\n]*\}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|[0-7]{1,3}|[^\n])"


class BmLexer(RegexLexer):
    """The `.bm` language of bmc, a declarative graph compiler for neural networks."""

    name = "bm"
    aliases: ClassVar[list[str]] = ["bm", "bmc"]
    filenames: ClassVar[list[str]] = ["*.bm"]
    mimetypes: ClassVar[list[str]] = ["text/x-bm"]

    tokens: ClassVar[dict] = {
        "root": [
            (r"\s+", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (rf"\b(model|train)(\s+)({NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (rf"\b(layer)(\s+)({NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (words(KEYWORDS, prefix=r"\b", suffix=r"\b"), Keyword),
            (words(CONSTANTS, prefix=r"\b", suffix=r"\b"), Keyword.Constant),
            (words(DTYPES, prefix=r"\b", suffix=r"(?=\s*\[)"), Keyword.Type),
            (r"(:)(\s*)(int|float)\b", bygroups(Punctuation, Whitespace, Keyword.Type)),
            (r'"', String.Double, "string"),
            (FLOAT, Number.Float),
            (r"\d+", Number.Integer),
            (words(BUILTIN_NAMES, prefix=r"\b", suffix=r"\b"), Name.Builtin),
            (rf"{NAME}(?=\s*\()", Name.Function),
            (NAME, Name),
            (r"\*\*|==|!=|<=|>=|[-+*/@<>=~]", Operator),
            (r"\.\.\.", Punctuation),
            (r"[()\[\]{},:;]", Punctuation),
        ],
        "string": [
            (ESCAPE, String.Escape),
            (r'[^"\\\n]+', String.Double),
            (r'"', String.Double, "#pop"),
            (r"\n", Error, "#pop"),  # a string ends on its line
            (r".", Text),
        ],
    }
