"""Lark's syntax errors as errors a person can act on: what was expected, in words; an unclosed bracket at its
opening; a keyword or character from another language with what to write instead; curated messages for the states
the examples in EXAMPLES reach (`parse` in parser.py raises what these functions return)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import lark
from lark import Token

from bmc.diagnostics import BmcError, Source, Span
from bmc.syntax.grammar import parser as _parser

# Readable names for Lark's terminal names in "expected ..." messages. String terminals not listed here (the
# keywords, '**') are shown as their text.
TOKEN_NAMES = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "COMPARE": "a comparison",
    "ELLIPSIS": "'...'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "SEMICOLON": "';'",
    "EQUAL": "'='",
    "TILDE": "'~'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "AT": "'@'",
    "$END": "end of file",
}
ITEM_KEYWORDS = ("model", "layer", "train")
STATEMENT_KEYWORDS = ("input", "target", "param", "output", "return")
KEYWORDS = ITEM_KEYWORDS + STATEMENT_KEYWORDS
KEYWORD_TYPES = frozenset(k.upper() for k in KEYWORDS)
# Terminal sets that read better as one phrase in "expected ...".
STATEMENT_START = frozenset({"NAME", "INPUT", "TARGET", "PARAM", "OUTPUT", "RETURN"})
EXPRESSION_START = frozenset({"NAME", "NUMBER", "STRING", "LPAR", "LSQB", "MINUS"})
ITEM_START = frozenset({"MODEL", "LAYER", "TRAIN"})
OPERATORS = ("+", "-", "*", "/", "@", "**")
CLOSERS = {"(": ")", "[": "]", "{": "}"}
CLOSER_TYPES = {")": "RPAR", "]": "RSQB", "}": "RBRACE"}
KEYWORD_USAGE = {
    "input": "an input is declared as 'input NAME: f32[N, ...]'",
    "target": "a target is declared as 'target NAME: i64[N]'",
    "param": "a parameter is declared as 'param NAME: f32[...] ~ initializer'",
    "output": "an output is declared as 'output NAME = expression'",
    "return": "a layer returns its result with 'return expression'",
}
CHARACTER_HINTS = {
    "^": "'**' raises to a power: x ** 2",
    "&": "there are no logical operators; use where(condition, x, y)",
    "|": "there are no logical operators; use where(condition, x, y)",
}

# Curated messages for common mistakes, recognized with Lark's `match_examples`: an error is given the label of the
# example that fails in the same parser state. Each label's message is built by `_curated`.
EXAMPLES = {
    "assign": ["model m { h relu(x) }"],
    "argument": ["model m { h = f(x 3) }"],
    "setting": ["train m { epochs 5 }"],
    "declaration": ["model m { input x f32[N] }", "model m { target y i64[N] }", "model m { param w f32[3] ~ he }"],
    "dims": ["model m { input x: f32 }"],
    "param_init": ["model m { param w: f32[3] }"],
}


def _terminal_text(parser: lark.Lark, name: str) -> str | None:
    for term in parser.terminals:
        if term.name == name and term.pattern.type == "str":
            return term.pattern.value
    return None


def _token_name(parser: lark.Lark, name: str) -> str:
    if name in TOKEN_NAMES:
        return TOKEN_NAMES[name]
    text = _terminal_text(parser, name)
    return f"'{text}'" if text is not None else name.lower()


def describe_expected(parser: lark.Lark, expected: set[str]) -> str:
    """What may come next, in words: "a statement or '}'", "')', ',' or an operator"."""
    rest = set(expected)
    phrases = []
    if rest >= STATEMENT_START:
        phrases.append("a statement")
        rest -= STATEMENT_START | {"SEMICOLON"}
    if rest >= EXPRESSION_START:
        phrases.append("an expression")
        rest -= EXPRESSION_START
    if rest >= ITEM_START:
        rest.discard("$END")
    operators = {t for t in rest if t == "COMPARE" or _terminal_text(parser, t) in OPERATORS}
    if len(operators) >= 3:
        rest -= operators
    names = sorted({_token_name(parser, t) for t in rest})
    # punctuation first, then the keywords in their order of KEYWORDS
    names.sort(key=lambda n: (KEYWORDS.index(n.strip("'")) if n.strip("'") in KEYWORDS else -1, n))
    names = phrases + names + (["an operator"] if len(operators) >= 3 else [])
    if len(names) > 6:
        names = [*names[:6], "..."]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _found(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    return f"'{token.value}'"


@dataclass(frozen=True)
class _Tok:
    """A token of the scan that syntax errors use to look back: text and 1-based position."""

    text: str
    line: int
    column: int

    @property
    def end_column(self) -> int:
        return self.column + len(self.text)


_SCAN = re.compile(
    r"""(?P<space>[ \t\r\f\v]+|\#[^\n]*)
      | (?P<newline>\n)
      | (?P<token>"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?
                  |\*\*|[=!<>]=|\.\.\.|.)
    """,
    re.VERBOSE,
)


def _tokens_before(text: str, pos: int) -> list[_Tok]:
    """The tokens of `text[:pos]`, comments and whitespace skipped."""
    out, line, line_start = [], 1, 0
    for m in _SCAN.finditer(text, 0, pos):
        if m.lastgroup == "newline":
            line, line_start = line + 1, m.end()
        elif m.lastgroup == "token":
            out.append(_Tok(m.group(), line, m.start() - line_start + 1))
    return out


def _open_brackets(tokens: list[_Tok]) -> list[int]:
    """Indexes of the brackets still open at the end of `tokens`, innermost last."""
    stack: list[int] = []
    for i, t in enumerate(tokens):
        if t.text in CLOSERS:
            stack.append(i)
        elif t.text in CLOSER_TYPES and stack:
            stack.pop()
    return stack


def _owner(tokens: list[_Tok], brace: int) -> str:
    """`model 'mlp'` for the '{' that opens model mlp."""
    for j in range(brace - 1, -1, -1):
        if tokens[j].text in ITEM_KEYWORDS and j + 1 < brace:
            return f"{tokens[j].text} '{tokens[j + 1].text}'"
    return "the block"


def unexpected_character(source: Source, parser: lark.Lark, e: lark.UnexpectedCharacters) -> BmcError:
    text = source.line(e.line)
    char = text[e.column - 1] if e.column - 1 < len(text) else ""
    span = Span(source, e.line, e.column, e.line, e.column + 1)
    if char == '"':
        return BmcError("unterminated string: a string ends with '\"' on the same line", span)
    if char == "'":
        close = text.find("'", e.column)
        if close > 0:
            content = text[e.column : close]
            return BmcError(f"strings use double quotes: write \"{content}\", not '{content}'",
                            Span(source, e.line, e.column, e.line, close + 2))
        return BmcError("unexpected character \"'\"", span, notes=('strings use double quotes: "digits"',))
    hint = (CHARACTER_HINTS[char],) if char in CHARACTER_HINTS else ()
    try:  # what the parser would have accepted here: parse up to the character
        interactive = parser.parse_interactive(source.text[: e.pos_in_stream])
        interactive.exhaust_lexer()
        expected = f", expected {describe_expected(parser, set(interactive.accepts()))}"
    except lark.LarkError:
        expected = ""
    return BmcError(f"unexpected character {char!r}{expected}", span, notes=hint)


class _StateKey:
    """A parser state compared by its LALR state number only, so that an example matches an error at any nesting
    depth (Lark's own comparison also wants the same stack depth)."""

    def __init__(self, state):
        self.position = state.position

    def __eq__(self, other) -> bool:
        return self.position == getattr(other, "position", None)

    __hash__ = None


def _parse_example(text: str):
    try:
        return _parser().parse(text)
    except lark.UnexpectedToken as e:
        e.state = _StateKey(e.state)
        raise


def unexpected_token(source: Source, parser: lark.Lark, e: lark.UnexpectedToken) -> BmcError:
    text = source.text
    tok = e.token
    at_end = tok.type == "$END"
    tokens = _tokens_before(text, len(text) if at_end else tok.start_pos)
    accepts = set(e.accepts or e.expected)
    found = _found(tok)
    if not tokens:
        return _generic(parser, accepts, tok, None, _token_span(source, tok))
    prev = tokens[-1]
    # Something is missing just after the last good token: point there when the parser only noticed at the end of
    # the file or on a later line.
    here = _after(source, prev) if at_end or tok.line > prev.line else _token_span(source, tok)
    stack = _open_brackets(tokens)
    opener = tokens[stack[-1]] if stack else None

    # A new item (`model n {`) inside an unclosed '{': the lexer read the keyword as a name.
    if (opener is not None and opener.text == "{" and prev.text in ITEM_KEYWORDS and len(tokens) >= 2
            and tokens[-2].line < prev.line and tok.type == "NAME"):
        return _never_closed(source, tokens, stack[-1], tokens[-2], f"'{prev.text}'")
    # A bracket left open: say which, rather than list what could continue the expression inside it.
    if opener is not None and CLOSER_TYPES[CLOSERS[opener.text]] in accepts and _ends_bracket(text, tok, opener):
        if opener.text == "{":
            return _never_closed(source, tokens, stack[-1], prev, found)
        return BmcError(f"unclosed '{opener.text}' opened at {opener.line}:{opener.column}: expected "
                        f"'{CLOSERS[opener.text]}' before {found}", _after(source, prev))
    # A closing bracket that closes nothing, or the wrong kind of bracket.
    if tok.type in CLOSER_TYPES.values() and tok.type not in accepts:
        if opener is None:
            return BmcError(f"unmatched '{tok.value}': there is no open bracket for it to close",
                            _token_span(source, tok))
        if CLOSERS[opener.text] != tok.value:
            return BmcError(f"'{tok.value}' does not match the '{opener.text}' opened at {opener.line}:"
                            f"{opener.column}", _token_span(source, tok),
                            notes=(f"expected '{CLOSERS[opener.text]}'",))

    # A keyword where a name belongs.
    if tok.type in KEYWORD_TYPES and "NAME" in accepts:
        return BmcError(f"'{tok.value}' is a keyword and cannot be used as a name", here)
    if prev.text in STATEMENT_KEYWORDS and tok.type == "EQUAL" and "EQUAL" not in accepts:
        return BmcError(f"'{prev.text}' is a keyword and cannot be used as a name", _token_span(source, prev),
                        notes=(KEYWORD_USAGE[prev.text],))
    if tok.type == "SLASH" and (text.startswith("//", tok.start_pos) or prev.text == "/"):
        first = prev if prev.text == "/" else _Tok("/", tok.line, tok.column)
        return BmcError("comments start with '#', not '//'", Span(source, first.line, first.column, first.line,
                                                                  first.column + 2))

    label = e.match_examples(_parse_example, EXAMPLES) if e.state is not None else None
    if label is not None:
        return _curated(source, label, tokens, found, here)

    return _generic(parser, accepts, tok, prev, here)


def _generic(parser: lark.Lark, accepts: set[str], tok: Token, prev: _Tok | None, span: Span) -> BmcError:
    """'expected X or Y, found Z', with a hint for a misspelt keyword or a missing ','."""
    found = _found(tok)
    notes: tuple[str, ...] = ()
    keywords = [kw for kw in KEYWORDS if kw.upper() in accepts]
    if tok.type == "NAME" and keywords:
        notes = _did_you_mean(str(tok.value), keywords)
    elif tok.type in EXPRESSION_START and "COMMA" in accepts and prev is not None and tok.line == prev.line:
        notes = (f"is a ',' missing before {found}?",)
    return BmcError(f"expected {describe_expected(parser, accepts)}, found {found}", span, notes=notes)


def _token_span(source: Source, tok: Token | _Tok) -> Span:
    if isinstance(tok, _Tok):
        return Span(source, tok.line, tok.column, tok.line, tok.end_column)
    return Span(source, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + 1)


def _after(source: Source, tok: _Tok) -> Span:
    """The column just after `tok`: where a missing token belongs."""
    return Span(source, tok.line, tok.end_column, tok.line, tok.end_column + 1)


def _never_closed(source: Source, tokens: list[_Tok], brace: int, last: _Tok, found: str) -> BmcError:
    owner = _owner(tokens, brace)
    where = f"{tokens[brace].line}:{tokens[brace].column}"
    return BmcError(f"'{{' of {owner} at {where} is never closed", _after(source, last),
                    notes=(f"expected '}}' before {found}",))


def _ends_bracket(text: str, tok: Token, opener: _Tok) -> bool:
    """Whether `tok` (where the parser stopped) shows that the innermost open bracket was left unclosed: the file
    ends, or a new item, statement or block comes first."""
    if tok.type == "$END":
        return True
    if opener.text == "{":
        return tok.type in ITEM_START
    if tok.type in ("RBRACE", "LBRACE") or tok.type in KEYWORD_TYPES:
        return True
    if tok.type == "NAME" and tok.line > opener.line:  # `name = ...` starting a line: the next statement
        first_on_line = not text[text.rfind("\n", 0, tok.start_pos) + 1 : tok.start_pos].strip()
        return first_on_line and re.match(r"\s*=(?!=)", text[tok.end_pos :]) is not None
    return False


def _did_you_mean(word: str, candidates: list[str]) -> tuple[str, ...]:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return (f"did you mean '{close[0]}'?",) if close else ()


def _curated(source: Source, label: str, tokens: list[_Tok], found: str, span: Span) -> BmcError:
    prev = tokens[-1]
    if label == "assign":
        keyword = _did_you_mean(prev.text, list(STATEMENT_KEYWORDS))
        if keyword and found[1:-1].isidentifier():  # `ouput y = ...`: two names in a row start a declaration
            return BmcError(f"unknown keyword '{prev.text}'", _token_span(source, prev), notes=keyword)
        return BmcError(f"expected '=' after '{prev.text}', found {found}", span,
                        notes=keyword or ("a statement is 'name = expression'",))
    if label == "argument":
        return BmcError(f"expected ',' or ')' after the argument '{prev.text}', found {found}", span,
                        notes=("separate arguments with ','",))
    if label == "setting":
        if len(tokens) >= 2 and tokens[-2].line == prev.line and tokens[-2].text not in ("{", ";"):
            # `metrics = accuracy recall`: the parser took `recall` for the next setting's name
            return BmcError(f"expected ',' before '{prev.text}'", _token_span(source, prev),
                            notes=("separate a setting's values with ',', e.g. 'metrics = accuracy, f1'",))
        return BmcError(f"expected '=' after '{prev.text}', found {found}", span,
                        notes=("a setting is 'name = value', e.g. 'epochs = 5'",))
    if label == "declaration":
        return BmcError(f"expected ':' after '{prev.text}', found {found}", span,
                        notes=(f"the type follows a ':', e.g. '{prev.text}: f32[N, 4]'",))
    if label == "dims":
        return BmcError(f"expected '[' after '{prev.text}', found {found}", span,
                        notes=(f"a tensor type lists its dims in brackets, e.g. {prev.text}[N, 4], or "
                               f"{prev.text}[] for a scalar",))
    assert label == "param_init", label
    return BmcError(f"expected '~' or '=' after the parameter's type, found {found}", span,
                    notes=("a parameter needs an initial value: '~ initializer' (e.g. ~ xavier) or '= value' "
                           "(e.g. = 0)",))
