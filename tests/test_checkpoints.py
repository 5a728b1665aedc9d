"""Checkpoints, resuming, early stopping and logs (issue 11): a run killed with SIGKILL mid-epoch and resumed ends
with the parameters of an uninterrupted run, bit for bit (NumPy backend, same seed), with and without early
stopping; checkpoints are whole or absent, old ones are removed only when bmc wrote them."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bmc
from bmc.diagnostics import BmcError, UsageError
from bmc.train import checkpoint

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "examples" / "mlp.bm"
QUIET = {"log": lambda s: None, "progress": False}
EARLY = MLP.read_text().replace("normalize = true", "normalize = true\n    validation = 0.2\n"
                                "    early_stop = patience(2, on = val_loss)")


def params(build_dir: Path) -> dict[str, np.ndarray]:
    with np.load(build_dir / "params.npz") as f:
        return {k: f[k] for k in f.files}


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


def bmc_train(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bmc.cli", "train", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, **kw)


def kill_mid_epoch(args: list[str], ckpt: Path, steps_per_epoch: int, after: int) -> int:
    """Start `bmc train`, SIGKILL it once a checkpoint past step `after` that is not at an epoch's end exists;
    the step of the last checkpoint written."""
    proc = subprocess.Popen([sys.executable, "-m", "bmc.cli", "train", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            steps = [int(p.name[5:]) for p in checkpoint.checkpoints(ckpt)]
            if any(s > after and s % steps_per_epoch for s in steps):
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed: {proc.stderr.read()}"
    return int(checkpoint.checkpoints(ckpt)[-1].name[5:])


# 1438 training samples (digits), batch 4: 360 steps an epoch
RUN = ["--data", "digits", "--epochs", "6", "--batch", "4", "-D", "hidden=64", "--quiet", "--seed", "3"]


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_parameters(tmp_path):
    full = bmc_train(str(MLP), *RUN, "-o", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    ckpt = tmp_path / "ckpt"
    args = [str(MLP), *RUN, "-o", str(tmp_path / "resumed"), "--checkpoint-dir", str(ckpt),
            "--checkpoint-every", "50s"]
    killed_at = kill_mid_epoch(args, ckpt, 360, after=400)
    assert killed_at % 360 and not (tmp_path / "resumed").exists()
    again = bmc_train(*args, "--resume", str(ckpt))
    assert again.returncode == 0, again.stderr
    assert f"resuming at epoch {killed_at // 360 + 1}, step {killed_at}" in again.stdout
    assert same(params(tmp_path / "resumed"), params(tmp_path / "full"))
    history = json.loads((tmp_path / "resumed" / "manifest.json").read_text())["training"]["history"]
    assert [e["epoch"] for e in history] == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_a_run_with_early_stopping_killed_mid_epoch_resumes_to_the_same_stop(tmp_path):
    source = tmp_path / "early.bm"
    source.write_text(EARLY)
    run = [str(source), "--data", "digits", "--epochs", "30", "--batch", "4", "--lr", "0.01", "--quiet"]
    full = bmc_train(*run, "-o", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr
    assert "early stopping: val_loss has not improved for 2 epochs" in full.stdout
    ckpt = tmp_path / "ckpt"
    args = [*run, "-o", str(tmp_path / "resumed"), "--checkpoint-dir", str(ckpt), "--checkpoint-every", "40s"]
    kill_mid_epoch(args, ckpt, 288, after=300)  # 1150 samples after the 20% validation split: 288 steps an epoch
    again = bmc_train(*args, "--resume", str(ckpt))
    assert again.returncode == 0, again.stderr
    stop = [line for line in full.stdout.splitlines() if line.startswith("early stopping")]
    assert stop and stop[0] in again.stdout
    assert same(params(tmp_path / "resumed"), params(tmp_path / "full"))


def test_resuming_from_every_checkpoint_of_a_run_ends_where_the_run_ended(tmp_path):
    """In one process: each checkpoint (mid-epoch and at epoch ends) resumed alone gives the same parameters."""
    model = bmc.compile(MLP, defines={"hidden": 16})
    ckpt = tmp_path / "ckpt"
    full = model.train("digits", epochs=3, batch=256, checkpoint_dir=ckpt, checkpoint_every="2s", keep=100, **QUIET)
    written = checkpoint.checkpoints(ckpt)
    assert [int(p.name[5:]) for p in written] == [2, 4, 6, 8, 10, 12, 14, 16, 18]  # 6 steps an epoch, and the last
    for path in written[:-1]:
        alone = tmp_path / f"only-{path.name}"
        shutil.copytree(path, alone / path.name)
        resumed = model.train("digits", epochs=3, batch=256, resume=alone, **QUIET)
        assert same(resumed.params, full.params), path.name
        assert [e.loss for e in resumed.history.epochs] == [e.loss for e in full.history.epochs]


def test_only_the_last_k_and_the_best_checkpoints_are_kept_and_foreign_ones_never_removed(tmp_path):
    text = MLP.read_text().replace("normalize = true", "normalize = true\n    validation = 0.2\n"
                                   "    checkpoint = every(1, keep = 2, best = val_accuracy)")
    model = bmc.compile_string(text, defines={"features": 64, "hidden": 8})
    ckpt = tmp_path / "ckpt"
    trained = model.train("digits", epochs=8, lr=0.3, checkpoint_dir=ckpt, **QUIET)
    kept = checkpoint.checkpoints(ckpt)
    accuracies = [e.valid["accuracy"] for e in trained.history.epochs]
    best_epoch = accuracies.index(max(accuracies)) + 1
    assert [p.name for p in kept][-2:] == ["step-000000126", "step-000000144"]  # 18 steps an epoch
    assert f"step-{18 * best_epoch:09d}" in [p.name for p in kept] and len(kept) == (2 if best_epoch >= 7 else 3)
    mine = kept[-1]
    (mine / "notes.txt").write_text("mine")  # the user's file in a checkpoint: not bmc's to remove any more
    assert not checkpoint.remove_checkpoint(mine) and (mine / "notes.txt").read_text() == "mine"
    assert checkpoint.remove_checkpoint(kept[-2]) and not kept[-2].exists()
    with pytest.raises(UsageError, match="holds checkpoints of another run"):
        model.train("digits", epochs=1, checkpoint_dir=ckpt, **QUIET)


def test_resuming_with_other_settings_is_refused(tmp_path):
    model = bmc.compile(MLP, defines={"hidden": 8})
    model.train("digits", epochs=1, checkpoint_dir=tmp_path / "c", **QUIET)
    with pytest.raises(UsageError, match=r"different run \(batch: 64 then, 32 now"):
        model.train("digits", epochs=1, batch=32, resume=tmp_path / "c", **QUIET)
    with pytest.raises(UsageError, match="holds no checkpoint"):
        (tmp_path / "empty").mkdir()
        model.train("digits", epochs=1, resume=tmp_path / "empty", **QUIET)


def test_a_finished_early_stopped_run_resumes_to_nothing_more(tmp_path):
    model = bmc.compile_string(EARLY, defines={"features": 64, "hidden": 16})
    done = model.train("digits", epochs=30, lr=0.05, checkpoint_dir=tmp_path / "c", **QUIET)
    assert done.history.stopped_early
    again = model.train("digits", epochs=30, lr=0.05, resume=tmp_path / "c", **QUIET)
    assert same(again.params, done.params) and len(again.history.epochs) == len(done.history.epochs)


def test_early_stopping_restores_the_best_epoch(capsys):
    model = bmc.compile_string(EARLY, defines={"features": 64, "hidden": 16})
    trained = model.train("digits", epochs=30, lr=0.05, progress=False)
    h = trained.history
    best = min(h.epochs, key=lambda e: e.valid["loss"])
    assert h.stopped_early and len(h.epochs) == best.epoch + 2
    assert f"the parameters of epoch {best.epoch} (val_loss {best.valid['loss']:.4f}) are restored" in h.stopped_early
    assert trained.evaluate("digits")["accuracy"] == pytest.approx(h.final.test["accuracy"])
    assert "early stopping:" in capsys.readouterr().out


@pytest.mark.parametrize(("setting", "message"), [
    ("checkpoint = evry(1)", "expected checkpoint = every(1)"),
    ("checkpoint = every(1, kep = 2)", "every() has no setting 'kep'"),
    ("checkpoint = every(1, best = val_acuracy)", "watches 'val_acuracy', which is not a quantity"),
    ("early_stop = patience(2, on = val_los)", "watches 'val_los'"),
    ("early_stop = patience(0)", "'patience' must be"),
    ("erly_stop = patience(2)", "unknown training setting 'erly_stop'"),
    ("test = sometimes", "test takes end"),
])
def test_train_block_errors_are_located(setting, message):
    text = MLP.read_text().replace("normalize = true", f"normalize = true\n    {setting}")
    with pytest.raises(BmcError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        bmc.compile_string(text)
    rendered = e.value.render()
    assert "<string>:20:" in rendered and "^" in rendered
    if "val_" in setting or "erly" in setting or "kep" in setting or "evry" in setting:
        assert "did you mean" in rendered


def test_logs_hold_one_row_per_epoch_and_the_test_scores(tmp_path):
    out = bmc_train(str(MLP), "--data", "digits", "--epochs", "3", "-D", "hidden=8", "--quiet", "--log",
                    str(tmp_path / "log.csv"), "--json")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert {"step", "loss", "lr", "seconds", "samples_per_second", "accuracy"} <= set(rows[0])
    assert rows[-1]["test_accuracy"] and not rows[0]["test_accuracy"]
    summary = json.loads(out.stdout)
    assert summary["final"]["test_accuracy"] == pytest.approx(float(rows[-1]["test_accuracy"]))
    again = bmc_train(str(MLP), "--data", "digits", "--epochs", "1", "--quiet", "--log", str(tmp_path / "log.csv"))
    assert again.returncode == 1 and "the file exists" in again.stderr


def test_jsonl_and_tensorboard_logs(tmp_path):
    pytest.importorskip("tensorboardX", reason="tensorboardX (the dev extra) writes the event files")
    model = bmc.compile(MLP, defines={"hidden": 8})
    from bmc.train import logs

    board = logs.TensorBoardLog(tmp_path / "tb")
    model.train("digits", epochs=2, on_epoch=[logs.FileLog(tmp_path / "log.jsonl"), board], **QUIET)
    board.close()
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and "test_accuracy" in rows[1]
    (events,) = (tmp_path / "tb").glob("events.out.tfevents.*")
    scalars = {(v.tag, e.step) for e in read_events(events) for v in e.summary.value}
    assert {("loss", 23), ("loss", 46), ("accuracy", 46), ("lr", 23), ("test_accuracy", 46)} <= scalars


def read_events(path: Path):
    """The Event records of a TensorBoard file (TFRecord framing: length, its CRC, the record, its CRC)."""
    from tensorboardX.proto.event_pb2 import Event

    data, at, out = path.read_bytes(), 0, []
    while at < len(data):
        (length,) = struct.unpack_from("<Q", data, at)
        out.append(Event.FromString(data[at + 12:at + 12 + length]))
        at += 12 + length + 4
    return out
