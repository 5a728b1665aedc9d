"""Every op runs on every target: it has a lowering rule there, or a decomposition into ops that do (STYLE.md 2).
One test over (target, op), reading each target's rule tables through the registry (bmc/targets.py), as
`bmc ops` does. A new op without either fails here, not in the middle of someone's model.
"""

from __future__ import annotations

import pytest

from bmc import op_index, targets
from bmc.ops import REGISTRY


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("target", sorted(targets.TARGETS))
def test_every_op_has_a_rule_or_a_decomposition_on_every_target(target: str, name: str):
    op = REGISTRY[name]
    assert op_index.lowering(target, op) != "none", f"op '{name}' has no {target} rule and no decompose()"


@pytest.mark.parametrize("target", sorted(targets.TARGETS))
def test_rules_are_for_registered_ops(target: str):
    for table in targets.target(target).TABLES:
        assert set(table) <= set(REGISTRY.values()), table
