"""Generated lines kept under 120 characters: a long statement is broken inside its brackets, after a comma or
before a `+`, the next line aligned after the bracket, and a long string literal inside brackets becomes adjacent
literals split at a space (which Python joins). Python's tokenizer finds the places, so nothing inside a string, a
comment or a docstring is taken for one; a line with no place to break stays as it is.
"""

from __future__ import annotations

import io
import tokenize
from dataclasses import dataclass

WIDTH = 120


@dataclass(frozen=True)
class _Break:
    end: int  # where this line's piece ends
    at: int  # where the next piece starts
    indent: int  # the offset just after the bracket the break is inside, where the next piece lines up
    depth: int  # how many brackets the break is inside: the outermost are preferred
    quote: str = ""  # inside a string literal: the quote that closes this piece and opens the next


def wrap_source(source: str, width: int = WIDTH) -> str:
    lines = source.splitlines(keepends=True)
    statements, comments = _rows(source)
    for row, line in enumerate(lines):
        if len(line.rstrip("\n")) <= width:
            continue
        if row in statements:
            lines[row] = _wrap(line, width)
        elif row in comments:
            lines[row] = _wrap_comment(line, width)
    return "".join(lines)


def _wrap_comment(line: str, width: int) -> str:
    """A comment line (a quoted `.bm` line) continued on comment lines indented under its text, broken at spaces."""
    body, newline = line.rstrip("\n"), line[len(line.rstrip("\n")):]
    indent = len(body) - len(body.lstrip())
    lead = " " * indent + "#   "
    pieces, rest = [], body
    while len(rest) > width:
        cut = rest.rfind(" ", len(lead) + 1, width + 1)
        if cut <= len(lead):
            break
        pieces.append(rest[:cut].rstrip())
        rest = lead + rest[cut:].lstrip()
    return "\n".join([*pieces, rest]) + newline


def _rows(source: str) -> tuple[set[int], set[int]]:
    """The rows (from 0) that hold a whole statement on their own (not a docstring's, not part of a statement
    spread over lines), and those that hold only a comment."""
    statements, comments, first = set(), set(), None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and tok.line.lstrip().startswith("#"):
            comments.add(tok.start[0] - 1)
        if tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING):
            continue
        if first is None:
            first = tok.start[0]
        if tok.type == tokenize.NEWLINE:
            if tok.start[0] == first:
                statements.add(first - 1)
            first = None
    return statements, comments


def _wrap(line: str, width: int) -> str:
    body, newline = line.rstrip("\n"), line[len(line.rstrip("\n")):]
    body = _parenthesized_return(body)
    breaks = _breaks(body)
    pieces: list[str] = []
    placed: list[tuple[int, int]] = []  # (offset where a piece starts, its column there minus that offset)
    start, indent, opener = 0, 0, ""
    while indent + len(opener) + len(body) - start > width:
        fitting = [b for b in breaks if b.end > start and indent + len(opener) + len(_piece(body, start, b)) <= width]
        if not fitting:
            break
        outermost = min(b.depth for b in breaks if b.end > start)
        b = ([f for f in fitting if f.depth == outermost] or fitting)[-1]
        pieces.append(" " * indent + opener + _piece(body, start, b))
        placed.append((start, indent + len(opener) - start))
        # the next piece lines up after its bracket, where that bracket now stands
        shift = next(col for begin, col in reversed(placed) if begin <= b.indent)
        start, indent, opener = b.at, b.indent + shift, b.quote
    if not pieces:
        return line
    pieces.append(" " * indent + opener + body[start:])
    return "\n".join(pieces) + newline


def _piece(body: str, start: int, b: _Break) -> str:
    """The text from `start` to the break: a string literal's piece keeps its spaces and gets its closing quote."""
    return body[start:b.end] + b.quote if b.quote else body[start:b.end].rstrip()


def _parenthesized_return(body: str) -> str:
    """`return a, b, c` as `return (a, b, c)`, so that the tuple can be broken inside its brackets."""
    stripped = body.lstrip()
    if not stripped.startswith("return "):
        return body
    depth = 0
    for tok in tokenize.generate_tokens(io.StringIO(stripped + "\n").readline):
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        elif tok.type == tokenize.OP and tok.string == "," and depth == 0:
            return f"{body[:len(body) - len(stripped)]}return ({stripped[len('return '):]})"
    return body


def _breaks(line: str) -> list[_Break]:
    tokens = list(tokenize.generate_tokens(io.StringIO(line + "\n").readline))
    brackets: list[int] = []  # the columns just after the open brackets
    out = []
    for tok in tokens:
        begin, end = tok.start[1], tok.end[1]
        if tok.type == tokenize.OP and tok.string in "([{":
            brackets.append(end)
        elif tok.type == tokenize.OP and tok.string in ")]}":
            brackets.pop()
        elif not brackets:
            continue
        elif tok.type == tokenize.OP and tok.string == ",":
            out.append(_Break(end, end + 1 if line[end:end + 1] == " " else end, brackets[-1], len(brackets)))
        elif tok.type == tokenize.OP and tok.string == "+":
            out.append(_Break(begin, begin, brackets[-1], len(brackets)))
        elif tok.type == tokenize.STRING and tok.string[:1] in "'\"" and tok.string[:3] not in ("'''", '"""'):
            q = tok.string[0]
            out += [_Break(begin + i + 1, begin + i + 1, brackets[-1], len(brackets), q)
                    for i, ch in enumerate(tok.string[1:-1], start=1) if ch == " "]
    return sorted(out, key=lambda b: b.end)
