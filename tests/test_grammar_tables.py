"""The LALR tables shipped beside the grammar (grammar/bm.tables.pickle, issue 14): made from the grammar as it is
now, ignored when they are not, and a parser made from them reads every file as one built from the grammar does:
the same trees, tokens and syntax errors."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch

import lark
import pytest

from bmc.diagnostics import BmcError
from bmc.syntax import explain, grammar, parse, tables
from tests.conftest import EXAMPLES, ROOT

FILES = sorted([*EXAMPLES.glob("*.bm"), *(ROOT / "tests" / "diagnostics").glob("*.bm"),
                *(ROOT / "tests" / "warnings").glob("*.bm")])


def test_the_shipped_tables_match_the_grammar():
    why = tables.stale()
    assert why is None, f"{why}: run `{tables.COMMAND}` and commit grammar/{grammar.TABLES}"


def test_the_tables_ship_in_the_wheel():
    """tests/test_packaging.py builds the wheel and compares its source files with the tree; the tables are data."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["bmc.grammar"]
    assert any(fnmatch(grammar.TABLES, p) for p in patterns), f"add {grammar.TABLES} to bmc.grammar's package-data"


def test_tables_made_from_another_grammar_are_not_used():
    assert grammar.shipped(grammar.grammar_text() + "\n// edited\n") is None


def test_without_tables_the_parser_is_built(monkeypatch):
    monkeypatch.setattr(grammar, "read_tables", lambda: None)
    p = grammar.parser.__wrapped__()  # not the cached one
    assert p.parse("model m { }").data == "module"


@pytest.fixture(scope="module")
def parsers() -> tuple[lark.Lark, lark.Lark]:
    text = grammar.grammar_text()
    shipped = grammar.shipped(text)
    if shipped is None:
        pytest.fail(f"{tables.stale()}: run `{tables.COMMAND}`")
    return shipped, grammar.build(text)


def outcome(p: lark.Lark, text: str, monkeypatch) -> tuple:
    """What bmc makes of `text` with parser `p`: the Lark tree with every position, the formatter's tokens, and the
    AST or the rendered syntax error."""
    with monkeypatch.context() as m:
        m.setattr(grammar, "parser", lambda: p)
        m.setattr(explain, "_parser", lambda: p)
        try:
            tree = p.parse(text)
            trees = [(t.data, *(getattr(t.meta, k, None) for k in ("line", "column", "end_line", "end_column")),
                      [(c.type, str(c), c.line, c.column) if isinstance(c, lark.Token) else c and c.data
                       for c in t.children]) for t in tree.iter_subtrees_topdown()]
        except lark.UnexpectedInput as e:
            trees = [type(e).__name__, e.line, e.column]
        try:
            tokens = [(t.type, str(t), t.line, t.column) for t in p.lex(text, dont_ignore=True)]
        except lark.UnexpectedInput as e:
            tokens = [type(e).__name__, e.line, e.column]
        try:
            result = repr(parse(text, "f.bm"))
        except BmcError as e:
            result = e.render()
    return trees, tokens, result


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_shipped_parser_reads_files_as_the_built_one(parsers, path, monkeypatch):
    shipped, built = parsers
    text = path.read_text(encoding="utf-8")
    assert outcome(shipped, text, monkeypatch) == outcome(built, text, monkeypatch)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.bm")), ids=lambda p: p.name)
def test_the_shipped_parser_reports_syntax_errors_as_the_built_one(parsers, path, monkeypatch):
    """Every example cut short, and with a stray character, at a dozen places: the same error, in the same words."""
    shipped, built = parsers
    text = path.read_text(encoding="utf-8")
    for cut in range(0, len(text), len(text) // 12 + 1):
        for broken in (text[:cut], text[:cut] + "^" + text[cut:], text[:cut] + ") " + text[cut:]):
            assert outcome(shipped, broken, monkeypatch) == outcome(built, broken, monkeypatch), broken
