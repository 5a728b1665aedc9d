"""Checkpoints of a training run, and resuming from the last one.

A checkpoint is a complete build (what `bmc train -o` writes: the model, its parameters and optimizer state) plus
`training.json`, where the run stands: the epoch and step, how many batches of the epoch are done, the batch
generator's state at the epoch's start, the epoch's running loss and metric counts, the history so far, and the
early-stopping state (with the best parameters in `best_params.npz` and `best_state.npz`). The schedule's position
is the step, and each step's dropout key is derived from the seed and the step, so that is every random state of
a run. Resuming replays the epoch's batch order from its start and skips the batches already done, so a resumed
run ends with the parameters of an uninterrupted one, bit for bit on the NumPy backend.

Checkpoints are `DIR/step-000001234/`, each written like a build (bmc/artifacts.py: under a temporary name, then
swapped in, so a checkpoint is whole or absent even after `kill -9`). The last `keep` are kept, and with `best`
the best by that epoch-log column too; older ones are removed only when they are unchanged bmc checkpoints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bmc import artifacts, fs_atomic
from bmc.diagnostics import UsageError
from bmc.train.early_stop import lower_is_better

STATE_FILE = "training.json"
BEST_PARAMS, BEST_STATE = "best_params.npz", "best_state.npz"
NAME = re.compile(r"step-(\d{9})")
FORMAT = 1


@dataclass(frozen=True)
class Policy:
    every: int = 1
    unit: str = "epochs"  # or "steps"
    keep: int = 3
    best: str | None = None  # an epoch-log column (val_loss, val_accuracy, ...): its best checkpoint is kept too

    def __str__(self) -> str:
        return f"every {self.every} {self.unit[:-1] if self.every == 1 else self.unit}, keeping the last {self.keep}" \
            + (f" and the best by {self.best}" if self.best else "")


def parse_every(text: str) -> tuple[int, str]:
    """`--checkpoint-every 2` (epochs) or `500s` (steps)."""
    unit = "steps" if text.endswith("s") else "epochs"
    number = text[:-1] if unit == "steps" else text
    if not number.isdigit() or int(number) < 1:
        raise UsageError(f"--checkpoint-every takes a number of epochs (2) or of steps (500s), not {text!r}")
    return int(number), unit


@dataclass
class TrainState:
    """Where a run stands, as `training.json` stores it."""

    epoch: int  # the epoch in progress (1-based)
    step: int  # steps done in all
    batches: int  # batches of `epoch` done
    rng: dict  # the batch generator's bit-generator state at the start of `epoch`
    epoch_loss: float = 0.0  # the sum of batch loss * batch size over `epoch`'s batches so far
    epoch_seen: int = 0
    accumulator: dict | None = None  # the epoch's metric counts (bmc/train/metrics.py)
    history: list[dict] = field(default_factory=list)
    early_stop: dict | None = None
    monitor: dict[str, float] = field(default_factory=dict)  # the last epoch's log columns
    fingerprint: dict[str, Any] = field(default_factory=dict)  # what must match to resume: model and settings
    stopped_early: str = ""  # early stopping ended the run: a resumed one trains no further
    format: int = FORMAT


WriteBuild = Callable[[Path, dict, dict, list, dict[str, artifacts.Content]], Path]


class Checkpointer:
    """Writes checkpoints into `directory` as the policy says."""

    def __init__(self, directory: str | Path, policy: Policy, write_build: WriteBuild):
        self.directory = Path(directory)
        self.policy = policy
        self.write_build = write_build
        self.written: list[Path] = []

    def due(self, step: int, epoch: int, epoch_end: bool) -> bool:
        if self.policy.unit == "steps":
            return step % self.policy.every == 0
        return epoch_end and epoch % self.policy.every == 0

    def save(self, params: dict, state: dict, history: list, ts: TrainState,
             best: tuple[dict, dict] | None = None) -> Path:
        files: dict[str, artifacts.Content] = {STATE_FILE: json.dumps(asdict(ts), indent=1) + "\n"}
        if best is not None:
            files[BEST_PARAMS], files[BEST_STATE] = best
        path = self.write_build(self.directory / f"step-{ts.step:09d}", params, state, history, files)
        self.written.append(path)
        self.prune()
        return path

    def prune(self) -> None:
        found = checkpoints(self.directory)
        keep = set(found[-self.policy.keep:])
        if self.policy.best:
            scored = [(p, read_state(p).monitor.get(self.policy.best)) for p in found]
            scored = [(p, v) for p, v in scored if v is not None]
            if scored:
                pick = min if lower_is_better(self.policy.best) else max
                keep.add(pick(scored, key=lambda pv: pv[1])[0])
        for path in found:
            if path not in keep:
                remove_checkpoint(path)


def checkpoints(directory: str | Path) -> list[Path]:
    """The complete checkpoints in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if NAME.fullmatch(p.name) and (p / STATE_FILE).is_file()
             and (p / artifacts.MANIFEST).is_file()]
    return sorted(found, key=lambda p: p.name)


def latest(directory: str | Path) -> Path:
    found = checkpoints(directory)
    if not found:
        why = "does not exist" if not Path(directory).exists() else "holds no checkpoint (step-NNNNNNNNN/)"
        raise UsageError(f"cannot resume from {directory}: it {why}",
                         notes=("checkpoints are written by `bmc train ... --checkpoint-dir DIR` or a "
                                "`checkpoint = every(1)` train setting",))
    return found[-1]


def read_state(path: Path) -> TrainState:
    try:
        raw = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
        ts = TrainState(**raw)
    except (OSError, json.JSONDecodeError, TypeError) as e:
        raise UsageError(f"checkpoint {path} is damaged ({STATE_FILE}: {e})") from None
    if ts.format != FORMAT:
        raise UsageError(f"checkpoint {path} was written by another version of bmc (format {ts.format})")
    return ts


def read_arrays(path: Path, name: str) -> dict[str, np.ndarray]:
    return artifacts.read_npz(path / name)


def remove_checkpoint(path: Path) -> bool:
    """Remove an old checkpoint if it is an unchanged one bmc wrote; leave anything else where it is."""
    try:
        artifacts.check_unchanged_build(path)
    except UsageError:
        return False
    aside = path.parent / fs_atomic.temp_name(path.name, "old")
    path.rename(aside)  # out of sight first: `latest` never sees a half-removed checkpoint
    fs_atomic.remove(aside)
    return True
