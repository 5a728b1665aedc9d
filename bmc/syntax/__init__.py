"""The `.bm` front end: grammar (grammar/bm.lark), AST and parser."""

from bmc.syntax.parser import parse

__all__ = ["parse"]
