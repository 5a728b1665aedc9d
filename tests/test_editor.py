"""Editor support: the Pygments lexer (bmc/syntax/highlight.py) and the VS Code extension (editors/vscode)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.test_format import FORMATTABLE

pygments = pytest.importorskip("pygments")
from pygments.token import Error, Keyword, Name, Number, String  # noqa: E402

from bmc.frontend.builtins import BUILTINS  # noqa: E402
from bmc.ir.types import DTYPES  # noqa: E402
from bmc.syntax.highlight import BUILTIN_NAMES, KEYWORDS, BmLexer  # noqa: E402

VSCODE = ROOT / "editors" / "vscode"
GRAMMAR = VSCODE / "syntaxes" / "bm.tmLanguage.json"


def lexed(text: str) -> list[tuple]:
    return [(kind, value) for kind, value in BmLexer().get_tokens(text) if value.strip()]


# ---- the Pygments lexer ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FORMATTABLE)
def test_the_lexer_reads_every_file_without_an_error_token(name):
    text = (ROOT / name).read_text(encoding="utf-8")
    tokens = list(BmLexer(stripnl=False).get_tokens(text))
    assert [v for k, v in tokens if k in Error] == []
    assert "".join(v for _, v in tokens) == text  # every character is in a token


def test_the_lexer_tells_the_parts_of_a_file_apart():
    text = (ROOT / "examples" / "residual_mlp.bm").read_text(encoding="utf-8")
    kinds = {value: kind for kind, value in lexed(text)}
    assert kinds["layer"] in Keyword and kinds["model"] in Keyword and kinds["param"] in Keyword
    assert kinds["residual"] is Name.Function  # a user-defined layer, declared and called
    assert kinds["residual_mlp"] is Name.Class
    assert kinds["f32"] in Keyword.Type and kinds["int"] in Keyword.Type
    assert kinds["relu"] is Name.Builtin and kinds["he"] is Name.Builtin and kinds["adam"] is Name.Builtin
    assert kinds["1e-3"] in Number.Float and kinds["64"] in Number.Integer
    assert kinds["# an explicit L2 penalty on one weight"] in pygments.token.Comment
    assert kinds["x"] is Name and kinds["@"] in pygments.token.Operator


def test_strings_and_escapes():
    tokens = lexed('train m { data = "caf\\u00e9\\n.npz" }')
    assert (String.Escape, "\\u00e9") in tokens and (String.Double, '"') in tokens
    assert (Error, "\n") in list(BmLexer().get_tokens('data = "never closed\n'))  # a string ends on its line


def test_builtin_names_come_from_bmc():
    assert set(BUILTINS) <= set(BUILTIN_NAMES)
    assert lexed("h = dense(x, 3)")[2] == (Name.Builtin, "dense")


def test_registered_with_pygments_when_installed():
    from pygments.lexers import find_lexer_class_for_filename, get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_by_name("bm")
    except ClassNotFound:
        pytest.skip("the pygments.lexers entry point is not installed (pip install -e . after adding it)")
    assert isinstance(lexer, BmLexer) and find_lexer_class_for_filename("model.bm") is BmLexer


def test_only_the_highlighter_imports_pygments():
    importers = [p.relative_to(ROOT).as_posix() for p in (ROOT / "bmc").rglob("*.py")
                 if re.search(r"^\s*(import|from) pygments\b", p.read_text(encoding="utf-8"), re.M)]
    assert importers == ["bmc/syntax/highlight.py"]
    code = ("import sys; sys.modules['pygments'] = None; import bmc, bmc.cli, bmc.syntax.format; "
            "print(bmc.compile('examples/mlp.bm').ir()[:5])")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("graph"), result.stderr


# ---- the VS Code extension ------------------------------------------------------------------------------------------

def patterns(rule: dict):
    """Every rule of the grammar, nested ones included."""
    yield rule
    for sub in rule.get("patterns", []):
        yield from patterns(sub)


def grammar() -> dict:
    return json.loads(GRAMMAR.read_text(encoding="utf-8"))


def all_rules() -> list[dict]:
    g = grammar()
    return [r for top in [*g["patterns"], *g["repository"].values()] for r in patterns(top)]


def test_the_extension_files_are_valid_json_and_point_at_each_other():
    manifest = json.loads((VSCODE / "package.json").read_text(encoding="utf-8"))
    (language,) = manifest["contributes"]["languages"]
    (contributed,) = manifest["contributes"]["grammars"]
    assert language["extensions"] == [".bm"] and contributed["language"] == language["id"] == "bm"
    assert (VSCODE / contributed["path"]).resolve() == GRAMMAR
    assert contributed["scopeName"] == grammar()["scopeName"] == "source.bm"
    config = json.loads((VSCODE / language["configuration"]).read_text(encoding="utf-8"))
    assert config["comments"]["lineComment"] == "#"
    assert ["(", ")"] in config["brackets"] and ["[", "]"] in config["brackets"] and ["{", "}"] in config["brackets"]
    g = grammar()
    for include in (r["include"] for r in all_rules() if "include" in r):
        assert include.removeprefix("#") in g["repository"], include


def test_every_grammar_regex_compiles():
    regexes = [r[key] for r in all_rules() for key in ("match", "begin", "end") if key in r]
    assert len(regexes) >= 10
    for regex in regexes:
        re.compile(regex)  # Oniguruma's syntax, but these use only what Python's re shares with it


def test_the_grammar_has_the_lexers_keywords_and_dtypes():
    g = grammar()["repository"]
    keywords = re.fullmatch(r"\\b\((.*)\)\\b", g["keyword"]["match"]).group(1).split("|")
    assert sorted(keywords) == sorted(KEYWORDS)
    dtypes = re.match(r"\\b\(([^)]*)\)", g["type"]["patterns"][0]["match"]).group(1).split("|")
    assert sorted(dtypes) == sorted(DTYPES)


def scopes(line: str) -> dict[str, str]:
    """A small TextMate scanner: at each point the rule matching earliest wins (the first of equals); enough for
    single-line rules and the string rule."""
    rules = [r for top in grammar()["patterns"] for r in patterns(grammar()["repository"][top["include"][1:]])
             if "match" in r or "begin" in r]
    found: dict[str, str] = {}
    pos = 0
    while pos < len(line):
        best = None
        for rule in rules:
            regex = rule["match"] if "match" in rule else rule["begin"] + r'(\\.|[^"\\])*(' + rule["end"] + ")"
            m = re.compile(regex, re.M).search(line, pos)
            if m and m.end() > m.start() and (best is None or m.start() < best[0].start()):
                best = (m, rule)
        if best is None:
            break
        m, rule = best
        if "captures" in rule:
            found.update({m.group(int(k)): v["name"] for k, v in rule["captures"].items() if m.group(int(k))})
        else:
            found[m.group()] = rule["name"]
        pos = m.end()
    return found


def test_the_grammar_scopes_a_model():
    got = scopes('model mlp(features = 784) { input image: f32[N, features] h = relu(dense(image, 1e-3))  # c')
    assert got["model"] == "storage.type.bm" and got["mlp"] == "entity.name.type.bm"
    assert got["input"] == "keyword.other.bm" and got["f32"] == "support.type.dtype.bm"
    assert got["relu"] == got["dense"] == "entity.name.function.call.bm"
    assert got["784"] == got["1e-3"] == "constant.numeric.bm" and got["# c"] == "comment.line.number-sign.bm"
    got = scopes('layer block(x: f32[N, d], units: int) { data = "a\\"b" }')
    assert got["block"] == "entity.name.function.bm" and got["int"] == "support.type.scalar.bm"
    assert got['"a\\"b"'] == "string.quoted.double.bm"
