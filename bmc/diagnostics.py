"""Source spans and user-facing errors.

Every error a user can act on is a `BmcError`. Errors that point into a `.bm` file carry a `Span` and render as

    file.bm:3:14: error: message
        h = relu(dense(image, hiden))
                              ^^^^^

A `BmcWarning` is a likely mistake that still compiles (a loss given probabilities, an accidental outer product);
it renders the same way with `warning:`, and the `error` policy (`-W error`) raises it as a `BmcError` instead.

Internal errors (bugs in bmc) are not `BmcError`s; the CLI reports them separately and asks for a bug report.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """The text of one `.bm` file (or string) and the name it is reported under."""

    name: str
    text: str

    def line(self, lineno: int) -> str:
        """Line `lineno` as the parser counts lines: only `\\n` ends one (a `\\r`, form feed or U+2028 in a comment
        does not, so the line quoted in a message or a generated comment is the one the span is on)."""
        lines = self.text.split("\n")
        return lines[lineno - 1].removesuffix("\r") if 0 < lineno <= len(lines) else ""


@dataclass(frozen=True)
class Span:
    """A region of a source: 1-based line and column of its start and end (end column exclusive).

    `origin` says, for the span of an op, which unrolled statement made it: the keys of the statements and layer
    calls it was lowered under, outermost first (`("h", "h.0", "h.0.a")` for statement `a` of the first copy of a
    repeated layer called from statement `h`; see bmc/frontend/origin.py). It travels with the span through every
    pass, and takes no part in comparing spans."""

    source: Source
    line: int
    column: int
    end_line: int
    end_column: int
    origin: tuple[str, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        return f"{self.source.name}:{self.line}:{self.column}"

    @property
    def location(self) -> str:
        """`file:line` for comments in generated code."""
        return f"{self.source.name}:{self.line}"

    def text(self) -> str:
        if self.line == self.end_line:
            return self.source.line(self.line)[self.column - 1 : self.end_column - 1]
        return self.source.line(self.line)[self.column - 1 :]

    def pinpoint(self) -> str:
        """The source line and a caret under the span (to the end of the line if the span spans lines)."""
        text = self.source.line(self.line)
        start = self.column - 1
        end = self.end_column - 1 if self.end_line == self.line else len(text)
        width = max(1, end - start)
        prefix = "".join("\t" if ch == "\t" else " " for ch in text[:start])
        return f"    {text}\n    {prefix}{'^' * width}"


class BmcError(Exception):
    """An error the user can act on. `span` points into their file when there is one."""

    def __init__(self, message: str, span: Span | None = None, *, notes: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.span = span
        self.notes = tuple(notes)

    def render(self) -> str:
        return render("error", self.message, self.span, self.notes)

    def __str__(self) -> str:
        return self.render()


def render(severity: str, message: str, span: Span | None, notes: tuple[str, ...]) -> str:
    """`file:line:col: severity: message`, the source line with a caret, then one `note:` line per note."""
    head = f"{severity}: {message}" if span is None else f"{span}: {severity}: {message}\n{span.pinpoint()}"
    return "\n".join([head, *(f"note: {n}" for n in notes)])


WARNING_POLICIES = ("default", "error", "ignore")  # report warnings, raise the first as an error, or drop them


@dataclass(frozen=True)
class BmcWarning:
    """A likely mistake in a model that still compiles: located and rendered like an error, with a fix hint."""

    message: str
    span: Span | None = None
    notes: tuple[str, ...] = ()

    def render(self) -> str:
        return render("warning", self.message, self.span, self.notes)

    def as_error(self) -> BmcError:
        return BmcError(self.message, self.span, notes=(*self.notes, "this warning is an error under -W error"))


class DataError(BmcError):
    """Missing or malformed training data."""


class UsageError(BmcError):
    """A bad command-line value or API argument."""


def check_policy(policy: str) -> str:
    if policy not in WARNING_POLICIES:
        raise UsageError(f"warnings must be one of {', '.join(WARNING_POLICIES)}, not '{policy}'")
    return policy


def apply_policy(warnings: list[BmcWarning], policy: str) -> tuple[BmcWarning, ...]:
    """The warnings to report under a policy: all of them, none, or (`error`) the first raised as a `BmcError`."""
    if check_policy(policy) == "error" and warnings:
        raise warnings[0].as_error()
    return () if policy == "ignore" else tuple(warnings)


def suggest(name: str, candidates: list[str]) -> tuple[str, ...]:
    """A "did you mean" note for a misspelt name, when one of `candidates` is close."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return (f"did you mean '{close[0]}'?",) if close else ()
