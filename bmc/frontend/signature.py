"""Binding call arguments to a builtin's or layer's parameters, with errors that point at the argument."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bmc.diagnostics import BmcError
from bmc.syntax import ast

REQUIRED = object()


@dataclass(frozen=True)
class Signature:
    """Parameter names in order, each with a default or REQUIRED."""

    func: str
    params: tuple[tuple[str, Any], ...]

    def describe(self) -> str:
        parts = [n if d is REQUIRED else f"{n}={_show(d)}" for n, d in self.params]
        return f"{self.func}({', '.join(parts)})"

    def bind(self, call: ast.Call) -> dict[str, ast.Expr | Any]:
        """Map parameter names to argument expressions (or defaults). Raises BmcError on a mismatch."""
        names = [n for n, _ in self.params]
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
        for name, default in self.params:
            if name not in bound:
                if default is REQUIRED:
                    raise BmcError(f"{self.func}() is missing argument '{name}'", call.span,
                                   notes=(f"signature: {self.describe()}",))
                bound[name] = default
        return bound


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    return str(v)
