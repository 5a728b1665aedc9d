"""The ONNX rule table: for each op class, the rule that adds its standard ONNX nodes through an `Emitter`
(emitter.py) and returns the names of the op's results (None for a result nobody reads).

Rules register with `@lower(Op)` in rules.py, scan.py and random_hash.py; the package imports those modules, so the
table is complete once anything of the backend is imported. Ops without a rule are decomposed (`Op.decompose`)
before export.
"""

from __future__ import annotations

from collections.abc import Callable

from bmc.ir.graph import Node
from bmc.rule_table import RuleTable

from .emitter import Emitter

Rule = Callable[[Node, list[str], Emitter], "str | list[str | None]"]
RULES: RuleTable[Rule] = RuleTable("onnx", "nodes")
lower = RULES.register
supports = RULES.supports
