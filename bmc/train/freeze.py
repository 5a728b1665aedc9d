"""Which parameters training leaves as they are: the `freeze` setting (`freeze = stem, "layer1.*"`) and
`bmc train --freeze PATTERNS`.

A pattern is a parameter name as `bmc check` lists it, a glob of them (`*`, `?` and `[...]` as in fnmatch,
case-sensitive), or the name of a statement or layer call, which covers everything under it (`stem` is `stem` and
`stem.*`). A frozen parameter is a constant of the train step (bmc/train/step.py): it is not differentiated, has no
optimizer state and is never written. A running statistic (batch norm's `running_mean`, `running_var`) that a
pattern covers keeps its value too; one no pattern covers goes on updating, as without freeze.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from bmc.diagnostics import BmcError, Span, UsageError, suggest

if TYPE_CHECKING:
    from bmc.frontend.model_ir import ModelIR

EXAMPLE = "e.g. freeze = stem, \"layer1.*\" in the train block, or --freeze 'stem,layer1.*'"


@dataclass(frozen=True)
class Pattern:
    text: str
    span: Span | None = None  # where the train block writes it; None: given by --freeze or the API

    def matches(self, name: str) -> bool:
        return fnmatchcase(name, self.text) or fnmatchcase(name, self.text + ".*")

    def __str__(self) -> str:
        return self.text


def from_flag(value: str | Iterable[str | Pattern], flag: str = "--freeze") -> tuple[Pattern, ...]:
    """Patterns from a comma list (`--freeze 'stem,layer1.*'`) or an iterable of names and patterns."""
    items = value.split(",") if isinstance(value, str) else list(value)
    patterns = []
    for item in items:
        if isinstance(item, Pattern):
            patterns.append(item)
        elif not isinstance(item, str):
            raise UsageError(f"{flag} takes parameter names or glob patterns, not {item!r}", notes=(EXAMPLE,))
        elif item.strip():
            patterns.append(Pattern(item.strip()))
    if not patterns and isinstance(value, str):  # an empty list (the API's freeze=[]) freezes nothing
        raise UsageError(f"{flag} takes parameter names or glob patterns, separated by commas", notes=(EXAMPLE,))
    return tuple(patterns)


def frozen(model: ModelIR, patterns: Iterable[Pattern]) -> frozenset[str]:
    """The names of the parameters `patterns` cover; a pattern that covers none is an error at the pattern (or, from
    the command line, a usage error), with the closest name."""
    names = [p.name for p in model.graph.params]
    out: set[str] = set()
    for pattern in patterns:
        hit = [n for n in names if pattern.matches(n)]
        if not hit:
            raise _unmatched(pattern, model.name, names)
        out.update(hit)
    return frozenset(out)


def _unmatched(pattern: Pattern, model: str, names: list[str]) -> BmcError:
    prefixes = sorted({n.rsplit(".", k)[0] for n in names for k in range(1, n.count(".") + 1)})
    tops = list(dict.fromkeys(n.split(".", 1)[0] for n in names))
    shown = ", ".join(tops[:12]) + (f" and {len(tops) - 12} more" if len(tops) > 12 else "")
    candidates = [*names, *prefixes]
    same = [n for n in candidates if n.lower() == pattern.text.lower()]  # names are case-sensitive
    notes = (*((f"did you mean '{same[0]}'?",) if same else suggest(pattern.text, candidates)),
             f"the parameters of model '{model}' are under {shown}; `bmc check` lists them" if names
             else f"model '{model}' has no parameters")
    if pattern.span is not None:
        return BmcError(f"freeze pattern '{pattern.text}' matches no parameter", pattern.span, notes=notes)
    return UsageError(f"--freeze {pattern.text}: matches no parameter of model '{model}'", notes=notes)
