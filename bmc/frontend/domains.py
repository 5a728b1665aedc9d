"""The values an argument accepts, declared with the signature it belongs to and checked in one place.

A builtin declares each parameter as `(name, default, domain)`: `("units", REQUIRED, SIZE)`,
`("rate", REQUIRED, Number(0, 1, high_open=True))`. `Signature.arguments` binds a call and takes every argument
through its domain, which evaluates it through the lowerer and checks it, so an argument outside its domain (zero
filters, a negative standard deviation, an infinite epsilon, padding of 2**31) is an error at that argument's own
`.bm` location, before the handler sees it, and a handler receives plain values: ints, floats, tensors,
initializers. Initializer arguments (bmc/init.py) and train-block settings (bmc/train/config.py) use the same
number domains.

Every number domain is finite: `inf` and `nan` satisfy no range a size or a rate has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bmc.diagnostics import BmcError, Span
from bmc.ir.graph import Value
from bmc.ir.types import DTYPES
from bmc.syntax import ast

MAX_SIZE = 2**31 - 1  # the largest dim or layer size: larger ones overflow int32 indexing (and any memory)


class Domain:
    """The values one argument accepts. `take` evaluates the argument (an AST expression, or the parameter's
    default as a plain value) and returns what the handler gets, or raises at `span`, the argument's location (the
    call's for a default)."""

    def take(self, lw: Any, e: Any, what: str, span: Span | None) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Number(Domain):
    """A finite number in a range, optionally an integer: `Number(0, 1, high_open=True)` is [0, 1)."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def take(self, lw, e, what, span):
        return self.check(lw.scalar(e, what), what, span)

    def check(self, v: int | float, what: str, span: Span | None) -> int | float:
        """`v` if it is in the domain (a float -0.0 as 0.0), else a located error saying what was expected."""
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise BmcError(f"{what} must be {self.describe()}, not {v!r}", span)
        inside = (isinstance(v, int) or not self.integer) and math.isfinite(v) and (
            self.low < v if self.low_open else self.low <= v) and (v < self.high if self.high_open else v <= self.high)
        if not inside:
            raise BmcError(f"{what} must be {self.describe()}, not {_show(v)}", span)
        return v if isinstance(v, int) else v + 0.0

    def describe(self) -> str:
        noun = "integer" if self.integer else "number"
        low, high = self.low, self.high
        if (low == 0 and self.low_open) or (self.integer and low == 1 and not self.low_open):
            head = f"a positive {noun}"
        elif low == 0 and not self.low_open and high == math.inf:
            return f"a{'n' * self.integer} {noun} of at least 0"
        elif low == -math.inf and high == math.inf:
            return f"a finite {noun}" if not self.integer else "an integer"
        elif self.integer:
            return f"an integer from {_show(low)} to {_show(high)}"
        else:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"a{'n' * self.integer} {noun} in {left}{_show(low)}, {_show(high)}{right}"
        if high == math.inf:
            return head
        return f"{head} {'less than' if self.high_open else 'of at most'} {_show(high)}"


def _show(v: float) -> str:
    if isinstance(v, int):
        return str(v)
    return f"{v:g}"


SIZE = Number(1, MAX_SIZE, integer=True)  # units, filters, a kernel, hidden, vocab, heads, a depth
COUNT = Number(1, integer=True)  # epochs, steps
INTEGER = Number(integer=True)
NON_NEGATIVE = Number(0)
POSITIVE = Number(0, low_open=True)
FRACTION = Number(0, 1, high_open=True)  # a dropout rate, a momentum: [0, 1)
FINITE = Number()
SEED = Number(0, 2**32 - 1, integer=True)  # the step keys derived from it stay within int64


@dataclass(frozen=True)
class Tensor(Domain):
    """A tensor value (lowered), not a number, string or list."""

    def take(self, lw, e, what, span):
        return lw.tensor(e, what)


@dataclass(frozen=True)
class Operand(Domain):
    """A tensor or a number (`maximum(x, 0)`): the lowered value, which the handler promotes to the other
    operand's dtype."""

    def take(self, lw, e, what, span):
        v = lw.expr(e)
        if isinstance(v, Value) or (isinstance(v, int | float) and not isinstance(v, bool)):
            return v
        shown = ("true" if v else "false") if isinstance(v, bool) else repr(v)
        raise BmcError(f"{what} must be a tensor or a number, not {shown}", span)


@dataclass(frozen=True)
class Flag(Domain):
    """true or false."""

    def take(self, lw, e, what, span):
        return lw.boolean(e, what)


@dataclass(frozen=True)
class Initializer(Domain):
    """An initializer: `xavier`, `normal(std = 0.01)`; its own arguments have the domains of bmc/init.py."""

    def take(self, lw, e, what, span):
        return lw.initializer(e)


@dataclass(frozen=True)
class Dtype(Domain):
    """A dtype name: f32, f64, i32, i64, bool."""

    def take(self, lw, e, what, span):
        if not isinstance(e, ast.Name) or e.id not in DTYPES:
            raise BmcError(f"{what} must be one of {', '.join(DTYPES)}", span)
        return e.id


@dataclass(frozen=True)
class Pair(Domain):
    """One size for both spatial axes or two ([height, width]), each in `each`: a kernel, a stride, a dilation."""

    each: Number = SIZE

    def take(self, lw, e, what, span):
        if e is None:  # a pool's stride: its size
            return None
        if isinstance(e, ast.ListExpr):
            if len(e.items) != 2:
                raise BmcError(f"{what} takes one number or two ([height, width])", e.span)
            first, second = (self.each.take(lw, i, what, i.span) for i in e.items)
            return (first, second)
        n = self.each.take(lw, e, what, span)
        return (n, n)


@dataclass(frozen=True)
class Padding(Domain):
    """"valid" (none), "same" (as much as keeps the size, at stride 1), a number of pixels on every side, or a list:
    [height, width] (each on both sides) or [top, left, bottom, right] (ONNX's pads order), taken as that 4-tuple."""

    pixels: Number = Number(0, MAX_SIZE, integer=True)
    modes: tuple[str, ...] = ("valid", "same")

    def take(self, lw, e, what, span):
        if isinstance(e, ast.Str | str):
            mode = e.value if isinstance(e, ast.Str) else e
            if mode not in self.modes:
                shown = ", ".join(f'"{m}"' for m in self.modes)
                raise BmcError(f'{what} must be {shown}, a number or a list of them, not "{mode}"', span)
            return mode
        if isinstance(e, ast.ListExpr):
            if len(e.items) not in (2, 4):
                raise BmcError(f"{what} takes one number, two ([height, width]) or four ([top, left, bottom, right])",
                               e.span)
            sides = tuple(self.pixels.take(lw, i, what, i.span) for i in e.items)
            return sides * 2 if len(sides) == 2 else sides
        return self.pixels.take(lw, e, what, span)


@dataclass(frozen=True)
class Choice(Domain):
    """One of a few strings: `mode = "linear"`."""

    options: tuple[str, ...]

    def take(self, lw, e, what, span):
        value = e.value if isinstance(e, ast.Str) else e
        if not isinstance(value, str) or value not in self.options:
            shown = ", ".join(f'"{o}"' for o in self.options)
            raise BmcError(f"{what} must be one of {shown}", span)
        return value


@dataclass(frozen=True)
class Axes(Domain):
    """An axis, a list of axes ([0, 1]) or none (all axes): a tuple of ints, or None. The op checks the range."""

    def take(self, lw, e, what, span):
        if e is None:
            return None
        if isinstance(e, ast.ListExpr):
            return tuple(INTEGER.take(lw, i, what, i.span) for i in e.items)
        return (INTEGER.take(lw, e, what, span),)


@dataclass(frozen=True)
class Items(Domain):
    """A list `[a, b, ...]` whose items are each in `each` (a permutation, the tensors to concatenate); `none`
    (the default) stays None."""

    each: Domain

    def take(self, lw, e, what, span):
        if e is None:
            return None
        if not isinstance(e, ast.ListExpr):
            raise BmcError(f"{what} must be a list such as [a, b]", span)
        return tuple(self.each.take(lw, i, what, i.span) for i in e.items)


@dataclass(frozen=True)
class OrNone(Domain):
    """A value of `each`, or None where the argument is left out (its default): clip's bounds."""

    each: Domain

    def take(self, lw, e, what, span):
        return None if e is None else self.each.take(lw, e, what, span)


@dataclass(frozen=True)
class Shape(Domain):
    """A target shape: dims (numbers, model parameters, symbols such as N, products), with -1 for one inferred dim."""

    def take(self, lw, e, what, span):
        if not isinstance(e, ast.ListExpr):
            raise BmcError(f"{what} must be a list such as [N, 784]", span)
        return tuple(-1 if isinstance(d, ast.Neg) and isinstance(d.operand, ast.Num) and d.operand.value == 1
                     else lw.dim(d, allow_symbols=True) for d in e.items)


@dataclass(frozen=True)
class Expression(Domain):
    """Any expression, passed to the handler unevaluated (a tensor or a number: `maximum(x, 0)`)."""

    def take(self, lw, e, what, span):
        return e
