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
