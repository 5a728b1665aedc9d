"""Shared fixtures. Tests run from the repository root so `.bm` paths in messages and golden files are stable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def fashion_mnist_or_skip():
    from bmc.data import find_fashion_mnist

    path = find_fashion_mnist()
    if path is None:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    return path


UPDATE = bool(os.environ.get("BMC_UPDATE_EXPECTED"))


# Property tests (tests/test_pass_properties.py): a fixed seed and a small budget by default, so CI is fast and a
# failure reproduces; BMC_FUZZ_EXAMPLES=5000 runs that many examples per property from random seeds (a failure prints
# the shrunk graph and a @reproduce_failure blob; `pytest --hypothesis-seed=S` fixes the seed of a long run).
FUZZ_EXAMPLES = int(os.environ.get("BMC_FUZZ_EXAMPLES") or 0)
try:
    from hypothesis import HealthCheck, Phase, settings
except ImportError:  # hypothesis is a dev dependency; the property tests skip without it
    pass
else:
    _quiet = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
    settings.register_profile("ci", max_examples=60, derandomize=True, database=None, deadline=None,
                              print_blob=True, suppress_health_check=_quiet,
                              phases=[p for p in Phase if p is not Phase.explain])  # explaining costs seconds
    settings.register_profile("fuzz", max_examples=FUZZ_EXAMPLES or 1, derandomize=False, database=None,
                              deadline=None, print_blob=True, suppress_health_check=_quiet)
    settings.load_profile("fuzz" if FUZZ_EXAMPLES else "ci")
