"""Every op runs on every backend: it has a lowering rule there, or a decomposition into ops that do (STYLE.md 2).

A new op without either fails here, not in the middle of someone's model.
"""

from __future__ import annotations

import pytest

from bmc.ops import REGISTRY
from bmc.reference.rules import RULES


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_numpy_backend_has_a_rule_or_a_decomposition(name: str):
    op = REGISTRY[name]
    assert op in RULES or op.has_decomposition(), f"op '{name}' has no NumPy rule (@lower) and no decompose()"


def test_numpy_rules_are_for_registered_ops():
    assert {op.name for op in RULES} <= set(REGISTRY)
