"""Data-parallel training's cost on this machine, and a model of it for a cluster.

For K = 1, 2 (and --workers more) ranks on one machine (mpirun over loopback, one BLAS thread per rank), the
Fashion-MNIST MLP (examples/mlp.bm, global batch 64 split K ways) runs `--steps` steps of the data-parallel train step
(bmc/train/replicas.py) on random data of Fashion-MNIST's shape; rounds interleave the Ks. Printed per K: seconds
per step and per sample (medians over rounds), the share of a step spent in the all-reduce, and the speed-up over
K = 1. Then the cost model: each step every rank sends and receives 2 (K - 1) / K of the gradient buffer (a ring
all-reduce), so a step takes compute(B / K) + 2 (K - 1) / K * bytes / bandwidth + K * latency-ish; data
parallelism pays while the all-reduce stays below the compute it saves.

    python benchmarks/data_parallel.py                  # K = 1, 2; 3 rounds of 200 steps
    python benchmarks/data_parallel.py --workers 1 2 4 --steps 100 --hidden 1024
"""

from __future__ import annotations

import common  # noqa: F401 - first: one BLAS thread and this checkout on the path

# isort: split

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np
from common import REPO, load_average

RANK_JOB = "--rank-job"


def rank_job(steps: int, batch: int, hidden: int) -> None:
    """One rank: time `steps` data-parallel steps and the all-reduce inside them; rank 0 prints JSON."""
    import bmc
    from bmc.runtime import load_source
    from bmc.train.replicas import Replicas, communicator

    comm = communicator()
    model = bmc.compile(REPO / "examples" / "mlp.bm", defines={"features": 784, "hidden": hidden})
    module = load_source(model.generate("numpy", train=True))
    params, state = model.init_params()
    replicas = Replicas(comm)
    replicas.prepare(model.compiled.gradients())
    rng = np.random.default_rng(0)
    feed = {"image": rng.standard_normal((batch, 784)).astype(np.float32), "label": rng.integers(0, 10, batch)}
    local = replicas.shard(feed)
    timed = replicas.comm = _Timed(comm)
    hyper = {"lr": np.float32(1e-3)}
    for _ in range(10):  # warm up
        replicas.train_step(module, params, state, local, batch, hyper)
    timed.seconds = 0.0
    comm.Barrier()
    start = time.perf_counter()
    for _ in range(steps):
        replicas.train_step(module, params, state, local, batch, hyper)
    comm.Barrier()
    seconds = time.perf_counter() - start
    if comm.Get_rank() == 0:
        print(json.dumps({"seconds": seconds, "reduce": timed.seconds, "bytes": replicas.buffer_bytes}))


class _Timed:
    """The communicator, counting the seconds spent in Allreduce."""

    def __init__(self, comm):
        self.comm, self.seconds = comm, 0.0

    def Allreduce(self, *args):  # noqa: N802 - MPI's name
        start = time.perf_counter()
        self.comm.Allreduce(*args)
        self.seconds += time.perf_counter() - start

    def __getattr__(self, name):
        return getattr(self.comm, name)


def run(k: int, steps: int, batch: int, hidden: int) -> dict:
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1"}
    command = ["mpirun", "-n", str(k), "--bind-to", "none", sys.executable, __file__, RANK_JOB, str(steps),
               str(batch), str(hidden)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"error: the K = {k} job failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64, help="the global batch (default 64)")
    ap.add_argument("--hidden", type=int, default=128)
    args = ap.parse_args()
    if shutil.which("mpirun") is None:
        sys.exit("error: this benchmark needs Open MPI: apt-get install openmpi-bin libopenmpi-dev; "
                 "pip install mpi4py")
    print(f"MLP 784-{args.hidden}-10, global batch {args.batch}, {args.steps} steps x {args.rounds} rounds, "
          f"{os.cpu_count()} cores; load average before: {load_average()}")
    results: dict[int, list[dict]] = {k: [] for k in args.workers}
    for r in range(args.rounds):
        order = args.workers[r % len(args.workers):] + args.workers[:r % len(args.workers)]
        for k in order:
            results[k].append(run(k, args.steps, args.batch, args.hidden))
    base = None
    grad_bytes = results[args.workers[0]][0]["bytes"]
    print(f"{'K':>3} {'s/step':>9} {'us/sample':>10} {'all-reduce share':>17} {'speed-up':>9}")
    for k in args.workers:
        step = statistics.median(x["seconds"] for x in results[k]) / args.steps
        share = statistics.median(x["reduce"] / x["seconds"] for x in results[k])
        base = base or step
        print(f"{k:>3} {step:9.5f} {step / args.batch * 1e6:10.2f} {share:17.1%} {base / step:9.2f}")
    print(f"load average after: {load_average()}")
    compute = base  # one process's step on the whole batch
    print(f"\ncost model: gradient buffer {grad_bytes / 1e6:.2f} MB; one-process step {compute * 1e3:.2f} ms")
    for bandwidth, name in ((1.25e9, "10 GbE"), (12.5e9, "100 Gb/s InfiniBand")):
        # K ranks save compute (1 - 1/K) and pay 2 (K - 1) / K bytes / bandwidth: the same factor (K - 1) / K, so
        # data parallelism pays, for every K, when the one-process step takes longer than 2 bytes / bandwidth
        print(f"  {name}: pays when the one-process step exceeds {2 * grad_bytes / bandwidth * 1e3:.3f} ms "
              f"(this model: {'yes' if compute > 2 * grad_bytes / bandwidth else 'no'})")
        for k in (2, 8, 64):
            reduce = 2 * (k - 1) / k * grad_bytes / bandwidth
            step = compute / k + reduce
            print(f"  {name:>20}, K = {k:>2}: all-reduce {reduce * 1e3:7.3f} ms, step {step * 1e3:7.3f} ms, "
                  f"speed-up {compute / step:5.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == RANK_JOB:
        rank_job(*(int(a) for a in sys.argv[2:5]))
    else:
        main()
