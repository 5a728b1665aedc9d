"""`bmc ops` and docs/ops.md: every op with its shape rule, gradient and lowerings, read from the code (issue 10)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bmc import op_index
from bmc.ops import REGISTRY

ROOT = Path(__file__).resolve().parent.parent


def test_docs_ops_md_is_current():
    want = op_index.markdown()
    got = (ROOT / "docs" / "ops.md").read_text(encoding="utf-8")
    assert got == want, "docs/ops.md is out of date: run `bmc ops --markdown > docs/ops.md`"


def test_every_op_is_indexed_and_every_location_exists():
    rows = {r.name: r for r in op_index.rows()}
    assert set(rows) == set(REGISTRY)
    for r in rows.values():
        for cell in (r.defined, r.shape, r.gradient, *r.lowerings.values()):
            for word in cell.replace("(", " ").replace(")", " ").replace(",", " ").split():
                if ".py:" in word:  # a file and a name in it, both real
                    path, name = word.split(":")
                    assert (ROOT / path).exists(), (r.name, word)
                    assert f"def {name.split('.')[-1]}" in (ROOT / path).read_text() or \
                        f"class {name.split('.')[-1]}" in (ROOT / path).read_text(), (r.name, word)


def test_the_index_says_where_the_hard_cases_are():
    rows = {r.name: r for r in op_index.rows()}
    assert "differentiable_form" in rows["lstm"].gradient  # found from the op, not only from bmc/train/step.py
    assert rows["lstm"].lowerings["onnx"].startswith("backends/onnx/rules.py:")
    assert rows["lstm"].lowerings["numpy"] == op_index.DECOMPOSED
    assert rows["scan"].gradient.startswith("bmc/passes/scan_grad.py")
    assert "bmc/reference/kernels.py:_conv2d" in rows["conv2d"].lowerings["numpy"]  # not a naming convention
    assert rows["reshape"].lowerings["cuda"].startswith("backends/cuda/codegen.py")


def test_bmc_ops_prints_the_index():
    out = subprocess.run([sys.executable, "-m", "bmc.cli", "ops"], capture_output=True, text=True, check=True).stdout
    assert out == op_index.text()
    md = subprocess.run([sys.executable, "-m", "bmc.cli", "ops", "--markdown"], capture_output=True, text=True,
                        check=True).stdout
    assert md == op_index.markdown()
