"""Per-epoch logs of a training run: a CSV or JSON-lines file (`--log FILE.csv` / `FILE.jsonl`), and TensorBoard
event files (`--tensorboard DIR`, written by tensorboardX).

A row is one epoch: epoch, step, loss, lr, seconds, samples_per_second, then the train metrics, val_* and test_*
(bmc/train/loop.py:EpochLog.columns). The file is rewritten whole after each epoch (atomically, like a build), so
it is always complete, and a resumed run's log holds every epoch from the first.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from bmc import artifacts
from bmc.diagnostics import UsageError
from bmc.train.loop import EpochLog, History

FIXED = ("epoch", "step", "loss", "lr", "seconds", "samples_per_second")


def row(e: EpochLog) -> dict[str, float | int]:
    return {"epoch": e.epoch, "step": e.step, "loss": e.loss, "lr": e.lr, "seconds": e.seconds,
            "samples_per_second": e.samples_per_second, **{k: v for k, v in e.columns().items() if k != "loss"}}


class FileLog:
    """CSV (`.csv`) or JSON lines (`.jsonl`), by the file's suffix."""

    def __init__(self, path: str | Path, resuming: bool = False):
        self.path = Path(path)
        self.kind = self.path.suffix.lower()
        if self.kind not in (".csv", ".jsonl"):
            raise UsageError(f"--log {path}: the log is a .csv or a .jsonl file")
        if self.path.exists() and not resuming:
            raise UsageError(f"--log {path}: the file exists; bmc does not replace a file it may not have written",
                             notes=("remove it, or choose another name",))
        artifacts.check_writable(self.path)

    def __call__(self, history: History) -> None:
        rows = [row(e) for e in history.epochs]
        artifacts.write_file(self.path, csv_text(rows) if self.kind == ".csv" else jsonl_text(rows))


def csv_text(rows: list[dict]) -> str:
    names = list(FIXED) + sorted({k for r in rows for k in r} - set(FIXED))
    out = io.StringIO()
    writer = csv.DictWriter(out, names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def jsonl_text(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


class TensorBoardLog:
    """Scalars per epoch, at the epoch's last step: loss, lr, samples/s, each metric, val_* and test_*. A resumed
    run writes from its checkpoint's step on (tensorboardX purges what the first run wrote after it)."""

    def __init__(self, directory: str | Path, resume_step: int = 0):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise UsageError("--tensorboard needs the tensorboardX package",
                             notes=("pip install 'bmc[tensorboard]' (or: pip install tensorboardX)",)) from None
        self.writer = SummaryWriter(str(directory), purge_step=resume_step or None)
        self.resume_step = resume_step
        self.done: set[tuple[int, str]] = set()

    def __call__(self, history: History) -> None:
        for e in history.epochs:
            if e.step <= self.resume_step and self.resume_step:
                continue
            for k, v in row(e).items():
                if k not in ("epoch", "step") and (e.epoch, k) not in self.done:
                    self.writer.add_scalar(k, v, e.step)
                    self.done.add((e.epoch, k))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
