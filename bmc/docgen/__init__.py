"""The generated pages of the documentation site (docs/): the language reference, from the builtin tables and
signatures the compiler checks with, and the command-line reference, from `bmc`'s argument parser.
`python -m bmc.docgen` writes them; tests/test_docs.py fails when a committed page differs from what this makes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def pages() -> dict[str, Callable[[], str]]:
    """Each generated page of docs/ and the function that makes its text."""
    from bmc import op_index
    from bmc.docgen.cli_reference import cli_reference
    from bmc.docgen.language import language_reference

    return {"language.md": language_reference, "cli.md": cli_reference, "ops.md": op_index.markdown}


def write(docs: Path) -> list[Path]:
    """Write every generated page into `docs`, each through a temporary file renamed into place."""
    written = []
    for name, make in pages().items():
        path = docs / name
        tmp = path.with_name(f".{name}.tmp-{os.getpid()}")
        tmp.write_text(make(), encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written
