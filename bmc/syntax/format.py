"""`bmc fmt`: the canonical layout of a `.bm` file. Comments are kept, literals stay as written, the parse is unchanged.

The formatter rewrites the white space between the file's tokens (Lark's lexer, comments included) and nothing else,
except that a `;` (an empty statement) is dropped. The layout:

- one statement per line, indented 4 spaces inside `{ }`; `}` on its own line (`{}` for an empty body);
- one blank line between items; elsewhere a run of blank lines becomes one, and none follows `{` or precedes `}`;
- one space around `=`, `~` and binary operators, after `,` and `:`; none inside brackets, before the `(` of a call
  or the `[` of a type or subscript, around the `:` of a slice (`x[1:-1, ::2]`), or after a unary minus;
- a line break inside brackets is kept (the next line indented 4 spaces per open bracket); another break inside a
  statement is joined, except after a comment;
- alignment is the author's choice, redone exactly: in a run of consecutive statements (no blank line between) of
  the form `name = ...`, `output name = ...` or `key = ...` (train settings), the `=` signs are aligned when the
  author aligned any of them (two or more spaces before its `=`), else each has one space. Runs of `input`/`target`
  declarations align their names the same way, at the column after `target ` (so a lone `input  x` stays);
- a trailing comment keeps its column if that leaves two spaces after the code, else it follows two spaces after.

Formatting twice changes nothing, and `format_source` checks before returning that the new text parses to the same
tree (positions aside) with the same comments.
"""

from __future__ import annotations

from dataclasses import dataclass

import lark

from bmc.diagnostics import BmcError, Source, Span
from bmc.syntax import explain, grammar

INDENT = 4
COMMENT = "COMMENT"
STATEMENTS = {"input_decl", "target_decl", "param_decl", "assign", "output_decl", "return_stmt", "setting",
              "target_setting"}


@dataclass
class _Tok:
    text: str
    kind: str  # the Lark terminal
    line: int
    column: int  # 1-based
    breaks: int  # newlines in the white space before the token

    @property
    def is_comment(self) -> bool:
        return self.kind == COMMENT


def format_source(text: str, filename: str = "<string>") -> str:
    """The canonical layout of `text`. Raises `BmcError` at the first syntax error."""
    tree = parse_tree(text, filename)
    toks = _tokens(text)
    result = _Layout(toks, tree).render()
    _check_same(tree, toks, result, filename)
    return result


def parse_tree(text: str, filename: str = "<string>") -> lark.Tree:
    """The Lark tree of `text`, syntax errors reported as `bmc.syntax.parse` reports them. Unlike `parse`, literals
    are not checked: a file with a number no dtype holds still formats."""
    source = Source(filename, text)
    parser = grammar.parser()
    try:
        return parser.parse(text)
    except lark.UnexpectedCharacters as e:
        raise explain.unexpected_character(source, parser, e) from None
    except lark.UnexpectedToken as e:
        raise explain.unexpected_token(source, parser, e) from None
    except lark.UnexpectedInput as e:  # pragma: no cover - LALR reports UnexpectedToken($END) instead
        raise BmcError("syntax error", Span(source, e.line, e.column, e.line, e.column + 1)) from None


def _tokens(text: str) -> list[_Tok]:
    """Every token but white space and `;` (whose surrounding newlines go to the next token)."""
    toks: list[_Tok] = []
    breaks = 0
    for t in grammar.parser().lex(text, dont_ignore=True):
        if t.type == "WS" or t.value == ";":
            breaks += t.value.count("\n")
            continue
        toks.append(_Tok(str(t), t.type, t.line, t.column, breaks))
        breaks = 0
    return toks


@dataclass
class _Stmt:
    kind: str | None  # "assign" (an `=` to align), "decl" (input/target), None (not aligned)
    width: int = 0  # the text before the `=` (or the keyword) as formatted
    pad_at: int = -1  # the token whose preceding spaces alignment sets
    padded: bool = False  # the author put two or more spaces there
    last: int = -1  # the statement's last token


class _Layout:
    """Where each token goes: the structure comes from the parse tree's positions, the text from the tokens."""

    def __init__(self, toks: list[_Tok], tree: lark.Tree):
        self.toks = toks
        at = {(t.line, t.column): i for i, t in enumerate(toks)}
        ends = {(t.line, t.column + len(t.text)): i for i, t in enumerate(toks)}
        self.items = {at[(item.meta.line, item.meta.column)] for item in tree.children}
        self.stmts: dict[int, _Stmt] = {}
        self.unary: set[int] = set()  # unary minus signs
        self.tight: set[int] = set()  # `(` of a call or a parameter list, `[` of a type or subscript: no space before
        self.colons: set[int] = set()  # the `:` of a slice (`x[1:-1, ::2]`): no space on either side
        for sub in tree.iter_subtrees():
            if sub.meta.empty or sub.data == "empty":
                continue
            start = at[(sub.meta.line, sub.meta.column)]
            if sub.data == "neg":
                self.unary.add(start)
            elif sub.data in ("call", "tensor_type"):
                self.tight.add(start + 1)
            elif sub.data == "subscript":
                value = sub.children[0]  # its `[` follows, after any `)` closing a parenthesized value
                bracket = ends[(value.meta.end_line, value.meta.end_column)] + 1
                while toks[bracket].text != "[":
                    bracket += 1
                self.tight.add(bracket)
            elif sub.data == "range":
                self.colons.update(at[(c.line, c.column)] for c in sub.children
                                   if isinstance(c, lark.Token) and c.type == "COLON")
            elif sub.data in ("model_def", "layer_def", "train_def") and toks[start + 2].text == "(":
                self.tight.add(start + 2)
            elif sub.data in STATEMENTS:
                self.stmts[start] = self._stmt(sub.data, start, ends[(sub.meta.end_line, sub.meta.end_column)])
        self.pads = self._alignment(tree, at)

    def _stmt(self, kind: str, start: int, last: int) -> _Stmt:
        toks = self.toks
        lhs = start + (kind == "output_decl")  # the token before the `=`
        eq = lhs + 1
        if kind in ("input_decl", "target_decl") and not toks[start + 1].is_comment:
            return _Stmt("decl", len(toks[start].text), start + 1, _gap(toks[start], toks[start + 1]) >= 2, last)
        if (kind in ("assign", "output_decl", "setting", "target_setting") and eq <= last and toks[eq].text == "="
                and not any(t.is_comment for t in toks[start : eq + 1])):
            width = sum(len(t.text) for t in toks[start : lhs + 1]) + (lhs - start)
            return _Stmt("assign", width, eq, _gap(toks[lhs], toks[eq]) >= 2, last)
        return _Stmt(None, last=last)

    def _alignment(self, tree: lark.Tree, at: dict[tuple[int, int], int]) -> dict[int, int]:
        """Spaces before the `=` (or the declared name) of each statement in an aligned run."""
        pads: dict[int, int] = {}
        for item in tree.children:
            starts = [at[(c.meta.line, c.meta.column)] for c in item.children
                      if isinstance(c, lark.Tree) and c.data in STATEMENTS]
            runs: list[list[_Stmt]] = []
            for i, start in enumerate(starts):
                s = self.stmts[start]
                prev = self.stmts[starts[i - 1]] if i else None
                if prev is not None and s.kind is not None and prev.kind == s.kind and not any(
                        t.breaks >= 2 for t in self.toks[prev.last + 1 : start + 1]):
                    runs[-1].append(s)
                else:
                    runs.append([s])
            for run in runs:
                if run[0].kind is not None and any(s.padded for s in run):
                    width = max(s.width for s in run) if run[0].kind == "assign" else len("target")
                    pads.update((s.pad_at, width - s.width + 1) for s in run)
        return pads

    def render(self) -> str:
        toks = self.toks
        lines: list[str] = []
        cur = ""
        depth = 0
        in_header = in_body = opened = after_item = False
        for i, t in enumerate(toks):
            prev = toks[i - 1] if i else None
            text = t.text.rstrip() if t.is_comment else t.text
            if prev is None:
                cur = text
            elif self._breaks_before(i, prev, depth):
                blank, indent = self._placement(i, depth, in_header, in_body, opened, after_item)
                lines.append(cur.rstrip())
                if blank:
                    lines.append("")
                cur = " " * indent + text
                opened = False
                if not in_body and not in_header and depth == 0:
                    after_item = False
            else:
                cur += self._space(i, prev, len(cur)) + text
            if t.text in ("(", "["):
                depth += 1
            elif t.text in (")", "]"):
                depth -= 1
            elif t.text == "{":
                in_header, in_body, opened = False, True, True
            elif t.text == "}":
                in_body, after_item = False, True
            if i in self.items:
                in_header, after_item = True, False
        return "\n".join([*lines, cur.rstrip()]) + "\n" if toks else ""

    def _breaks_before(self, i: int, prev: _Tok, depth: int) -> bool:
        t = self.toks[i]
        if t.is_comment and not t.breaks and not prev.is_comment:  # a trailing comment stays on its line
            return False
        if prev.is_comment or i in self.items or i in self.stmts:
            return True
        if t.text == "}":
            return prev.text != "{"
        return prev.text == "{" or (t.breaks > 0 and (t.is_comment or depth > 0))

    def _placement(self, i: int, depth: int, in_header: bool, in_body: bool, opened: bool,
                   after_item: bool) -> tuple[bool, int]:
        """(a blank line before it, its indentation) for token `i`, which starts a line."""
        t = self.toks[i]
        if i in self.items or (t.is_comment and not in_body and not in_header and depth == 0):
            return after_item or t.breaks >= 2, 0
        if t.text == "}":
            return False, 0
        if i in self.stmts or (t.is_comment and in_body and depth == 0 and self._between_statements(i)):
            return t.breaks >= 2 and not opened, INDENT
        base = INDENT if in_body else 0
        levels = depth - 1 if t.text in ")]" else max(depth, 1)
        return False, base + INDENT * levels

    def _between_statements(self, i: int) -> bool:
        j = next(j for j in range(i + 1, len(self.toks)) if not self.toks[j].is_comment)
        return j in self.stmts or self.toks[j].text == "}"

    def _space(self, i: int, prev: _Tok, width: int) -> str:
        """The white space between `prev` and token `i` on one line (`width`: the line so far)."""
        t = self.toks[i]
        if t.is_comment:  # a trailing comment
            return " " * max(2, t.column - 1 - width)
        if i in self.pads:
            return " " * self.pads[i]
        if i in self.colons:
            return " " if prev.text == "," else ""
        if prev.text in ("(", "[") or t.text in (")", "]", ",", ":") or i - 1 in self.unary or i - 1 in self.colons:
            return ""
        if t.text in ("(", "["):
            return "" if i in self.tight else " "
        if prev.text == "{" and t.text == "}":
            return ""
        return " "


def _gap(a: _Tok, b: _Tok) -> int:
    """Spaces between two tokens on one line (0 across lines)."""
    return b.column - a.column - len(a.text) if a.line == b.line and not b.breaks else 0


def _shape(tree: lark.Tree) -> list:
    """The tree without positions or empty statements, flattened (deep expressions need no recursion)."""
    out: list = []
    stack: list = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, lark.Tree):
            children = [c for c in node.children if not (isinstance(c, lark.Tree) and c.data == "empty")]
            out.append((node.data, len(children)))
            stack.extend(reversed(children))
        else:
            out.append(None if node is None else (node.type, str(node)))
    return out


def _check_same(tree: lark.Tree, toks: list[_Tok], result: str, filename: str) -> None:
    comments = [t.text.rstrip() for t in toks if t.is_comment]
    if _shape(parse_tree(result, filename)) != _shape(tree) or comments != [
            t.text for t in _tokens(result) if t.is_comment]:
        raise AssertionError(f"formatting {filename} would change its meaning or its comments")
