"""The nesting limit: how deep an expression may nest, checked once after parsing.

The parser builds the AST without recursion, but lowering, linting and the other walks over expressions recurse
once per level. So every expression is measured here, iteratively, and one nested more than `MAX_DEPTH` levels
(calls in calls, unary minuses, a chain of operators: `a + b + c` is two levels of `+`) is an error at the node
where it passes the limit. Everything after parsing may then rely on `MAX_DEPTH` (see `bmc.frontend.deep`).
"""

from __future__ import annotations

from collections.abc import Iterator

from bmc.diagnostics import BmcError
from bmc.syntax import ast

MAX_DEPTH = 1000  # levels of nesting in one expression


def check_nesting(module: ast.Module) -> None:
    for root in _roots(module):
        stack = [(root, 1)]
        while stack:
            e, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise BmcError(f"this expression nests more than {MAX_DEPTH} levels deep", e.span,
                               notes=("every call, operator and unary minus inside another is a level; split the "
                                      "expression into named statements (h1 = ..., h2 = f(h1))",))
            stack.extend((child, depth + 1) for child in reversed(children(e)))


def children(e) -> tuple:
    """The expressions directly inside `e` (a keyword argument's value counts as the call's argument)."""
    if isinstance(e, ast.Call):
        return (*e.args, *(k.value for k in e.kwargs))
    if isinstance(e, ast.BinOp):
        return (e.lhs, e.rhs)
    if isinstance(e, ast.Neg):
        return (e.operand,)
    if isinstance(e, ast.ListExpr):
        return e.items
    if isinstance(e, ast.Subscript):
        return e.children
    return ()


def _roots(module: ast.Module) -> Iterator:
    """Every top-level expression of a file, in source order: statements, defaults, dims and settings."""
    for item in module.items:
        if isinstance(item, ast.TrainDef):
            for s in item.settings:
                yield from s.values
            continue
        if isinstance(item, ast.ModelDef):
            yield from (p.default for p in item.params)
        else:
            for a in item.args:
                if a.type is not None:
                    yield from _dims(a.type)
                if a.default is not None:
                    yield a.default
        for stmt in item.body:
            if isinstance(stmt, ast.InputDecl | ast.ParamDecl):
                yield from _dims(stmt.type)
            if isinstance(stmt, ast.ParamDecl):
                yield stmt.init
            elif isinstance(stmt, ast.Assign | ast.Return) and stmt.value is not None:
                yield stmt.value


def _dims(t: ast.TensorType) -> Iterator:
    return (d for d in t.dims if not isinstance(d, ast.Ellipsis_))
