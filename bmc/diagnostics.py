"""Source spans and user-facing errors.

Every error a user can act on is a `BmcError`. Errors that point into a `.bm` file carry a `Span` and render as

    file.bm:3:14: error: message
        h = relu(dense(image, hiden))
                              ^^^^^

Internal errors (bugs in bmc) are not `BmcError`s; the CLI reports them separately and asks for a bug report.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """The text of one `.bm` file (or string) and the name it is reported under."""

    name: str
    text: str

    def line(self, lineno: int) -> str:
        lines = self.text.splitlines()
        return lines[lineno - 1] if 0 < lineno <= len(lines) else ""


@dataclass(frozen=True)
class Span:
    """A region of a source: 1-based line and column of its start and end (end column exclusive)."""

    source: Source
    line: int
    column: int
    end_line: int
    end_column: int

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
        if self.span is None:
            head = f"error: {self.message}"
        else:
            head = f"{self.span}: error: {self.message}\n{self.span.pinpoint()}"
        return "\n".join([head, *(f"note: {n}" for n in self.notes)])

    def __str__(self) -> str:
        return self.render()


class DataError(BmcError):
    """Missing or malformed training data."""


class UsageError(BmcError):
    """A bad command-line value or API argument."""
