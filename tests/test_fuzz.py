"""The fuzzing harness (tests/fuzz) in CI: a fixed seed and a budget of about two minutes.

`BMC_FUZZ_MUTATIONS=50000 BMC_FUZZ_PROGRAMS=10000` runs a long campaign instead (hours), as does
`python -m tests.fuzz --mutations 50000 --programs 10000 --report fuzz.json --failures fuzz-failures/`, which also
writes every failing input for triage. The generated programs come from the differential tester's strategy, which
needs PyTorch; without it only mutants run.
"""

from __future__ import annotations

import base64
import importlib.util
import os

import pytest

pytest.importorskip("hypothesis", reason="the fuzzing harness draws programs with hypothesis")

from tests.conftest import ROOT
from tests.fuzz import payloads
from tests.fuzz.campaign import Plan, run
from tests.fuzz.mutate import mutants
from tests.fuzz.pool import Pool
from tests.fuzz.stages import c_payload_lines

MUTATIONS = int(os.environ.get("BMC_FUZZ_MUTATIONS", "300"))
PROGRAMS = int(os.environ.get("BMC_FUZZ_PROGRAMS", "40"))
HAS_TORCH = importlib.util.find_spec("torch") is not None

def _job(job_id: str, stage: str, text: str = "") -> dict:
    return {"id": job_id, "kind": "selftest", "filename": "input.bm", "stages": [stage],
            "source": base64.b64encode(text.encode()).decode()}


def test_the_harness_catches_hangs_crashes_memory_blow_ups_and_code_execution(tmp_path):
    marker = tmp_path / "markers" / payloads.marker_name("x")
    jobs = [_job("h", "_hang"), _job("c", "_crash"), _job("m", "_memory"),
            _job("x", "_execute", f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"), _job("ok", "check")]
    with Pool(tmp_path, workers=1, memory=2 << 30, limit=3.0, warm=False) as pool:
        outcomes = {job["id"]: result for job, result in pool.run(jobs)}
    assert {k: r.outcome for k, r in outcomes.items()} == {
        "h": "hang", "c": "crash", "m": "memory", "x": "code_execution", "ok": "user_error"}  # an empty file
    assert "SIGSEGV" in outcomes["c"].detail
    assert not marker.exists()


def test_a_c_payload_is_told_from_comments_and_strings():
    code = f"__attribute__((constructor)) static void {payloads.C_FUNCTION}(void) {{}}"
    source = "\n".join([f"// {code}", f"/* {code} */", f'const char* s = "x\\" {code}";', f'"a"; {code}',
                         f"/* x */ {code}", code])
    assert c_payload_lines(source) == [4, 5, 6]


def test_mutants_are_reproducible_from_the_seed_and_their_index(tmp_path):
    first = [(m.origin, m.mutations, m.data, m.filename) for m in mutants(7, 6, tmp_path)]
    again = [(m.origin, m.mutations, m.data, m.filename) for m in mutants(7, 6, tmp_path)]
    (fifth,) = [(m.origin, m.mutations, m.data, m.filename) for m in mutants(7, 1, tmp_path, start=4)]
    assert first == again and fifth == first[4]
    assert len({m[2] for m in first}) == 6


@pytest.mark.slow
def test_fuzzing_finds_no_internal_error_traceback_hang_crash_memory_blow_up_or_code_execution(tmp_path):
    plan = Plan(MUTATIONS, PROGRAMS if HAS_TORCH else 0, seed=0, cuda_every=1_000_000,  # nvcc: the first input
                failures=tmp_path / "failures")
    tally = run(plan, tmp_path / "scratch")
    print(tally.summary())
    failing = tally.failing()
    rejected = [f for f in tally.failures if f["outcome"] == "rejected_valid"]

    def show(fs: list[dict]) -> str:
        return "\n\n".join(f"{f['outcome']} {f['id']} ({f['origin'] or f['mutations']}, saved as {f['saved']}) in "
                           f"{f['stage']}:\n{f['detail'][-1500:]}" for f in fs[:10])

    assert not failing, f"{len(failing)} failing inputs:\n{show(failing)}\n\n{tally.summary()}"
    assert not rejected, f"{len(rejected)} well-formed programs refused:\n{show(rejected)}"


def test_the_run_stage_leaves_out_a_long_computation_and_says_so(tmp_path):
    # the long run's "hangs": an LSTM of 65,536 steps trains for longer than a stage may take, which is work the
    # input asks for, not a hang of bmc's; the report counts it as `run skipped`, never as passed
    import bmc
    from tests.fuzz import stages

    text = (ROOT / "examples" / "lstm.bm").read_text().replace("steps = 28", "steps = 65536")
    path = tmp_path / "long.bm"
    path.write_text(text)
    model = bmc.compile(path)
    assert stages.evaluations(model.compiled.train_step()) > stages.RUN_BUDGET
    assert stages.evaluations(bmc.compile(ROOT / "examples" / "lstm.bm").compiled.train_step()) < stages.RUN_BUDGET
    result = stages.run(["check", "numpy", "run"], path, tmp_path, lambda stage: None)
    assert result.outcome == "ok" and result.passed == ["check", "numpy", "run skipped"]
