"""`python -m tests.fuzz`: a fuzzing campaign from the command line (a long run, or the replay of saved inputs).

    python -m tests.fuzz --mutations 50000 --programs 10000 --report fuzz.json --failures fuzz-failures/
    python -m tests.fuzz --replay fuzz-failures/internal_error/m123.bm
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.fuzz.campaign import Plan, run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n")[0])
    p.add_argument("--mutations", type=int, default=1000, help="mutated corpus files (default 1000)")
    p.add_argument("--programs", type=int, default=100,
                   help="generated programs, half well-formed, half with one out-of-domain argument (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--onnx-every", type=int, default=4, help="export every Nth input to ONNX too (0: never)")
    p.add_argument("--cuda-source-every", type=int, default=10, help="generate CUDA for every Nth input (0: never)")
    p.add_argument("--cuda-every", type=int, default=100,
                   help="build the first and every Nth input that passed for the CUDA target with nvcc (0: never)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds a stage may take before it is a hang")
    p.add_argument("--memory-gb", type=float, default=4.0, help="each worker's address-space limit")
    p.add_argument("--report", type=Path, help="write the counts and every failure here (JSON)")
    p.add_argument("--failures", type=Path, help="write every failing input here, by outcome, for triage")
    p.add_argument("--replay", type=Path, nargs="+", help="run saved inputs again (with their .json beside them)")
    return p


def replay(paths: list[Path], plan: Plan) -> int:
    """Run saved inputs again, one worker, and print each outcome with its detail."""
    import base64
    import tempfile

    from tests.fuzz.pool import Pool

    jobs = []
    for path in paths:
        meta = path.with_suffix(".json")
        info = json.loads(meta.read_text(encoding="utf-8")) if meta.exists() else {}
        jobs.append({"id": path.stem, "kind": info.get("kind", "replay"), "filename": info.get("filename", path.name),
                     "stages": info.get("stages", ["check", "numpy", "run", "onnx"]),
                     "source": base64.b64encode(path.read_bytes()).decode()})
    with tempfile.TemporaryDirectory(prefix="bmc-fuzz-") as tmp, Pool(Path(tmp), 1, plan.memory, plan.limit) as pool:
        for job, result in pool.run(jobs):
            print(f"== {job['id']}: {result.outcome} in {result.stage} ({result.seconds:.1f} s)\n{result.detail}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = Plan(args.mutations, args.programs, args.seed, args.workers, args.onnx_every, args.cuda_source_every,
                args.cuda_every, args.timeout, memory=int(args.memory_gb * (1 << 30)), failures=args.failures,
                progress=True, cuda_probes=args.cuda_every > 0)
    if args.replay:
        return replay(args.replay, plan)
    tally = run(plan)
    print(tally.summary())
    print(f"{tally.seconds:.0f} s")
    if args.report:
        args.report.write_text(json.dumps(tally.report(), indent=2) + "\n", encoding="utf-8")
    failing = tally.failing()
    for f in failing[:50]:
        print(f"{f['outcome']}: {f['id']} ({f['kind']}, {f['origin'] or f['mutations']}) in {f['stage']}: "
              f"{f['detail'].strip().splitlines()[-1] if f['detail'].strip() else ''}", file=sys.stderr)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
