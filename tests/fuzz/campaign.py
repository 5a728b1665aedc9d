"""A fuzzing campaign: the inputs (probes, mutants and generated programs), the stages each goes through, the pool
that runs them, and the tally.

The deterministic code-execution probes (probes.py) run first. Every input is checked; one that passes goes on to
the NumPy build and the generated module's forward and train step. Samples go further: every `onnx_every`-th input
is also exported to ONNX (inference and train step), every `cuda_source_every`-th has its CUDA source generated, and
of the inputs that pass every stage, the first and then every `cuda_every`-th (0: none), and with `cuda_probes`
every probe, is built again for the CUDA target by nvcc and loaded (kind `cuda`): nvcc takes seconds per model.
"""

from __future__ import annotations

import base64
import itertools
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.fuzz.outcomes import OK, REJECTED_VALID, USER_ERROR, Tally
from tests.fuzz.pool import Pool


@dataclass
class Plan:
    mutations: int = 200
    programs: int = 20  # half well-formed, half with one out-of-domain argument
    seed: int = 0
    workers: int = 2
    onnx_every: int = 4
    cuda_source_every: int = 10
    cuda_every: int = 0  # 1: every input that passed; a large number: only the first (where nvcc is installed)
    limit: float = 20.0  # seconds per stage (nvcc: cuda_limit)
    cuda_limit: float = 900.0
    memory: int = 4 << 30  # the workers' address-space limit
    probes: bool = True  # the code-execution probes (probes.py)
    cuda_probes: bool = False  # build every probe that passes with nvcc too (where cuda_every is set)
    failures: Path | None = None  # where failing inputs are written for triage
    progress: bool = False


def _stages(plan: Plan, index: int) -> list[str]:
    stages = ["check", "numpy", "run"]
    if plan.onnx_every and index % plan.onnx_every == 0:
        stages.append("onnx")
    if plan.cuda_source_every and index % plan.cuda_source_every == 0:
        stages.append("cuda_source")
    return stages


def with_cuda(plan: Plan, jobs: Iterator[dict], queue: deque) -> Iterator[dict]:
    """The planned jobs, with the follow-ups the campaign queues (an nvcc build of an input that passed) first."""
    for job in jobs:
        while queue:
            yield queue.popleft()
        yield job
    while queue:
        yield queue.popleft()


def _job(job_id: str, kind: str, data: bytes, filename: str, stages: list[str], **extra) -> dict:
    return {"id": job_id, "kind": kind, "source": base64.b64encode(data).decode(), "filename": filename,
            "stages": stages, **extra}


def mutation_jobs(plan: Plan, markers: Path) -> Iterator[dict]:
    from tests.fuzz.mutate import mutants

    for m in mutants(plan.seed, plan.mutations, markers):
        yield _job(f"m{m.index}", "mutation", m.data, m.filename, _stages(plan, m.index), origin=m.origin,
                   mutations=m.mutations)


def probe_jobs(plan: Plan, markers: Path) -> Iterator[dict]:
    from tests.fuzz.probes import STAGES, probes

    if plan.probes:
        for job_id, what, text, filename in probes(markers):
            yield _job(job_id, "probe", text.encode("utf-8"), filename, STAGES, mutations=[what])


def program_texts(count: int, seed: int) -> list[tuple[str, str, str]]:
    """(kind, text, what was changed) for `count` generated programs: half well-formed, half out of domain."""
    if not count:
        return []  # the strategies need PyTorch (the differential tester's programs), which a plain install lacks
    from tests.fuzz.grammar import out_of_domain, well_formed

    drawn: list[tuple[str, str, str]] = []
    for kind, strategy, n in (("program", well_formed(), (count + 1) // 2), ("domain", out_of_domain(), count // 2)):
        if n:  # hypothesis repeats itself (about 30% of draws): draw more, keep the first n distinct texts
            unique: dict[str, tuple[str, str, str]] = {}
            _draw(strategy, n * 8 // 5 + 5, seed, lambda case, kind=kind, unique=unique: unique.setdefault(
                case[0], (kind, *case)))
            drawn += list(unique.values())[:n]
    return drawn


def _draw(strategy, n: int, seed: int, keep) -> None:
    """Run hypothesis for `n` examples of `strategy` from `seed`, handing each to `keep` (no shrinking: the
    inputs are run afterwards, in the pool)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    @hypothesis_seed(seed)
    @settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck),
              phases=(Phase.generate,))
    @given(strategy)
    def draw(case):
        keep(case)

    draw()


def program_jobs(plan: Plan) -> Iterator[dict]:
    for i, (kind, text, change) in enumerate(program_texts(plan.programs, plan.seed)):
        yield _job(f"g{i}", kind, text.encode("utf-8"), "program.bm", _stages(plan, i), mutations=[change])


def run(plan: Plan, scratch: Path | None = None) -> Tally:
    tally = Tally()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bmc-fuzz-") as tmp:
        scratch = scratch or Path(tmp)
        with Pool(scratch, plan.workers, plan.memory, plan.limit, plan.cuda_limit) as pool:
            follow_ups: deque = deque()
            planned = itertools.chain(probe_jobs(plan, pool.markers), mutation_jobs(plan, pool.markers),
                                      program_jobs(plan))
            jobs = with_cuda(plan, planned, follow_ups)
            passed = 0
            for n, (job, result) in enumerate(pool.run(jobs), 1):
                if job["kind"] in ("program", "cuda") and result.outcome == USER_ERROR:
                    result.outcome = REJECTED_VALID  # well-formed, or accepted by every other target
                tally.add(job["kind"], job, result, plan.failures)
                if result.outcome == OK and job["kind"] != "cuda":
                    passed += job["kind"] != "probe"
                    probe = job["kind"] == "probe" and plan.cuda_probes
                    if plan.cuda_every and (probe or passed % plan.cuda_every == 1 % plan.cuda_every):
                        follow_ups.append({**job, "id": f"{job['id']}-cuda", "kind": "cuda", "stages": ["cuda"]})
                if plan.progress and n % 250 == 0:
                    print(f"[{time.monotonic() - start:.0f} s] {n} inputs\n{tally.summary()}", file=sys.stderr)
    tally.seconds = time.monotonic() - start
    return tally

