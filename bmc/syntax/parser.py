"""Parse `.bm` text into the AST (`bmc.syntax.ast`) with Lark LALR; explain.py turns Lark's errors into `BmcError`s."""

from __future__ import annotations

import re

import lark
from lark import Token, v_args
from lark.visitors import Transformer_NonRecursive

from bmc.diagnostics import BmcError, Source, Span
from bmc.syntax import ast, grammar
from bmc.syntax.literals import number_value
from bmc.syntax.nesting import check_nesting

# One escape in a string literal, as Python reads it: \\n, \\", \\\\, \\x41, \\u00e9, \\N{...}, ...
PYTHON_ESCAPES = "\\'\"abfnrtv01234567xNuU"  # what may follow a backslash; another character stays as written
ESCAPE = re.compile(r"\\(N\{[^}]*\}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|[0-7]{1,3}|.)", re.S)


def parse(text: str, filename: str = "<string>") -> ast.Module:
    """Parse a whole `.bm` file. Raises `BmcError` pointing at the first syntax error."""
    source = Source(filename, text)
    parser = grammar.parser()
    try:
        tree = parser.parse(text)
    except lark.UnexpectedCharacters as e:
        from bmc.syntax import explain  # imported when there is a syntax error to explain, not at every start

        raise explain.unexpected_character(source, parser, e) from None
    except lark.UnexpectedToken as e:
        from bmc.syntax import explain

        raise explain.unexpected_token(source, parser, e) from None
    except lark.UnexpectedEOF as e:  # pragma: no cover - LALR reports UnexpectedToken($END) instead
        from bmc.syntax import explain

        lines = text.splitlines() or [""]
        span = Span(source, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
        expected = explain.describe_expected(parser, set(e.expected))
        raise BmcError(f"unexpected end of file, expected {expected}", span) from None
    try:
        module = _ToAst(source).transform(tree)
    except lark.exceptions.VisitError as e:  # Lark wraps what a callback raises (a literal out of range, a bad escape)
        if isinstance(e.orig_exc, BmcError):
            raise e.orig_exc from None
        raise
    check_nesting(module)
    return module


class _ToAst(Transformer_NonRecursive):
    """Builds AST nodes bottom-up, without recursion (a deeply nested expression is reported by `check_nesting`,
    never by Python's recursion limit). Semantic checks happen later, in lowering; only literals are checked here:
    numbers that no dtype holds and strings with a bad escape."""

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
        return ast.Num(number_value(str(tok), self._tok(tok)), self._tok(tok))

    def name(self, children):
        (tok,) = children
        return ast.Name(str(tok), self._tok(tok))

    def string(self, children):
        (tok,) = children
        span = self._tok(tok)

        def unescape(m: re.Match) -> str:  # one escape at a time, so the text around it stays as written
            if not m.group().isascii() or m.group()[1] not in PYTHON_ESCAPES:
                return m.group()  # an unknown escape stays as written, as in Python (which warns about it)
            try:
                return m.group().encode("ascii").decode("unicode_escape")
            except UnicodeDecodeError:
                raise BmcError(f"bad escape '{m.group()}' in a string", span) from None

        return ast.Str(ESCAPE.sub(unescape, str(tok)[1:-1]), span)

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
    def subscript(self, meta, children):
        value, *indices = children
        return ast.Subscript(value, tuple(i for i in indices if i is not None), self._span(meta))

    @v_args(meta=True)
    def range(self, meta, children):
        start, _, stop, _, step = children  # the colons are tokens, so the span always covers them
        return ast.Range(start, stop, step, self._span(meta))

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
        stmts = tuple(s for s in body if s is not None)
        return ast.ModelDef(str(name), self._tok(name), params, stmts, self._span(meta))

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
    def target_setting(self, meta, children):
        key = Span(self.source, meta.line, meta.column, meta.line, meta.column + len("target"))
        return ast.Setting("target", key, tuple(children), self._span(meta))

    @v_args(meta=True)
    def train_def(self, meta, children):
        model, *settings = children
        return ast.TrainDef(str(model), self._tok(model), tuple(settings), self._span(meta))

    def module(self, children):
        return ast.Module(self.source, tuple(children))
