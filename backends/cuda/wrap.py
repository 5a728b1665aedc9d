"""model.cu's lines kept under 120 characters: a long line is broken after a comma inside its parentheses (a
kernel's parameters, a launch's arguments), the next line aligned after the parenthesis; a block written on one line
(`for (...) { a; b; }`) is opened over lines, one statement each; and a long comment line is continued on comment
lines. A small scanner skips string and character literals and comments, so nothing inside
them is taken for a comma; preprocessor lines and lines with no place to break stay as they are.
"""

from __future__ import annotations

WIDTH = 120


def wrap_source(source: str, width: int = WIDTH) -> str:
    out = []
    for line in source.split("\n"):
        if len(line) <= width or line.lstrip().startswith("#"):
            out.append(line)
        elif line.lstrip().startswith("//"):
            out.append(_wrap_comment(line, width))
        else:
            out.append("\n".join(_wrap_code(piece, width) for piece in _open_block(line)))
    return "\n".join(out)


def _code(line: str):
    """(offset, character) of each character of code: outside string and character literals, up to a comment."""
    i, quote = 0, ""
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif line.startswith("//", i) or line.startswith("/*", i):
            return
        else:
            yield i, ch
        i += 1


def _open_block(line: str) -> list[str]:
    """`head { s1; s2; }` as `head {`, each statement on its own line two columns in, and `}`; any other line as it
    is. Only a block that closes at the line's end, with nothing but statements inside, is opened."""
    body = line.rstrip()
    if not body.endswith("}"):
        return [line]
    depth, opening, ends = 0, None, []
    for i, ch in _code(body):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "{":
            if depth == 0 and opening is None:
                opening = i
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == ";" and depth == 1 and opening is not None:
            ends.append(i)
    if opening is None or not ends or body[ends[-1] + 1:-1].strip():
        return [line]
    indent = " " * (len(line) - len(line.lstrip()) + 2)
    starts = [opening + 1, *(e + 1 for e in ends[:-1])]
    statements = [indent + body[a:e + 1].strip() for a, e in zip(starts, ends, strict=True)]
    return [body[:opening + 1], *statements, line[:len(line) - len(line.lstrip())] + "}"]


def _breaks(line: str) -> list[tuple[int, int, int, int]]:
    """(end of this piece, start of the next, the offset after its bracket, the bracket depth) after each comma
    inside parentheses or brackets, outside literals and comments (the outermost are preferred: see _wrap_code)."""
    out, opened = [], []
    for i, ch in _code(line):
        if ch in "([{":
            opened.append(i + 1)
        elif ch in ")]}":
            if opened:
                opened.pop()
        elif ch == "," and opened:
            nxt = i + 2 if line[i + 1:i + 2] == " " else i + 1
            out.append((i + 1, nxt, opened[-1], len(opened)))
    return out


def _wrap_code(line: str, width: int) -> str:
    breaks = _breaks(line)
    pieces, start, indent = [], 0, 0
    placed: list[tuple[int, int]] = []  # (offset where a piece starts, its column there minus that offset)
    while indent + len(line) - start > width:
        fitting = [b for b in breaks if b[0] > start and indent + len(line[start:b[0]].rstrip()) <= width]
        if not fitting:
            after = _operator_break(line, start, width - indent) or _hanging_break(line, start, width - indent)
            if after is None:
                break
            pieces.append(" " * indent + line[start:after].rstrip())
            placed.append((start, indent - start))
            start, indent = after, len(line) - len(line.lstrip()) + 8
            continue
        outermost = min(b[3] for b in breaks if b[0] > start)
        end, nxt, bracket, _ = ([b for b in fitting if b[3] == outermost] or fitting)[-1]
        pieces.append(" " * indent + line[start:end].rstrip())
        placed.append((start, indent - start))
        shift = next(col for begin, col in reversed(placed) if begin <= bracket)
        start, indent = nxt, bracket + shift
        if indent > width // 2:  # aligned far right, what follows would not fit: a hanging indent instead
            indent = len(line) - len(line.lstrip()) + 8
    if not pieces:
        return line
    pieces.append(" " * indent + line[start:])
    return "\n".join(pieces)


OPERATORS = (" ? ", " : ", " && ", " || ")


def _operator_break(line: str, start: int, room: int) -> int | None:
    """Where a piece too long for any comma break may end instead: before the last `?`, `:`, `&&` or `||` within
    `room` at the shallowest parenthesis depth there is one (the next line starts with the operator)."""
    depth, found = 0, []
    for i, ch in _code(line):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif start < i < start + room and line.startswith(OPERATORS, i - 1) and ch != " ":
            found.append((depth, i))
    if not found:
        return None
    shallowest = min(d for d, _ in found)
    return max(i for d, i in found if d == shallowest)


def _hanging_break(line: str, start: int, room: int) -> int | None:
    """Where a piece too long for any comma break may end instead: just after the last opening parenthesis within
    `room` whose list runs past it (a kernel whose name and first parameter overflow the line)."""
    opened, best = [], None
    for i, ch in _code(line):
        if ch == "(":
            opened.append(i)
        elif ch == ")" and opened:
            p = opened.pop()
            if start <= p < start + room - 1 and i >= start + room:
                best = p if best is None else max(best, p)
    for p in opened:  # never closed on this line
        if start <= p < start + room - 1:
            best = p if best is None else max(best, p)
    return None if best is None else best + 1


def _wrap_comment(line: str, width: int) -> str:
    indent = len(line) - len(line.lstrip())
    lead = " " * indent + "//   "
    pieces, rest = [], line
    while len(rest) > width:
        # never after a backslash or a ??/ trigraph: either at a line's end splices the next line into the comment
        cuts = [i for i in range(len(lead) + 1, min(width, len(rest) - 1) + 1) if rest[i] == " " and
                not rest[:i].rstrip(" ").endswith(("\\", "??/"))]
        if not cuts:
            break
        cut = cuts[-1]
        pieces.append(rest[:cut].rstrip())
        rest = lead + rest[cut:].lstrip()
    return "\n".join([*pieces, rest])
