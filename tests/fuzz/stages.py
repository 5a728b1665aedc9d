"""The stages one input goes through, inside a worker: what a user would run on the file.

    check        bmc check FILE                                 (the command line, in process)
    numpy        bmc build FILE --target numpy -o DIR
    run          the generated module's forward and train_step on random data of the right shapes
    onnx         bmc build FILE --target onnx --train -o DIR
    cuda_source  the CUDA target's generated source (no nvcc)
    cuda         bmc build FILE --target cuda -o DIR (nvcc), then the library is loaded, which runs any
                 constructor in it (the code-execution check for C)

A stage returns None when it passed and a `Result` when the input stops there. Exit status 1 is a user error, 70
an internal error; `BMC_TRACEBACK=1` makes the command line print the traceback, which the result keeps.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np

from tests.fuzz import payloads
from tests.fuzz.outcomes import OK, USER_ERROR, Result

LOCATED = re.compile(r"^.*:\d+:\d+: error: ", re.MULTILINE)
DIMS = {"N": 2}  # symbolic dims at run time: the batch 2, any other 3
NUMPY = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}


def _cli(args: list[str]) -> tuple[int, str, str]:
    import bmc.cli

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = bmc.cli.main(args)
        except SystemExit as e:  # argparse
            rc = e.code if isinstance(e.code, int) else 2
    return rc, out.getvalue(), err.getvalue()


def _command(stage: str, args: list[str]) -> Result | None:
    rc, _out, err = _cli(args)
    if rc == 0:
        return Result("traceback", stage, err) if "Traceback (most recent call last)" in err else None
    if rc == 1:
        if "Traceback (most recent call last)" in err:
            return Result("traceback", stage, err)
        return Result(USER_ERROR, stage, err[-4000:], located=bool(LOCATED.search(err)))
    if re.search(r"^internal error: MemoryError", err, re.MULTILINE):
        return Result("memory", stage, err[-8000:])
    return Result("internal_error", stage, err[-8000:])


def check(path: Path, work: Path) -> Result | None:
    return _command("check", ["check", str(path)])


def build_numpy(path: Path, work: Path) -> Result | None:
    return _command("numpy", ["build", str(path), "--target", "numpy", "-o", str(work / "numpy")])


def build_onnx(path: Path, work: Path) -> Result | None:
    return _command("onnx", ["build", str(path), "--target", "onnx", "--train", "-o", str(work / "onnx")])


def build_cuda(path: Path, work: Path) -> Result | None:
    if shutil.which("nvcc") is None:
        return None
    stop = _command("cuda", ["build", str(path), "--target", "cuda", "-o", str(work / "cuda")])
    if stop is not None and "nvcc failed on " in stop.detail:
        stop.outcome = "internal_error"  # bmc's own CUDA did not compile: reported as an error, but a bug
    if stop is not None:
        return stop
    from bmc.backends.cuda.runtime import Library

    cuda = json.loads((work / "cuda" / "manifest.json").read_text(encoding="utf-8"))["cuda"]
    Library(work / "cuda" / cuda["library"], cuda)  # dlopen runs any constructor; it needs no GPU
    return None


def cuda_source(path: Path, work: Path) -> Result | None:
    """The CUDA source, generated but not compiled; a C payload found in it as code is a code execution (it would
    run when the compiled library is loaded), found without nvcc."""
    import bmc
    from bmc.diagnostics import BmcError

    try:
        source = bmc.compile(path, warnings="ignore").generate("cuda")
    except BmcError as e:
        return Result(USER_ERROR, "cuda_source", e.render()[-4000:], located=e.span is not None)
    lines = c_payload_lines(source)
    if lines:
        text = source.splitlines()
        shown = "\n".join("\n".join(text[max(0, n - 2):n])[:600] for n in lines[:3])  # with the line before
        return Result("code_execution", "cuda_source", f"a C payload is code in model.cu, line(s) {lines[:10]}:\n"
                      f"{shown}")
    return None


def c_payload_lines(source: str) -> list[int]:
    """Lines where a payload's C function appears outside a `//` comment, a `/* */` comment on that line and a
    string literal."""
    found = []
    for n, line in enumerate(source.splitlines(), 1):
        at = line.find(payloads.C_FUNCTION)
        if at < 0:
            continue
        before = re.sub(r'"[^"]*"', '""', re.sub(r"\\.", "", line[:at]))  # escapes out, closed literals emptied
        if "//" in before or before.count('"') % 2 or before.rfind("/*") > before.rfind("*/"):
            continue
        found.append(n)
    return found


def _array(dtype: str, shape: list, rng: np.random.Generator, ids: int) -> np.ndarray:
    dims = tuple(d if isinstance(d, int) else DIMS.get(d, 3) for d in shape)
    if dtype in ("i32", "i64"):
        return rng.integers(0, ids, dims).astype(NUMPY[dtype])  # token ids and class indices
    if dtype == "bool":
        return rng.random(dims) < 0.5
    return rng.standard_normal(dims).astype(NUMPY[dtype])


def run_module(path: Path, work: Path) -> Result | None:
    """forward and train_step of the NumPy build on random data; the module's InputError is a user error. Integer
    inputs are drawn from [0, 2), and if the module refuses them (a vocabulary or a class count of 1), all 0."""
    import bmc
    from bmc import memory
    from bmc.diagnostics import BmcError

    build = bmc.load(work / "numpy")
    module = build.module
    try:  # what `bmc train` checks before it runs a batch: the memory the batch needs
        model = bmc.compile(path, warnings="ignore")
        memory.check(model.compiled.model, model.config, model.compiled.dtype, model.compiled.memory_limit,
                     DIMS["N"])
    except BmcError as e:
        return Result(USER_ERROR, "run", str(e)[-4000:], located=bool(re.search(r":\d+", str(e))))
    if evaluations(model.compiled.train_step() if model.compiled.model.loss else model.compiled.inference()) \
            > RUN_BUDGET:
        return SKIPPED  # a legitimate long computation (an LSTM of 65,536 steps), not a hang: not run here
    for ids in (2, 1):
        try:
            with np.errstate(all="ignore"):
                _step(build, np.random.default_rng(0), ids)
            return None
        except (module.InputError, BmcError) as e:
            error = e
    return Result(USER_ERROR, "run", str(error)[-4000:], located=bool(re.search(r":\d+", str(error))))


# op evaluations the run stage may ask of the generated module (a scan counts its body once per step): past it the
# run takes longer than the stage's time limit for the work itself, which is no hang of bmc's
RUN_BUDGET = 100_000
SKIPPED = Result(OK, "run", "skipped: more work than the run stage's budget")


def evaluations(graph) -> int:
    from bmc.ops.scan import Scan

    total = 0
    for node in graph.nodes:
        if isinstance(node.op, Scan):
            length = node.inputs[node.op.num_carries].type.shape[1]
            steps = length if isinstance(length, int) else DIMS.get(length, 3)
            total += steps * max(evaluations(node.op.body), 1)
        else:
            total += 1
    return total


def _step(build, rng: np.random.Generator, ids: int) -> None:
    module = build.module
    inputs = {k: _array(dtype, shape, rng, ids) for k, (dtype, shape) in module.INPUTS.items()}
    module.forward(build.params, *inputs.values())
    if hasattr(module, "train_step"):
        targets = {k: _array(v["dtype"], v["shape"], rng, ids) for k, v in build.manifest["targets"].items()}
        hyper = [NUMPY[dtype](1e-3) if k == "lr" else NUMPY[dtype](7) for k, (dtype, _) in module.HYPER.items()]
        params = {k: np.array(v) for k, v in build.params.items()}
        state = {k: np.array(v) for k, v in build.state.items()}
        module.train_step(params, state, {**inputs, **targets}, *hyper)


# ---- the harness's own checks: stages that misbehave on purpose, so tests/test_fuzz.py can see each outcome caught


def _hang(path: Path, work: Path) -> None:
    import time

    time.sleep(3600)


def _crash(path: Path, work: Path) -> None:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


def _memory(path: Path, work: Path) -> None:
    np.ones(1 << 40, np.uint8)  # 1 TiB, over any address-space limit


def _execute(path: Path, work: Path) -> None:
    exec(path.read_text(encoding="utf-8"), {})  # what bmc must never do with a .bm file


STAGES = {"check": check, "numpy": build_numpy, "run": run_module, "onnx": build_onnx, "cuda_source": cuda_source,
          "cuda": build_cuda, "_hang": _hang, "_crash": _crash, "_memory": _memory, "_execute": _execute}


def run(stages: list[str], path: Path, work: Path, on_stage) -> Result:
    """Each stage in turn until one stops the input. Exceptions out of a stage itself (the harness's own calls:
    loading the build, running the module) are internal errors, or `memory` for a MemoryError."""
    import traceback

    passed = []
    for stage in stages:
        on_stage(stage)
        try:
            stop = STAGES[stage](path, work)
        except MemoryError:
            return Result("memory", stage, traceback.format_exc()[-8000:], passed=passed)
        except Exception:
            return Result("internal_error", stage, traceback.format_exc()[-8000:], passed=passed)
        if stop is SKIPPED:  # counted apart in the report, never as passed
            passed.append(f"{stage} skipped")
            continue
        if stop is not None:
            stop.passed = passed
            return stop
        passed.append(stage)
    return Result(OK, stages[-1] if stages else "", passed=passed)
