"""Binding call arguments to a builtin's, layer's or initializer's parameters, with errors that point at the
argument, and taking each through its declared domain (bmc/frontend/domains.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bmc.diagnostics import BmcError, Span
from bmc.frontend.domains import Domain, Expression
from bmc.syntax import ast

REQUIRED = object()
ANY = Expression()  # an argument passed on unevaluated (a user layer's, bound by the layer itself)


@dataclass(frozen=True)
class Param:
    """One parameter: its name, its default (or REQUIRED) and the values it accepts."""

    name: str
    default: Any = REQUIRED
    domain: Domain = ANY


class Args(dict):
    """The arguments of one call, by name, as their domains took them; `span(name)` is where each was written
    (the call's span for a default)."""

    def __init__(self, values: dict[str, Any], spans: dict[str, Span]):
        super().__init__(values)
        self.spans = spans

    def span(self, name: str) -> Span:
        return self.spans[name]


@dataclass(frozen=True)
class Signature:
    """Parameter names in order, each with a default or REQUIRED, and a domain."""

    func: str
    params: tuple[Param, ...]

    def describe(self) -> str:
        parts = [p.name if p.default is REQUIRED else f"{p.name}={_show(p.default)}" for p in self.params]
        return f"{self.func}({', '.join(parts)})"

    def bind(self, call: ast.Call) -> dict[str, ast.Expr | Any]:
        """Map parameter names to argument expressions (or defaults). Raises BmcError on a mismatch."""
        names = [p.name for p in self.params]
        if len(call.args) > len(names):
            extra = call.args[len(names)]
            raise BmcError(
                f"{self.func}() takes {len(names)} argument{'s' * (len(names) != 1)} but {len(call.args)} were given",
                extra.span, notes=(f"signature: {self.describe()}",),
            )
        bound: dict[str, Any] = dict(zip(names, call.args, strict=False))
        for kw in call.kwargs:
            if kw.name not in names:
                raise BmcError(f"{self.func}() has no argument named '{kw.name}'", kw.span,
                               notes=(f"signature: {self.describe()}",))
            if kw.name in bound:
                raise BmcError(f"{self.func}() got argument '{kw.name}' twice", kw.span)
            bound[kw.name] = kw.value
        for p in self.params:
            if p.name not in bound:
                if p.default is REQUIRED:
                    raise BmcError(f"{self.func}() is missing argument '{p.name}'", call.span,
                                   notes=(f"signature: {self.describe()}",))
                bound[p.name] = p.default
        return bound

    def arguments(self, lw: Any, call: ast.Call) -> Args:
        """Bind `call` and take every argument through its domain, in the order of the parameters: the one place
        where a builtin's arguments are checked."""
        bound = self.bind(call)
        spans = {p.name: getattr(bound[p.name], "span", call.span) for p in self.params}
        values = {p.name: p.domain.take(lw, bound[p.name], f"{self.func}'s {p.name}", spans[p.name])
                  for p in self.params}
        return Args(values, spans)


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    return str(v)
