"""`python -m bmc.docgen [DOCS_DIR]`: write the generated pages (docs/language.md, docs/cli.md) atomically."""

from __future__ import annotations

import sys
from pathlib import Path

from bmc.docgen import write

if __name__ == "__main__":
    docs = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "docs"
    for path in write(docs):
        print(f"wrote {path}")
