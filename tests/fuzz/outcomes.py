"""What can happen to one input, and the tally of a campaign.

`ok` and `user_error` (a `BmcError`: exit 1) are the outcomes bmc may give any input. Every other outcome fails the
campaign: `internal_error` (exit 70, or any exception that is not a `BmcError`), `traceback` (a traceback printed
although the command did not fail as an internal error), `hang` (a stage ran past its time limit), `crash` (the
worker died of a signal), `memory` (a `MemoryError` under the worker's address-space limit) and `code_execution`
(a payload's marker file appeared). `rejected_valid` is a well-formed generated program that bmc refused, or an
input every other target accepted that the CUDA target refused: not a crash, but a finding all the same.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

OK, USER_ERROR = "ok", "user_error"
FAILING = ("internal_error", "traceback", "hang", "crash", "memory", "code_execution")
REJECTED_VALID = "rejected_valid"
OUTCOMES = (OK, USER_ERROR, REJECTED_VALID, *FAILING)


@dataclass
class Result:
    outcome: str
    stage: str = ""  # the stage it stopped in (check, numpy, run, onnx, cuda_source, cuda)
    detail: str = ""  # the error's text: a BmcError's rendering, an internal error's traceback
    located: bool = False  # a user error with file:line:col
    seconds: float = 0.0
    passed: list[str] = field(default_factory=list)  # the stages it passed

    @property
    def failed(self) -> bool:
        return self.outcome in FAILING

    def as_json(self) -> dict:
        return asdict(self)


@dataclass
class Tally:
    """Counts per kind of input and outcome, stages reached, and the failing inputs for triage."""

    counts: dict[str, Counter] = field(default_factory=dict)
    stages: Counter = field(default_factory=Counter)
    failures: list[dict] = field(default_factory=list)
    unlocated: Counter = field(default_factory=Counter)  # the first line of each user error without file:line:col
    seconds: float = 0.0

    def add(self, kind: str, job: dict, result: Result, failures_dir: Path | None = None) -> None:
        self.counts.setdefault(kind, Counter())[result.outcome] += 1
        self.stages.update(result.passed)
        if result.outcome == USER_ERROR and not result.located:
            self.unlocated[_first_line(result.detail)] += 1
        if result.failed or result.outcome == REJECTED_VALID:
            entry = {"id": job["id"], "kind": kind, "filename": job["filename"], "origin": job.get("origin", ""),
                     "mutations": job.get("mutations", []), **result.as_json()}
            if failures_dir is not None:
                entry["saved"] = str(save_input(failures_dir, job, result))
            self.failures.append(entry)

    def failing(self, exclude: tuple[str, ...] = ()) -> list[dict]:
        return [f for f in self.failures if f["outcome"] in FAILING and f["outcome"] not in exclude]

    def summary(self) -> str:
        lines = []
        for kind, counter in self.counts.items():
            total = sum(counter.values())
            parts = ", ".join(f"{o} {counter[o]}" for o in OUTCOMES if counter[o])
            lines.append(f"{kind}: {total} inputs: {parts}")
        lines.append("stages passed: " + ", ".join(f"{s} {n}" for s, n in self.stages.most_common()))
        lines.append(f"user errors without a location: {sum(self.unlocated.values())}")
        return "\n".join(lines)

    def report(self) -> dict:
        return {"counts": {k: {o: c[o] for o in OUTCOMES} for k, c in self.counts.items()},
                "stages": dict(self.stages), "unlocated_user_errors": dict(self.unlocated.most_common()),
                "seconds": self.seconds, "failures": self.failures}


def _first_line(text: str) -> str:
    """An error's first line with paths and numbers blanked, so that errors of one kind count together."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith(("<", " "))]
    line = (lines[0] if lines else text.strip())[:200]
    return re.sub(r"\d+", "N", re.sub(r"/\S*/", "/.../", line))


def save_input(folder: Path, job: dict, result: Result) -> Path:
    """The failing input as `<outcome>/<id>.bm` with `<id>.json` beside it (file name, mutations, the error)."""
    import base64

    out = folder / result.outcome
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{job['id']}.bm"
    path.write_bytes(base64.b64decode(job["source"]))
    meta = {k: v for k, v in job.items() if k != "source"}
    (out / f"{job['id']}.json").write_text(json.dumps({**meta, **result.as_json()}, indent=2) + "\n",
                                           encoding="utf-8")
    return path
