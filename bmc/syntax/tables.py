"""Write the `.bm` grammar's LALR tables beside it, after an edit of grammar/bm.lark or an upgrade of lark:

    python -m bmc.syntax.tables            # writes grammar/bm.tables.pickle
    python -m bmc.syntax.tables --check    # exit 1 if the shipped tables were made from another grammar or lark

`bmc.syntax.grammar.parser` loads the tables instead of building them at every start (about 0.05 s), and ignores
them when they do not match (tests/test_grammar_tables.py fails then, naming this command). Lark numbers the
parser's states in an order that varies between runs, so regenerating changes the file's bytes but not the parser.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from importlib import resources
from pathlib import Path

import lark
from lark.grammar import Rule
from lark.lexer import TerminalDef

from bmc.syntax import grammar

COMMAND = "python -m bmc.syntax.tables"


def tables(text: str) -> dict:
    """The tables of grammar `text` as plain data (what `Lark.save` pickles), with the key they are used under."""
    data, memo = grammar.build(text).memo_serialize([TerminalDef, Rule])
    return {"key": grammar.tables_key(text), "lark": lark.__version__, "data": data, "memo": memo}


def stale() -> str | None:
    """Why the shipped tables are not used (None: they are)."""
    saved = grammar.read_tables()
    if saved is None:
        return f"grammar/{grammar.TABLES} is missing or unreadable"
    if saved.get("key") != grammar.tables_key(grammar.grammar_text()):
        return (f"grammar/{grammar.TABLES} was made from another grammar/{grammar.GRAMMAR} or lark (made with lark "
                f"{saved.get('lark')}, lark {lark.__version__} is installed)")
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if the shipped tables are stale")
    args = ap.parse_args(argv)
    if args.check:
        why = stale()
        print(f"{why}: run {COMMAND}" if why else f"grammar/{grammar.TABLES} matches the grammar")
        return 1 if why else 0
    path = Path(str(resources.files("bmc.grammar").joinpath(grammar.TABLES)))
    path.write_bytes(pickle.dumps(tables(grammar.grammar_text()), protocol=5))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
