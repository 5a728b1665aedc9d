"""`bmc fmt` (bmc/syntax/format.py): every `.bm` file in the repository is in the canonical layout; formatting is
idempotent, keeps comments and literals, and never changes what a file means (the same AST, the same IR)."""

from __future__ import annotations

import dataclasses
import io
import random
import re
import subprocess
import sys

import pytest

import bmc.cli
from bmc import fs_atomic
from bmc.api import Model
from bmc.diagnostics import BmcError
from bmc.syntax import grammar, parse
from bmc.syntax.format import format_source
from tests.conftest import ROOT


def repository_files() -> list[str]:
    try:
        listed = subprocess.run(["git", "ls-files", "*.bm"], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):  # not a checkout (an unpacked sdist): the folders that hold them
        return sorted(str(p.relative_to(ROOT)) for d in ("examples", "tests") for p in (ROOT / d).rglob("*.bm"))
    return listed.stdout.split()


def parses(name: str) -> bool:
    try:
        format_source((ROOT / name).read_text(encoding="utf-8"), name)
    except BmcError:
        return False
    return True


FILES = repository_files()
FORMATTABLE = [f for f in FILES if parses(f)]
BROKEN = [f for f in FILES if f not in FORMATTABLE]


def read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


# ---- what is compared: the meaning of a file ------------------------------------------------------------------------

def skeleton(node):
    """An AST as nested tuples, without spans or sources (only positions may change)."""
    if dataclasses.is_dataclass(node):
        return (type(node).__name__, *(skeleton(getattr(node, f.name)) for f in dataclasses.fields(node)
                                       if f.type not in ("Span", "Source")))
    if isinstance(node, tuple):
        return tuple(skeleton(n) for n in node)
    return node


def ir_text(text: str, name: str) -> str | None:
    """The printed inference and train IR with the `# file:line` comments dropped; None if it does not compile."""
    try:
        model = Model.from_source(text, name)
        graphs = [model.ir(), model.ir(train=True) if model.compiled.model.loss is not None else ""]
    except BmcError as e:
        return f"error: {e.message}"
    return re.sub(r"  # [^\n]*", "", "\n".join(graphs))


def ast_of(text: str, name: str):
    try:
        return skeleton(parse(text, name).items)
    except BmcError as e:  # a literal no dtype holds, a bad escape: the same error before and after
        return f"error: {e.message}"


def same_meaning(before: str, after: str, name: str) -> None:
    assert ast_of(after, name) == ast_of(before, name)
    assert ir_text(after, name) == ir_text(before, name)


# ---- layouts to format back: messy white space, and everything on one line -------------------------------------------

def _lexed(text: str) -> list:
    return list(grammar.parser().lex(text, dont_ignore=True))


def _wordlike(tok) -> bool:
    return tok is not None and (tok.type in ("NAME", "NUMBER") or str(tok).isalpha())


def messy(text: str, seed: int) -> str:
    """The same tokens with other white space that formats back to `text`: indentation and trailing blanks changed,
    blank lines repeated, single spaces dropped where tokens stay apart, padding (alignment) resized, some lines
    joined. A line with a trailing comment is kept as it is (the comment's column is the author's)."""
    rng = random.Random(seed)
    toks = _lexed(text)
    code = [t for t in toks if t.type != "WS"]
    kept = {t.line for i, t in enumerate(code) if t.type == "COMMENT" and i and code[i - 1].line == t.line}
    out, depth = [], 0
    for i, t in enumerate(toks):
        prev = toks[i - 1] if i else None
        after = toks[i + 1] if i + 1 < len(toks) else None
        if t.type != "WS":
            depth += (t in ("(", "[")) - (t in (")", "]"))
            out.append(str(t))
        elif after is None or after.line in kept:
            out.append(str(t))
        elif "\n" in t:
            lines = t.count("\n")
            if lines == 1 and depth == 0 and prev is not None and prev.type != "COMMENT" and rng.random() < 0.2:
                out.append(" ")
                continue
            lines += rng.randint(0, 2) if lines >= 2 else 0
            blanks = "".join(rng.choice(["", " ", "\t", "   "]) + "\n" for _ in range(lines))
            out.append(blanks + rng.choice(["", " ", "  ", "\t", "        ", " \t  "]))
        elif len(t) >= 2:
            out.append(" " * rng.randint(2, 5))
        elif not (_wordlike(prev) and _wordlike(after)) and rng.random() < 0.5:
            out.append("")
        else:
            out.append(str(t))
    return "".join(out)


def commented(text: str, seed: int) -> str:
    """Comments after random tokens (trailing and on their own lines), and random line breaks and blank lines."""
    rng = random.Random(seed)
    out = []
    for t in _lexed(text):
        out.append(str(t))
        if t.type not in ("WS", "COMMENT"):
            out.append(rng.choices(["", f"{rng.choice(['', ' ', '    '])}# c{rng.randint(0, 99)}\n", "\n# own\n",
                                    "\n\n", "\n", "  "], [80, 8, 4, 4, 2, 2])[0])
    return "".join(out)


def one_line(text: str) -> str:
    """The tokens on as few lines as there can be: one space between tokens, a line break only after a comment."""
    return "".join(str(t) + ("\n" if t.type == "COMMENT" else " ") for t in _lexed(text) if t.type != "WS")


# ---- the repository ----------------------------------------------------------------------------------------------

def test_the_repository_has_bm_files_and_only_syntax_error_tests_fail_to_parse():
    assert len(FILES) >= 90 and len(FORMATTABLE) >= 70
    assert all(re.fullmatch(r"tests/diagnostics/syntax_\w+\.bm", f) for f in BROKEN), BROKEN


@pytest.mark.parametrize("name", FORMATTABLE)
def test_repository_file_is_formatted(name):
    text = read(name)
    assert format_source(text, name) == text, f"run: bmc fmt {name}"


def test_fmt_check_passes_on_the_repository(capsys):
    assert bmc.cli.main(["fmt", "--check", *FORMATTABLE]) == 0, capsys.readouterr()


@pytest.mark.parametrize("name", BROKEN)
def test_a_syntax_error_is_reported_at_its_place(name):
    with pytest.raises(BmcError) as e:
        format_source(read(name), name)
    assert e.value.span is not None and e.value.span.source.name == name


@pytest.mark.parametrize("name", FORMATTABLE)
def test_a_messy_layout_formats_back(name):
    text = read(name)
    for seed in range(3):
        assert format_source(messy(text, seed), name) == text


@pytest.mark.parametrize("name", FORMATTABLE)
def test_formatting_keeps_the_meaning(name):
    text = read(name)
    squeezed = one_line(text)
    formatted = format_source(squeezed, name)
    assert format_source(formatted, name) == formatted
    same_meaning(text, formatted, name)
    same_meaning(text, format_source(messy(text, 7), name), name)


@pytest.mark.parametrize("name", FORMATTABLE)
def test_comments_anywhere_are_kept_and_formatting_is_idempotent(name):
    text = read(name)
    for seed in range(2):
        variant = commented(text, seed)
        formatted = format_source(variant, name)  # checks that the parse and the comments are unchanged
        assert format_source(formatted, name) == formatted
        assert ast_of(formatted, name) == ast_of(text, name)


def test_generated_programs_format_idempotently_and_keep_their_meaning():
    pytest.importorskip("torch")  # the differential tester's program strategy
    from hypothesis import HealthCheck, given, settings

    from tests.differential.generate import programs

    @settings(max_examples=12, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(programs())
    def check(program):
        text = program.render()
        for variant in (text, one_line(text), messy(text, 1)):
            formatted = format_source(variant, "program.bm")
            assert format_source(formatted, "program.bm") == formatted
            same_meaning(text, formatted, "program.bm")

    check()


# ---- the layout, rule by rule ---------------------------------------------------------------------------------------

CASES = {
    "spacing": (
        "model m(a=1,b = -2){input x:f32[N,4]\noutput y=-x**-2+(-x)*mean( x ,axis=[1])}\n",
        "model m(a = 1, b = -2) {\n    input x: f32[N, 4]\n    output y = -x ** -2 + (-x) * mean(x, axis = [1])\n}\n",
    ),
    "literals as written": (
        'model m {\n    input x: f32[N, 4]\n    output y = x * 1e-3 + 0.50 + 1E5 + .5\n}\n'
        'train m {\n    data = "caf\\u00e9\\n.npz"\n}\n',
        'model m {\n    input x: f32[N, 4]\n    output y = x * 1e-3 + 0.50 + 1E5 + .5\n}\n\n'
        'train m {\n    data = "caf\\u00e9\\n.npz"\n}\n',
    ),
    "alignment is kept when the author aligned": (
        "model m {\n    input  x: f32[N, 4]\n    target t: f32[N]\n    h = x\n    logits  = h\n"
        "    output y = h\n\n    a = h\n    bb = h\n    loss = mean(t)\n}\n",
        "model m {\n    input  x: f32[N, 4]\n    target t: f32[N]\n    h        = x\n    logits   = h\n"
        "    output y = h\n\n    a = h\n    bb = h\n    loss = mean(t)\n}\n",
    ),
    "an aligned declaration lines up with target": (
        "model m {\n    input   x: f32[N, 4]\n    input z: f32[N]\n\n    input y: f32[N]\n    output o = x\n}\n",
        "model m {\n    input  x: f32[N, 4]\n    input  z: f32[N]\n\n    input y: f32[N]\n    output o = x\n}\n",
    ),
    "blank lines": (
        "\n\n# top\n\n\n\nmodel m {\n\n    input x: f32[N, 4]\n\n\n    output y = x\n\n}\ntrain m {\n}\n\n\n",
        "# top\n\nmodel m {\n    input x: f32[N, 4]\n\n    output y = x\n}\n\ntrain m {}\n",
    ),
    "comments": (
        "model m {  # the model\n    input x: f32[N, 4]   # aligned\n  # own line\n    output y = x # close\n}"
        "  # end\n",
        "model m {  # the model\n    input x: f32[N, 4]   # aligned\n    # own line\n    output y = x  # close\n}"
        "  # end\n",
    ),
    "line breaks inside brackets are kept, others joined": (
        "layer f(x: f32[..., d],\n    units: int = 3) {\n    return dense(\n        x,  # the input\n"
        "        units\n    ) +\n        x\n}\n",
        "layer f(x: f32[..., d],\n    units: int = 3) {\n    return dense(\n        x,  # the input\n"
        "        units\n    ) + x\n}\n",
    ),
    "statements on one line and semicolons": (
        "model m { input x: f32[N, 4]; h = x; output y = h; }\n",
        "model m {\n    input x: f32[N, 4]\n    h = x\n    output y = h\n}\n",
    ),
    "keywords used as names": (
        "model m {\n    input x: f32[N, 4]\n    output y=x-return z=output\n}\n",
        "model m {\n    input x: f32[N, 4]\n    output y = x - return\n    z = output\n}\n",
    ),
    "windows line ends and tabs": (
        "model m {\r\n\tinput x: f32[N, 4]  # crlf\r\n\toutput y = x\r\n}\r\n",
        "model m {\n    input x: f32[N, 4]  # crlf\n    output y = x\n}\n",
    ),
    "empty": ("  \n\n", ""),
    "comments only": ("# one\n\n\n# two", "# one\n\n# two\n"),
}


@pytest.mark.parametrize("case", CASES)
def test_layout(case):
    before, after = CASES[case]
    assert format_source(before, "t.bm") == after
    assert format_source(after, "t.bm") == after


def test_deep_expressions_need_no_recursion():
    body = "relu(" * 900 + "x" + ")" * 900 + " + " + " + ".join(["-x"] * 3000)
    text = f"model m {{\n    input x: f32[N, 4]\n    output y = {body}\n}}\n"
    assert format_source(text, "deep.bm") == text


def test_a_number_no_dtype_holds_still_formats():
    text = "model m {\n    input x: f32[N, 4]\n    output y = x * 1e999\n}\n"
    assert format_source(text.replace(" * ", "*"), "big.bm") == text


# ---- the command ----------------------------------------------------------------------------------------------------

MESSY = "model m{input x:f32[N,4]\noutput y=x}\n"
TIDY = "model m {\n    input x: f32[N, 4]\n    output y = x\n}\n"


def test_fmt_rewrites_in_place_and_keeps_permissions(tmp_path, capsys):
    path = tmp_path / "m.bm"
    path.write_text(MESSY)
    path.chmod(0o600)
    assert bmc.cli.main(["fmt", str(path)]) == 0
    assert path.read_text() == TIDY and path.stat().st_mode & 0o777 == 0o600
    assert f"reformatted {path}" in capsys.readouterr().err
    assert bmc.cli.main(["fmt", str(path)]) == 0
    assert capsys.readouterr().err == ""  # nothing to do: the file is not rewritten


def test_fmt_check_lists_what_would_change_and_writes_nothing(tmp_path, capsys):
    messy_file, tidy_file = tmp_path / "a.bm", tmp_path / "b.bm"
    messy_file.write_text(MESSY)
    tidy_file.write_text(TIDY)
    assert bmc.cli.main(["fmt", "--check", str(messy_file), str(tidy_file)]) == 1
    assert capsys.readouterr().out == f"{messy_file}\n"
    assert messy_file.read_text() == MESSY
    assert bmc.cli.main(["fmt", "--check", str(tidy_file)]) == 0


def test_fmt_diff_prints_the_change(tmp_path, capsys):
    path = tmp_path / "a.bm"
    path.write_text(MESSY)
    assert bmc.cli.main(["fmt", "--diff", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"--- {path}" in out and "+    output y = x\n" in out and "-output y=x}\n" in out
    assert path.read_text() == MESSY


def test_fmt_stdin_to_stdout(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(MESSY.encode())))
    assert bmc.cli.main(["fmt", "-"]) == 0
    assert capsys.readouterr().out == TIDY


def test_fmt_errors_are_located_and_the_other_files_still_done(tmp_path, capsys):
    bad, good = tmp_path / "bad.bm", tmp_path / "good.bm"
    bad.write_text("model m {\n    input x: f32[N, 4]\n    output y = x ^ 2\n}\n")
    good.write_text(MESSY)
    assert bmc.cli.main(["fmt", str(bad), str(good), str(tmp_path / "missing.bm")]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3:18: error:" in err and "no such file" in err and "Traceback" not in err
    assert good.read_text() == TIDY


def test_fmt_never_half_writes_a_file(tmp_path, monkeypatch):
    path = tmp_path / "a.bm"
    path.write_text(MESSY)

    def crash(step: str) -> None:
        if step.startswith("rename"):
            raise KeyboardInterrupt

    monkeypatch.setattr(fs_atomic, "hook", crash)
    assert bmc.cli.main(["fmt", str(path)]) == 130
    assert path.read_text() == MESSY
    assert [p.name for p in tmp_path.iterdir()] == ["a.bm"]  # the temporary is gone

