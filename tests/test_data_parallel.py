"""Data-parallel training over MPI (bmc/train/replicas.py): K ranks on shards of each batch against one process on
the whole batch; a killed rank ends the job; resuming with another K; `bmc train --workers K`.

The jobs run under Open MPI's mpirun on this machine (loopback); the tests skip, saying what to install, where
mpirun or mpi4py is missing (.ci/run installs both)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

import bmc
from bmc.runtime import load_source
from bmc.train.launch import mpirun_command, without_workers
from bmc.train.replicas import Replicas

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "mpi_worker.py"


def _mpi_missing() -> str:
    if shutil.which("mpirun") is None:
        return "Open MPI's mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)"
    try:
        import mpi4py.MPI  # noqa: F401
    except Exception as e:  # ImportError, or a wheel that finds no MPI library
        return f"mpi4py is not usable ({e}); pip install mpi4py"
    return ""


needs_mpi = pytest.mark.skipif(bool(_mpi_missing()), reason=_mpi_missing() or "MPI present")

# Open MPI refuses to run as root (CI containers) unless told; the variables say so for the jobs these tests start
ENV = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
       "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_btl": "self,tcp,vader", "OMP_NUM_THREADS": "1",
       "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"):
    ENV.pop(var, None)  # a test run under mpirun itself must not look launched to the jobs it starts

MLP = """
model mlp_t(features = 12, hidden = 16, classes = 4) {
    input  x: f32[N, features]
    target label: i64[N]
    h      = relu(dense(x, hidden))
    logits = dense(h, classes)
    output probs = softmax(logits)
    loss = cross_entropy(logits, label)
}
train mlp_t {
    optimizer = adam(lr = 1e-2)
    batch     = 16
    l2        = 1e-4
}
"""

LSTM = """
model lstm_t(steps = 5, features = 3, hidden = 8, classes = 4) {
    input  rows: f32[N, steps, features]
    target label: i64[N]
    state  = lstm(rows, hidden)
    logits = dense(state, classes)
    output probs = softmax(logits)
    loss = cross_entropy(logits, label)
}
train lstm_t {
    optimizer = sgd(lr = 0.05, momentum = 0.9)
    batch     = 16
    clip      = 1.0
}
"""

CNN = """
model cnn_t(classes = 4) {
    input  image: f32[N, 1, 8, 8]
    target label: i64[N]
    # batch norm after the ReLU: before it, the convolution's bias would have a zero gradient, which Adam turns
    # into steps of rounding noise
    c      = max_pool(batch_norm(relu(conv2d(image, 4, 3))))
    h      = dropout(relu(dense(flatten(c), 16)), 0.25)
    logits = dense(h, classes)
    output probs = softmax(logits)
    loss = cross_entropy(logits, label)
}
train cnn_t {
    optimizer = adam(lr = 1e-2)
    batch     = 16
}
"""


def _write(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / f"{name}.bm"
    path.write_text(text)
    return path


def _job(k: int, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = ["mpirun", "-n", str(k), sys.executable, str(WORKER), *args]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=timeout)


def _single(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(WORKER), *args, "--single"], env=ENV, capture_output=True, text=True,
                          timeout=120)


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def _agree(got: Path, want: Path, tolerance: float) -> None:
    a, b = np.load(got), np.load(want)
    assert sorted(a.files) == sorted(b.files)
    worst = {k: _relative(a[k], b[k]) for k in a.files}
    assert max(worst.values()) < tolerance, {k: v for k, v in worst.items() if v >= tolerance}


@needs_mpi
@pytest.mark.parametrize("source", [MLP, LSTM], ids=["mlp", "lstm"])
@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("dtype,tolerance", [("f32", 1e-5), ("f64", 1e-11)])
def test_k_ranks_equal_one_process_on_the_whole_batch(tmp_path, source, k, dtype, tolerance):
    """K ranks with B / K rows each equal one process with batch B on the same samples, after 50 steps: parameters,
    optimizer state and every epoch's loss (the sums differ only in their order)."""
    path = _write(tmp_path, source, "model")
    flags = ["--steps", "50", "--batch", "16", "--dtype", dtype]
    done = _job(k, str(path), str(tmp_path / "k.npz"), *flags)
    assert done.returncode == 0, done.stderr[-3000:]
    done = _single(str(path), str(tmp_path / "one.npz"), *flags)
    assert done.returncode == 0, done.stderr[-3000:]
    _agree(tmp_path / "k.npz", tmp_path / "one.npz", tolerance)


def _ddp_reference(model: bmc.Model, k: int, steps: int, batch: int) -> dict[str, np.ndarray]:
    """What data-parallel training computes, written out in one process: each shard's gradients from its own
    copy of the parameters (batch norm normalizes a shard by the shard's statistics; dropout keys by rank),
    weighted by its rows, summed, divided by the batch; running statistics averaged the same way; one update."""
    sys.path.insert(0, str(WORKER.parent))
    import mpi_worker

    module = load_source(model.generate("numpy", train=True))
    params, state = model.init_params()
    data = mpi_worker.synthetic(model, 256)
    running = [k_.split("/", 1)[1] for k_ in model.compiled.gradients().outputs if k_.startswith("params/")]
    for s, feed in mpi_worker.fixed_batches(model, data, steps, batch):
        total = {}
        for r in range(k):
            lo, hi = r * batch // k, (r + 1) * batch // k
            shard = {name: v[lo:hi] for name, v in feed.items()}
            mine = {name: v.copy() for name, v in params.items()}
            key = Replicas(types.SimpleNamespace(Get_rank=lambda r=r: r, Get_size=lambda: k)).key(np.int64(s))
            out = module.gradients(mine, shard, *([key] if "rng" in module.HYPER else []))
            for name, v in out.items():
                if name.startswith("grad/"):
                    total[name] = total.get(name, 0) + v.astype(np.float64) * (hi - lo)
            for name in running:
                total[name] = total.get(name, 0) + mine[name].astype(np.float64) * (hi - lo)
        for name in running:
            params[name][...] = total.pop(name) / batch
        grads = {name: (v / batch).astype(params[name[5:]].dtype) for name, v in total.items()}
        module.apply(params, state, grads, module.DTYPE(0.01))
    return {**{f"params/{n}": v for n, v in params.items()}, **{f"state/{n}": v for n, v in state.items()}}


@needs_mpi
@pytest.mark.parametrize("k", [2, 4])
def test_batch_norm_and_dropout_as_data_parallel_training_defines_them(tmp_path, k):
    """A CNN with batch norm and dropout: each rank's shard is normalized by its own statistics and masked with
    its own key, as the reference computes step by step; the running statistics are the shards' average."""
    path = _write(tmp_path, CNN, "cnn")
    done = _job(k, str(path), str(tmp_path / "k.npz"), "--steps", "20", "--batch", "16", "--steps-only")
    assert done.returncode == 0, done.stderr[-3000:]
    want = _ddp_reference(bmc.compile(path), k, 20, 16)
    np.savez(tmp_path / "want.npz", **want)
    _agree(tmp_path / "k.npz", tmp_path / "want.npz", 1e-5)
    got = np.load(tmp_path / "k.npz")
    assert any("running" in name or "mean" in name for name in got.files), got.files  # statistics were compared


@needs_mpi
def test_a_killed_rank_ends_the_job(tmp_path):
    """Rank 1 dies (SIGKILL) after its first epoch of a long run: mpirun ends the others, well within 30 s."""
    path = _write(tmp_path, MLP, "model")
    start = time.monotonic()
    done = _job(2, str(path), str(tmp_path / "k.npz"), "--steps", "100000", "--kill-rank", "1", timeout=60)
    elapsed = time.monotonic() - start
    assert done.returncode != 0
    assert elapsed < 30, elapsed
    assert not (tmp_path / "k.npz").exists()


@needs_mpi
@pytest.mark.slow
def test_workers_flag_trains_to_the_single_process_accuracy(tmp_path):
    """`bmc train examples/mlp.bm --data digits --workers 2`: the same run as one process (the train block's batch
    is the global batch), so the same test accuracy; rank 0 alone writes the build."""
    scores = {}
    for workers in (None, 2):
        out = tmp_path / f"w{workers}"
        command = [sys.executable, "-m", "bmc", "train", "examples/mlp.bm", "--data", "digits", "--epochs", "5",
                   "--quiet", "--json", "-o", str(out)] + (["--workers", str(workers)] if workers else [])
        done = subprocess.run(command, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        scores[workers] = json.loads(done.stdout)["final"]
        assert (out / "model.py").is_file()
    assert scores[2]["test_accuracy"] == pytest.approx(scores[None]["test_accuracy"], abs=0.01)
    assert scores[2]["loss"] == pytest.approx(scores[None]["loss"], rel=1e-4)


@needs_mpi
@pytest.mark.slow
def test_resume_with_another_number_of_workers(tmp_path):
    """A run checkpointed by 2 workers resumes in one process (and the other way round) and ends where the
    uninterrupted run ends: batches and updates do not depend on the number of workers."""
    def train(*flags: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "bmc", "train", "examples/mlp.bm", "--data", "digits", "--epochs", "4",
                   "--quiet", *flags]
        done = subprocess.run(command, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    train("--workers", "2", "--checkpoint-dir", str(tmp_path / "ck"), "--checkpoint-every", "1",
          "-o", str(tmp_path / "full"))
    checkpoints = sorted((tmp_path / "ck").glob("step-*"))
    assert len(checkpoints) >= 3
    for later in checkpoints[2:]:  # as if the job had stopped after its second epoch
        shutil.rmtree(later)
    train("--resume", str(tmp_path / "ck"), "-o", str(tmp_path / "resumed"))
    full, resumed = np.load(tmp_path / "full" / "params.npz"), np.load(tmp_path / "resumed" / "params.npz")
    for name in full.files:
        assert _relative(resumed[name], full[name]) < 1e-5, name


def test_the_workers_command_line():
    argv = ["train", "m.bm", "--workers", "3", "--data", "digits", "--workers=2", "-o", "out"]
    assert without_workers(argv) == ["train", "m.bm", "--data", "digits", "-o", "out"]
    if shutil.which("mpirun") or shutil.which("mpiexec"):
        command = mpirun_command(64, argv)
        assert command[1:3] == ["-n", "64"] and "--oversubscribe" in command
        assert command[command.index(sys.executable):] == [sys.executable, "-m", "bmc", *without_workers(argv)]


def test_workers_without_mpirun_is_a_clear_error(tmp_path, monkeypatch):
    from bmc.cli import main

    monkeypatch.setenv("PATH", str(tmp_path))  # no mpirun here
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(var, raising=False)
    assert main(["train", "examples/mlp.bm", "--data", "digits", "--workers", "2"]) == 1


def test_shards_cover_the_batch_once():
    for k in (1, 2, 3, 4, 7):
        for n in (1, 5, 16, 17):
            rows = []
            for r in range(k):
                replicas = Replicas(types.SimpleNamespace(Get_rank=lambda r=r: r, Get_size=lambda k=k: k))
                rows += list(replicas.shard({"x": np.arange(n)})["x"])
            assert rows == list(range(n))


@needs_mpi
def test_an_error_in_the_ranks_ends_the_job_with_a_located_message(tmp_path):
    """Every rank refuses a bad model the same way: exit status 1, the error once as rank 0 prints it and once
    marked with the other rank's number, and no rank left waiting."""
    path = _write(tmp_path, MLP.replace("relu(dense(x, hidden))", "relu(dense(x, hiden))"), "model")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "bmc", "train", str(path), "--data", "digits", "--workers", "2"],
                          env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr[-3000:]
    assert time.monotonic() - start < 30
    assert f"{path}:5:" in done.stderr and "hiden" in done.stderr
    assert "[rank 1 of 2] " in done.stderr
    assert "a worker failed (exit status 1)" in done.stderr


@needs_mpi
def test_onnxruntime_over_mpi_is_refused_with_what_to_do(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bmc", "train", "examples/mlp.bm", "--data", "digits", "--workers",
                           "2", "--backend", "onnxruntime", "--epochs", "1"], env=ENV, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "--backend onnxruntime over MPI is not supported yet" in done.stderr
    assert "Traceback" not in done.stderr
