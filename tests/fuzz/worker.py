"""A long-lived worker: takes inputs as JSON lines on stdin, runs their stages (stages.py), answers on stdout.

    python -m tests.fuzz.worker SCRATCH_DIR MEMORY_BYTES [--cold]

It imports bmc once (which takes seconds) and then runs input after input in its scratch folder, each in its own
sub-folder that it deletes afterwards. Its address space is limited (RLIMIT_AS), so a memory blow-up is a
`MemoryError` (or a signal) rather than a machine brought to its knees. The protocol owns the original stdout; the
worker's own fds 1 and 2 go to /dev/null and its log, so nothing bmc or a compiler prints can corrupt it, and
faulthandler writes a crash's Python stack to the log. The pool (pool.py) restarts a worker that dies or hangs.

Messages out: {"ready": true} once; {"stage": NAME} as each stage starts (the pool's clock restarts); then
{"result": {...}} per input, with any marker files found in the scratch folder before it is cleaned.
"""

from __future__ import annotations

import base64
import faulthandler
import json
import os
import resource
import shutil
import sys
from pathlib import Path

from tests.fuzz.payloads import PREFIX


def _limit(memory: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _write_input(work: Path, job: dict) -> Path:
    data = base64.b64decode(job["source"])
    try:
        path = work / job["filename"]
        path.write_bytes(data)
    except (OSError, ValueError):  # a name the file system refuses: the harness's problem, not bmc's
        path = work / "input.bm"
        path.write_bytes(data)
    return path


def markers(root: Path) -> list[str]:
    """Marker files under `root` (os.walk skips folders that vanish meanwhile: a worker cleaning its job)."""
    return sorted(os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names
                  if name.startswith(PREFIX))


def _warm_up() -> None:
    """Import what the stages use, so the first input's time limit is not spent importing."""
    import bmc.backends.onnx
    from bmc.backends.cuda import build  # noqa: F401

    import bmc.api
    import bmc.cli  # noqa: F401


def main(argv: list[str]) -> int:
    root, memory = Path(argv[0]), int(argv[1])
    root.mkdir(parents=True, exist_ok=True)
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    faulthandler.enable(file=sys.stderr, all_threads=True)
    os.chdir(root)
    _limit(memory)
    if "--cold" not in argv:  # (the harness's own tests start cold: they restart workers often)
        _warm_up()
    from tests.fuzz import stages

    def send(message: dict) -> None:
        protocol.write(json.dumps(message) + "\n")

    send({"ready": True})
    for line in sys.stdin:
        job = json.loads(line)
        work = root / "job"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        path = _write_input(work, job)
        result = stages.run(job["stages"], path, work, lambda stage: send({"stage": stage}))
        send({"result": result.as_json(), "markers": markers(root)})
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
