"""Small Markdown helpers of the generated pages: heading ids as Python-Markdown's toc extension makes them, table
cells, and values and argument domains as a `.bm` file writes them."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from bmc.frontend import domains as D
from bmc.frontend.signature import REQUIRED
from bmc.init import Init


def slug(heading: str) -> str:
    """The id toc gives a heading (its default slugify over the heading's text, code marks dropped)."""
    text = unicodedata.normalize("NFKD", heading.replace("`", "")).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def cell(text: str) -> str:
    """Text for a table cell: a pipe outside a code span would end the cell (inside one, tables leave it)."""
    parts = text.replace("\n", " ").split("`")
    return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]


def value(v: Any) -> str:
    """A default as a `.bm` file would write it."""
    if v is REQUIRED:
        return "required"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, Init):
        return str(v).replace("=", " = ")
    return str(v)


def accepts(domain: D.Domain) -> str:
    """What an argument of this domain may be, in words."""
    if isinstance(domain, D.Number):
        return domain.describe()
    if isinstance(domain, D.Pair):
        return f"one or two ([height, width]), each {domain.each.describe()}"
    if isinstance(domain, D.Padding):
        modes = ", ".join(f'"{m}"' for m in domain.modes)
        return (f"{modes}, {domain.pixels.describe()} (pixels on every side), [height, width] or "
                "[top, left, bottom, right] of them")
    if isinstance(domain, D.Choice):
        return ", ".join(f'"{o}"' for o in domain.options)
    if isinstance(domain, D.Items):
        return f"a list [a, b, ...], each {accepts(domain.each)}"
    if isinstance(domain, D.OrNone):
        return accepts(domain.each)
    words = {
        D.Tensor: "a tensor", D.Operand: "a tensor or a number", D.Flag: "true or false",
        D.Initializer: "an initializer (below)", D.Dtype: "a dtype: " + ", ".join(D.DTYPES),
        D.Axes: "an axis or a list of axes [0, 1]", D.Shape: "a list of dims (numbers, model parameters, symbols "
        "such as N, products), -1 for one inferred dim", D.Expression: "a call of a user-defined layer",
    }
    if type(domain) not in words:
        raise KeyError(f"bmc/docgen/markdown.py:accepts has no words for the domain {type(domain).__name__}")
    return words[type(domain)]
