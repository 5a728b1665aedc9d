"""Setting up what a training run does besides training (bmc/train/loop.py:Run): where checkpoints go, resuming
from the last one (checked against the run that wrote it), early stopping, and loggers."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bmc.diagnostics import UsageError, suggest
from bmc.given import Given
from bmc.train import checkpoint as ckpt
from bmc.train.config import COLUMNS, DOMAINS, EarlyStopSpec, TrainConfig
from bmc.train.early_stop import EarlyStop
from bmc.train.loop import EpochLog, History, Run


@dataclass
class Options:
    checkpoint_dir: str | Path | None = None
    resume: str | Path | None = None
    on_epoch: list[Callable[[History], None]] = field(default_factory=list)
    backend: str = "numpy"
    params: Given | None = None  # the starting parameters by name (bmc/given.py); None: initialized
    replicas: Any = None  # data-parallel training: a bmc.train.replicas.Replicas, or None for one process


def _checked(key: str, value, flag: str):
    from bmc.diagnostics import BmcError

    try:
        return DOMAINS[key].check(value, flag, None)
    except BmcError as e:
        raise UsageError(e.message) from None


def _column(name: str, flag: str) -> str:
    if name not in COLUMNS:
        raise UsageError(f"{flag} {name}: not a quantity training measures",
                         notes=suggest(name, list(COLUMNS)) or ("e.g. val_loss, val_accuracy, loss, accuracy",))
    return name


def override(config: TrainConfig, every: str | int | None, keep: int | None, patience: int | None,
             on: str | None, test_every_epoch: bool | None) -> TrainConfig:
    """The command line's checkpoint and early-stopping flags over the train block's settings."""
    out = dataclasses.replace(config)
    if every is not None or keep is not None:
        policy = out.checkpoint or ckpt.Policy()
        if every is not None:
            count, unit = ckpt.parse_every(str(every))
            policy = dataclasses.replace(policy, every=count, unit=unit)
        if keep is not None:
            policy = dataclasses.replace(policy, keep=_checked("keep", keep, "--keep-checkpoints"))
        out.checkpoint = policy
    if patience is not None or on is not None:
        spec = out.early_stop or EarlyStopSpec(1)
        if patience is not None:
            spec = dataclasses.replace(spec, patience=_checked("patience", patience, "--early-stop"))
        elif out.early_stop is None:
            raise UsageError("--early-stop-on needs --early-stop PATIENCE (or early_stop = patience(5) in the train "
                             "block)")
        if on is not None:
            spec = dataclasses.replace(spec, on=_column(on, "--early-stop-on"))
        out.early_stop = spec
    if test_every_epoch:
        out.test_every_epoch = True
    return out


def fingerprint(model, config: TrainConfig, description: str, backend: str) -> dict:
    """What a resumed run must share with the run that wrote the checkpoint to end where it would have."""
    return {
        "model": model.name,
        "source_sha256": hashlib.sha256(model._text.encode("utf-8", "surrogatepass")).hexdigest(),
        "defines": {k: repr(v) for k, v in sorted(model._defines.items())},
        "dtype": model.compiled.dtype,
        "data": description,
        "backend": backend,
        "optimizer": str(config.optimizer),
        "epochs": config.epochs, "steps": config.steps, "batch": config.batch, "seed": config.seed,
        "schedule": str(config.schedule), "clip": config.clip, "validation": config.validation,
        "l1": config.l1, "l2": config.l2, "normalize": repr(config.normalize), "augment": repr(config.augment),
        "early_stop": str(config.early_stop) if config.early_stop else None,
        # only when set, so checkpoints written before freeze existed still resume
        **({"freeze": ", ".join(map(str, config.freeze))} if config.freeze else {}),
    }


def default_dir(model, out: str | Path | None) -> Path:
    return Path(f"{out}.checkpoints") if out else Path(f"{model.name}.checkpoints")


def prepare(model, config: TrainConfig, description: str, options: Options, build: Callable,
            log: Callable[[str], None]) -> tuple[Run, tuple[dict, dict] | None]:
    """The run's checkpointer, early stopping and loggers; with `resume`, the checkpoint's state, parameters and
    optimizer state."""
    run = Run(test_every_epoch=config.test_every_epoch, on_epoch=list(options.on_epoch),
              fingerprint=fingerprint(model, config, description, options.backend))
    if config.early_stop is not None:
        spec = config.early_stop
        run.early_stop = EarlyStop(spec.patience, spec.on, spec.min_delta)
    directory = options.checkpoint_dir or options.resume
    if directory is None and config.checkpoint is not None:
        directory = default_dir(model, None)
    if directory is not None:
        policy = config.checkpoint or ckpt.Policy()

        def write(path: Path, params: dict, state: dict, history: list, files: dict) -> Path:
            return build(params, state, History([EpochLog(**e) for e in history])).save(path, files)

        if options.resume is None and ckpt.checkpoints(directory):
            raise UsageError(f"checkpoint directory {directory} holds checkpoints of another run",
                             notes=(f"continue that run with --resume {directory}, or choose another "
                                    "--checkpoint-dir",))
        run.checkpoints = ckpt.Checkpointer(directory, policy, write)
        log(f"checkpoints: {directory}, {policy}")
    resumed = None
    if options.resume is not None:
        path = ckpt.latest(options.resume)
        ts = ckpt.read_state(path)
        differ = [k for k in sorted(set(ts.fingerprint) | set(run.fingerprint))
                  if ts.fingerprint.get(k) != run.fingerprint.get(k)]
        if differ:
            shown = "; ".join(f"{k}: {ts.fingerprint.get(k)!r} then, {run.fingerprint.get(k)!r} now"
                              for k in differ[:4])
            raise UsageError(f"checkpoint {path} was written by a different run ({shown})",
                             notes=("resume with the same .bm file, data and flags as the run that wrote it",))
        run.resume = ts
        if run.early_stop is not None and ts.early_stop is not None:
            run.early_stop.restore(ts.early_stop, ckpt.read_arrays(path, ckpt.BEST_PARAMS),
                                   ckpt.read_arrays(path, ckpt.BEST_STATE))
        resumed = (ckpt.read_arrays(path, "params.npz"), ckpt.read_arrays(path, "state.npz"))
        log(f"resuming from {path}")
    return run, resumed
