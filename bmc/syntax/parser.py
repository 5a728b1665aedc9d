"""Parse `.bm` text into the AST (`bmc.syntax.ast`) with Lark LALR, turning Lark's errors into `BmcError`s."""

from __future__ import annotations

import functools
from importlib import resources

import lark
from lark import Token, Transformer, v_args

from bmc.diagnostics import BmcError, Source, Span
from bmc.syntax import ast

# Readable names for Lark's terminal names in "expected ..." messages.
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
    "__ANON_0": "'**'",
    "$END": "end of file",
}
KEYWORDS = ("model", "layer", "train", "input", "target", "param", "output", "return")


@functools.cache
def _parser() -> lark.Lark:
    grammar = resources.files("bmc.grammar").joinpath("bm.lark").read_text(encoding="utf-8")
    return lark.Lark(grammar, start="module", parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _token_name(parser: lark.Lark, name: str) -> str:
    if name in TOKEN_NAMES:
        return TOKEN_NAMES[name]
    for term in parser.terminals:
        if term.name == name and term.pattern.type == "str":
            return f"'{term.pattern.value}'"
    return name.lower()


def _describe_expected(parser: lark.Lark, expected: set[str]) -> str:
    names = sorted({_token_name(parser, e) for e in expected})
    # Keywords are string terminals; list them last, after the structural tokens.
    names.sort(key=lambda n: (n.strip("'") in KEYWORDS, n))
    if len(names) > 6:
        names = names[:6] + ["..."]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _found(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    return f"'{token.value}'"


def parse(text: str, filename: str = "<string>") -> ast.Module:
    """Parse a whole `.bm` file. Raises `BmcError` pointing at the first syntax error."""
    source = Source(filename, text)
    parser = _parser()
    try:
        tree = parser.parse(text)
    except lark.UnexpectedCharacters as e:
        span = Span(source, e.line, e.column, e.line, e.column + 1)
        char = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        hint = ()
        if char == "'":
            hint = ('strings use double quotes: "same"',)
        raise BmcError(f"unexpected character {char!r}", span, notes=hint) from None
    except lark.UnexpectedToken as e:
        tok = e.token
        if tok.type == "$END":
            lines = text.splitlines() or [""]
            line = len(lines)
            col = len(lines[-1]) + 1
            span = Span(source, line, col, line, col + 1)
        else:
            span = Span(source, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + 1)
        expected = _describe_expected(parser, set(e.expected))
        notes: tuple[str, ...] = ()
        if tok.type != "$END" and tok.value in KEYWORDS:
            notes = (f"'{tok.value}' is a keyword and cannot be used as a name",)
        raise BmcError(f"expected {expected}, found {_found(tok)}", span, notes=notes) from None
    except lark.UnexpectedEOF as e:  # pragma: no cover - LALR reports UnexpectedToken($END) instead
        lines = text.splitlines() or [""]
        span = Span(source, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
        raise BmcError(f"unexpected end of file, expected {_describe_expected(parser, set(e.expected))}", span) from None
    return _ToAst(source).transform(tree)


class _ToAst(Transformer):
    """Builds AST nodes bottom-up. Semantic checks happen later, in lowering, never here."""

    def __init__(self, source: Source):
        super().__init__()
        self.source = source

    # -- spans --
    def _span(self, meta) -> Span:
        return Span(self.source, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tok(self, tok: Token) -> Span:
        return Span(self.source, tok.line, tok.column, tok.end_line, tok.end_column)

    def _join(self, a, b) -> Span:
        return Span(self.source, a.span.line, a.span.column, b.span.end_line, b.span.end_column)

    # -- expressions --
    def number(self, children):
        (tok,) = children
        text = str(tok)
        is_float = any(c in text for c in ".eE")
        return ast.Num(float(text) if is_float else int(text), self._tok(tok))

    def name(self, children):
        (tok,) = children
        return ast.Name(str(tok), self._tok(tok))

    def string(self, children):
        (tok,) = children
        raw = str(tok)[1:-1]
        value = raw.encode("utf-8").decode("unicode_escape") if "\\" in raw else raw
        return ast.Str(value, self._tok(tok))

    @v_args(meta=True)
    def list(self, meta, children):
        return ast.ListExpr(tuple(c for c in children if c is not None), self._span(meta))

    @v_args(meta=True)
    def call(self, meta, children):
        func, *args = children
        positional = tuple(a for a in args if a is not None and not isinstance(a, ast.Kwarg))
        kwargs = tuple(a for a in args if isinstance(a, ast.Kwarg))
        return ast.Call(str(func), self._tok(func), positional, kwargs, self._span(meta))

    @v_args(meta=True)
    def kwarg(self, meta, children):
        name, value = children
        return ast.Kwarg(str(name), value, self._span(meta))

    def _binop(op):  # noqa: N805 - a factory used in the class body
        def rule(self, children):
            lhs, rhs = children
            return ast.BinOp(op, lhs, rhs, self._join(lhs, rhs))

        return rule

    add = _binop("+")
    sub = _binop("-")
    mul = _binop("*")
    div = _binop("/")
    matmul = _binop("@")
    pow = _binop("**")

    def compare(self, children):
        lhs, op, rhs = children
        return ast.BinOp(str(op), lhs, rhs, self._join(lhs, rhs))

    @v_args(meta=True)
    def neg(self, meta, children):
        (operand,) = children
        return ast.Neg(operand, self._span(meta))

    # -- types --
    @v_args(meta=True)
    def tensor_type(self, meta, children):
        dtype, *dims = children
        return ast.TensorType(str(dtype), self._tok(dtype), tuple(d for d in dims if d is not None), self._span(meta))

    def ellipsis(self, children):
        (tok,) = children
        return ast.Ellipsis_(self._tok(tok))

    def scalar_type(self, children):
        (tok,) = children
        return tok

    # -- statements --
    @v_args(meta=True)
    def input_decl(self, meta, children):
        name, ty = children
        return ast.InputDecl(str(name), self._tok(name), ty, "input", self._span(meta))

    @v_args(meta=True)
    def target_decl(self, meta, children):
        name, ty = children
        return ast.InputDecl(str(name), self._tok(name), ty, "target", self._span(meta))

    @v_args(meta=True)
    def param_decl(self, meta, children):
        name, ty, (random, init) = children
        return ast.ParamDecl(str(name), self._tok(name), ty, init, random, self._span(meta))

    def init_random(self, children):
        return (True, children[0])

    def init_value(self, children):
        return (False, children[0])

    @v_args(meta=True)
    def assign(self, meta, children):
        name, value = children
        return ast.Assign(str(name), self._tok(name), value, False, self._span(meta))

    @v_args(meta=True)
    def output_decl(self, meta, children):
        name, value = children
        return ast.Assign(str(name), self._tok(name), value, True, self._span(meta))

    @v_args(meta=True)
    def return_stmt(self, meta, children):
        return ast.Return(children[0], self._span(meta))

    def empty(self, children):
        return None

    # -- items --
    @v_args(meta=True)
    def model_param(self, meta, children):
        name, default = children
        return ast.ModelParam(str(name), default, self._span(meta))

    def model_params(self, children):
        return tuple(c for c in children if c is not None)

    @v_args(meta=True)
    def model_def(self, meta, children):
        name, *body = children
        # `model_params?` leaves no placeholder when a model has no parameter list (`model m { ... }`)
        params = body.pop(0) if body and isinstance(body[0], tuple) else ()
        return ast.ModelDef(str(name), self._tok(name), params, tuple(s for s in body if s is not None), self._span(meta))

    @v_args(meta=True)
    def layer_arg(self, meta, children):
        name, ty, default = children
        if isinstance(ty, Token):
            return ast.LayerArg(str(name), None, str(ty), default, self._span(meta))
        return ast.LayerArg(str(name), ty, None, default, self._span(meta))

    @v_args(meta=True)
    def layer_def(self, meta, children):
        name, *rest = children
        args = tuple(a for a in rest if isinstance(a, ast.LayerArg))
        body = tuple(s for s in rest if s is not None and not isinstance(s, ast.LayerArg))
        return ast.LayerDef(str(name), self._tok(name), args, body, self._span(meta))

    @v_args(meta=True)
    def setting(self, meta, children):
        key, *values = children
        return ast.Setting(str(key), self._tok(key), tuple(values), self._span(meta))

    @v_args(meta=True)
    def train_def(self, meta, children):
        model, *settings = children
        return ast.TrainDef(str(model), self._tok(model), tuple(settings), self._span(meta))

    def module(self, children):
        return ast.Module(self.source, tuple(children))
