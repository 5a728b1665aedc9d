"""The parent side: a few long-lived workers (worker.py), each given one input at a time, with a clock per stage.

A worker that runs a stage past its limit is killed with its process group (nvcc included) and restarted: the input
is a `hang`. One that dies is restarted too: the input is a `crash`, with the signal and the end of the worker's log
(faulthandler's stack). After a `memory` outcome, and every `recycle` inputs, a worker is restarted so that nothing
one input leaves behind (memory, modules) can change the next. After every input the markers folder and the
worker's scratch folder are searched for payload markers.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from tests.fuzz.outcomes import Result
from tests.fuzz.payloads import PREFIX
from tests.fuzz.worker import markers

ROOT = Path(__file__).resolve().parents[2]
START_LIMIT = 300.0  # seconds for a worker to import bmc on a loaded machine


class Worker:
    def __init__(self, index: int, scratch: Path, memory: int, limits: dict[str, float], warm: bool = True):
        self.index, self.dir, self.memory, self.limits = index, scratch / f"w{index}", memory, limits
        self.warm = warm
        self.log_path = scratch / f"w{index}.log"
        self.proc: subprocess.Popen | None = None
        self.job: dict | None = None
        self.stage = ""
        self.deadline = 0.0
        self.started = 0.0
        self.done = 0
        self.buffer = b""

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "BMC_TRACEBACK": "1", "OPENBLAS_NUM_THREADS": "1",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "BMC_CACHE_DIR": str(self.dir.parent / "cache"),
               "PYTHONDONTWRITEBYTECODE": "1"}
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        args = [sys.executable, "-m", "tests.fuzz.worker", str(self.dir), str(self.memory)]
        self.proc = subprocess.Popen([*args, *([] if self.warm else ["--cold"])],
                                     cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                     start_new_session=True)
        log.close()
        self.buffer, self.done = b"", 0
        deadline = time.monotonic() + START_LIMIT
        while True:
            for message in self._read(deadline - time.monotonic()):
                if message.get("ready"):
                    return
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"fuzz worker {self.index} did not start; see {self.log_path}:\n{self.log_tail()}")

    @property
    def fd(self) -> int:
        return self.proc.stdout.fileno()

    def send(self, job: dict) -> None:
        self.job, self.stage = job, ""
        self.started = time.monotonic()
        self.deadline = self.started + self.limits["default"]
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()

    def _read(self, timeout: float) -> list[dict]:
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        return self.receive() if ready else []

    def receive(self) -> list[dict]:
        """The complete messages now readable; raises EOFError when the worker has gone."""
        data = os.read(self.fd, 1 << 20)
        if not data:
            raise EOFError
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the worker and what it started (nvcc)
        if self.proc is not None:
            self.proc.wait()
            self.proc.stdin.close()
            self.proc.stdout.close()

    def restart(self) -> None:
        self.kill()
        self.job = None
        self.start()

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode("utf-8", "replace")
        except OSError:
            return ""


class Pool:
    def __init__(self, scratch: Path, workers: int = 2, memory: int = 4 << 30, limit: float = 20.0,
                 cuda_limit: float = 900.0, recycle: int = 300, warm: bool = True):
        self.scratch, self.markers = scratch, scratch / "markers"
        self.markers.mkdir(parents=True, exist_ok=True)
        self.limits = {"default": limit, "cuda": cuda_limit}
        self.recycle = recycle
        self.workers = [Worker(i, scratch, memory, self.limits, warm) for i in range(workers)]

    def __enter__(self) -> Pool:
        for w in self.workers:
            w.start()
        return self

    def __exit__(self, *exc) -> None:
        for w in self.workers:
            w.kill()

    def run(self, jobs: Iterable[dict]) -> Iterator[tuple[dict, Result]]:
        """(job, result) for every job, in the order they finish."""
        pending = iter(jobs)
        exhausted = False
        while True:
            for w in self.workers:
                if w.job is None and not exhausted:
                    job = next(pending, None)
                    if job is None:
                        exhausted = True
                    else:
                        w.send(job)
            active = [w for w in self.workers if w.job is not None]
            if not active:
                return
            wait = min(w.deadline for w in active) - time.monotonic()
            ready, _, _ = select.select([w.fd for w in active], [], [], max(0.0, wait))
            for w in active:
                if w.fd in ready:
                    yield from self._messages(w)
                elif time.monotonic() > w.deadline:
                    yield self._finish(w, Result("hang", w.stage, f"stage '{w.stage}' ran over "
                                                 f"{self.limits.get(w.stage, self.limits['default']):g} s",
                                                 seconds=time.monotonic() - w.started), restart=True)

    def _messages(self, w: Worker) -> Iterator[tuple[dict, Result]]:
        try:
            messages = w.receive()
        except EOFError:
            code = w.proc.wait()
            why = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
            yield self._finish(w, Result("crash", w.stage, f"the worker died ({why}) in stage '{w.stage}'\n"
                                         + w.log_tail(), seconds=time.monotonic() - w.started), restart=True)
            return
        for message in messages:
            if "stage" in message:
                w.stage = message["stage"]
                w.deadline = time.monotonic() + self.limits.get(w.stage, self.limits["default"])
            elif "result" in message:
                result = Result(**message["result"])
                result.seconds = time.monotonic() - w.started
                found = message.get("markers", [])
                yield self._finish(w, result, restart=result.outcome == "memory", found=found)

    def _finish(self, w: Worker, result: Result, restart: bool, found: list[str] = ()) -> tuple[dict, Result]:
        job = w.job
        found = sorted({*found, *markers(self.markers), *(markers(w.dir) if w.dir.exists() else [])})
        if found:
            result = Result("code_execution", result.stage, "marker files appeared: " + ", ".join(found),
                            seconds=result.seconds, passed=result.passed)
            for name in found:
                Path(name).unlink(missing_ok=True)
        w.job = None
        w.done += 1
        if restart or w.done >= self.recycle:
            w.restart()
        return job, result


__all__ = ["PREFIX", "Pool", "Worker"]
