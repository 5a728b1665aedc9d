"""Wall time of `bmc build FILE -o DIR` (the NumPy target) for every example, as a user runs it: a fresh Python
process each time, so the time includes starting Python and importing bmc and NumPy. The goal for examples/mlp.bm
is under 0.3 s.

Each round builds every example once (in a rotating order, so machine noise hits all alike); it prints each
example's median and min over the rounds, then where one build's time goes inside the process (importing bmc,
compiling the .bm file to IR and the train step, generating and writing the module), and with --profile a cProfile
of one in-process build. Python's bytecode is cached (in a temporary folder) unless --no-bytecode-cache.

    python benchmarks/build_times.py                      # every example, 5 rounds
    python benchmarks/build_times.py --only mlp --profile --rounds 9
"""

from __future__ import annotations

import common  # noqa: F401 - first: one BLAS thread and this checkout on the path

# isort: split

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, load_average

from bmc.syntax import tables

EXAMPLES = sorted((REPO / "examples").glob("*.bm"))
GOAL = 0.3  # seconds, examples/mlp.bm
CLI = "import sys; from bmc.cli import main; sys.exit(main())"
# One build in a fresh process, timed in phases: import, compile (parse, lower, the train step's passes), generate
# (the module's source) and the whole `bmc build` through the command line (which compiles and generates again).
PHASES = """
import json, sys, time
t0 = time.perf_counter()
import bmc, bmc.cli
t1 = time.perf_counter()
model = bmc.compile(sys.argv[1])
model.compiled.train_step()
t2 = time.perf_counter()
model.generate("numpy", train=True)
t3 = time.perf_counter()
bmc.cli.main(["build", sys.argv[1], "-o", sys.argv[2]])
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "compile": t2 - t1, "generate": t3 - t2, "cli build": t4 - t3}))
"""


ENV = dict(os.environ)


def use_bytecode_cache(folder: Path) -> None:
    """Let the builds cache their bytecode, as an installed bmc has it (without a cache, compiling bmc's own source
    is about a third of a build), in `folder` rather than in the checkout."""
    ENV.pop("PYTHONDONTWRITEBYTECODE", None)
    ENV["PYTHONPYCACHEPREFIX"] = str(folder)


def floor(code: str) -> float:
    """Seconds of a fresh process running `code`: what every build pays before bmc's own work."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, env=ENV)
    return time.perf_counter() - start


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def build_once(path: Path, out: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system: what a quiet machine's wall time would be, near enough) of one
    build."""
    start, cpu = time.perf_counter(), children_cpu()
    subprocess.run([sys.executable, "-c", CLI, "build", str(path), "-o", str(out)], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - start, children_cpu() - cpu


def phases(path: Path, out: Path) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-c", PHASES, str(path), str(out)], cwd=REPO, check=True,
                            capture_output=True, text=True, env=ENV)
    return json.loads(result.stdout.strip().splitlines()[-1])


def profile(path: Path, out: Path, top: int) -> None:
    """cProfile of one whole build in a fresh process (imports included), by cumulative and by own time. The front
    end runs on the calling thread here (cProfile sees one thread; bmc runs it on a thread with a deep stack)."""
    code = ("import cProfile, pstats, sys\n"
            "p = cProfile.Profile(); p.enable()\n"
            "from bmc.cli import main\n"
            "import bmc.frontend.deep; bmc.frontend.deep._local.deep = True\n"
            "main(['build', sys.argv[1], '-o', sys.argv[2]])\n"
            "p.disable()\n"
            f"s = pstats.Stats(p); s.sort_stats('cumulative').print_stats({top}); "
            f"s.sort_stats('tottime').print_stats({top})\n")
    result = subprocess.run([sys.executable, "-c", code, str(path), str(out)], cwd=REPO, check=True,
                            capture_output=True, text=True, env=ENV)
    keep = [line for line in result.stdout.splitlines() if line.strip() and not line.startswith("wrote ")]
    print("\n".join(keep))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="builds of each example (default 5)")
    ap.add_argument("--only", action="append", choices=[p.stem for p in EXAMPLES], help="these examples only")
    ap.add_argument("--profile", action="store_true", help="also a cProfile of one build (the MLP's)")
    ap.add_argument("--top", type=int, default=25, help="rows of each profile table (default 25)")
    ap.add_argument("--no-bytecode-cache", action="store_true",
                    help="compile bmc's Python source in every build (as with PYTHONDONTWRITEBYTECODE=1)")
    args = ap.parse_args(argv)
    examples = [p for p in EXAMPLES if not args.only or p.stem in args.only]
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")

    times: dict[str, list[float]] = {p.stem: [] for p in examples}
    cpu: dict[str, list[float]] = {p.stem: [] for p in examples}
    with tempfile.TemporaryDirectory() as tmp:
        if args.no_bytecode_cache:
            ENV["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            use_bytecode_cache(Path(tmp) / "pycache")
        cache = "no bytecode cache" if args.no_bytecode_cache else "bytecode cached (PYTHONPYCACHEPREFIX)"
        print(f"bmc build FILE -o DIR (numpy target), a fresh `{Path(sys.executable).name}` process per build, "
              f"{cache}, {args.rounds} rounds; {load_average()}")
        stale = tables.stale()
        if stale:  # every build then makes the parser's LALR tables itself (about 0.05 s more)
            print(f"note: {stale}, so the parser is built at every start: run {tables.COMMAND}")
        for path in examples:  # warm the file system cache and bytecode caches
            build_once(path, Path(tmp) / path.stem)
        floors: dict[str, list[float]] = {"python": [], "python + import numpy": [], "python + import bmc.cli": []}
        codes = ["pass", "import numpy", "import bmc.cli"]
        for rnd in range(args.rounds):
            shift = rnd % len(examples)
            for path in examples[shift:] + examples[:shift]:
                wall, cpu_seconds = build_once(path, Path(tmp) / path.stem)
                times[path.stem].append(wall)
                cpu[path.stem].append(cpu_seconds)
            for name, code in zip(floors, codes, strict=True):
                floors[name].append(floor(code))
        print("floors (median s): " + ", ".join(f"{k} {statistics.median(v):.3f}" for k, v in floors.items()))
        print(f"{'example':<20} {'median s':>9} {'min s':>7} {'cpu s':>6}   in-process: import, compile, generate, "
              f"cli build (s)")
        for path in examples:
            split = phases(path, Path(tmp) / f"{path.stem}.phases")
            print(f"{path.stem:<20} {statistics.median(times[path.stem]):>9.3f} {min(times[path.stem]):>7.3f} "
                  f"{statistics.median(cpu[path.stem]):>6.3f}   " + ", ".join(f"{v:.3f}" for v in split.values()))
        print("(cpu s: the median CPU seconds of a build, user + system: about its wall time on a quiet machine)")
        if "mlp" in times:
            mlp = statistics.median(times["mlp"])
            print(f"mlp: {mlp:.3f} s ({statistics.median(cpu['mlp']):.3f} s CPU), goal under {GOAL} s: "
                  f"{'met' if mlp < GOAL else 'not met'}")
        print(load_average())
        if args.profile:
            print()
            profile(next((p for p in examples if p.stem == "mlp"), examples[0]), Path(tmp) / "profiled", args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
