"""Code-execution probes: every payload in every place of a small valid model, through every stage.

Random mutants rarely carry a payload and still compile (most payloads break the syntax), so the campaign also runs
these deterministic inputs: examples/linear_regression.bm with each Python and C payload after a statement as a
comment, as the train block's `data` string, and as the file name. All of them must compile (or be refused) without
a marker appearing; the CUDA source is searched for C payloads as code, and where nvcc is installed the campaign
compiles and loads the probes that pass (`cuda_every`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tests.fuzz import payloads

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "examples" / "linear_regression.bm"
STAGES = ["check", "numpy", "run", "onnx", "cuda_source"]


def _escaped(code: str) -> str:
    return code.replace("\\", "\\\\").replace('"', '\\"')


def probes(markers: Path) -> Iterator[tuple[str, str, str, str]]:
    """(id, what, text, file name) for every payload and place."""
    base = BASE.read_text(encoding="utf-8")
    lines = base.split("\n")
    statement = next(i for i, line in enumerate(lines) if " = " in line and "model" not in line)
    n = 0
    for where in ("comment", "string"):
        for index in range(len(payloads.all_payloads(markers, "p"))):
            job_id = f"p{n}"
            code = payloads.all_payloads(markers, job_id)[index]
            if where == "comment":
                changed = list(lines)
                changed[statement] += " # " + code
                text = "\n".join(changed)
            else:
                at = re.search(r"^\s*data\s*=.*$", base, flags=re.MULTILINE)
                text = base[:at.start()] + f'    data = "{_escaped(code)}"' + base[at.end():]
            yield job_id, f"payload {index} in a {where}", text, "input.bm"
            n += 1
    for index in range(len(payloads.file_names("p"))):
        job_id = f"p{n}"
        yield job_id, f"payload {index} as the file name", base, payloads.file_names(job_id)[index]
        n += 1
