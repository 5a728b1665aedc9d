"""One rank of a data-parallel test job (tests/test_data_parallel.py starts it under mpirun): trains a model on
synthetic data with the MPI world as its replicas and has rank 0 save the parameters and state.

    mpirun -n K python tests/mpi_worker.py MODEL.bm OUT.npz --steps 50 --batch 16 [--dtype f64] [--kill-rank 1]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bmc
import bmc.runtime
from bmc.train.replicas import Replicas, communicator


def synthetic(model: bmc.Model, n: int, seed: int = 0) -> tuple:
    """(x_train, y_train, x_test, y_test): random inputs of the model's sample shape and random class labels."""
    rng = np.random.default_rng(seed)
    inp = model.compiled.model.graph.inputs_with_role("input")[0]
    shape = [d for d in inp.type.shape[1:]]
    classes = int(model.compiled.model.constants.get("classes", 10))
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    y = rng.integers(0, classes, n)
    return x[: n * 3 // 4], y[: n * 3 // 4], x[n * 3 // 4:], y[n * 3 // 4:]


def fixed_batches(model: bmc.Model, data: tuple, steps: int, batch: int):
    """The batches of `--steps-only`: batch s is rows [s B, (s + 1) B) of the training arrays, cycling."""
    x, y = data[0], data[1]
    inp = model.compiled.model.graph.inputs_with_role("input")[0].name
    tgt = model.compiled.model.graph.inputs_with_role("target")[0].name
    for s in range(steps):
        lo = (s * batch) % (len(x) - batch + 1)
        yield s, {inp: x[lo:lo + batch], tgt: y[lo:lo + batch]}


def steps_only(model: bmc.Model, data: tuple, args) -> int:
    """Replicas.train_step on fixed batches, from the train block's initial parameters."""
    module = bmc.runtime.load_source(model.generate("numpy", train=True))
    params, state = model.init_params()
    replicas = Replicas(communicator())
    replicas.prepare(model.compiled.gradients())
    lr = module.DTYPE(0.01)
    for s, feed in fixed_batches(model, data, args.steps, args.batch):
        hyper = {k: v for k, v in {"lr": lr, "rng": np.int64(s)}.items() if k in module.HYPER}
        replicas.train_step(module, params, state, replicas.shard(feed), args.batch, hyper)
    if replicas.rank == 0:
        np.savez(args.out, **{f"params/{k}": v for k, v in params.items()},
                 **{f"state/{k}": v for k, v in state.items()})
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--dtype", default="f32")
    ap.add_argument("--kill-rank", type=int, default=-1)
    ap.add_argument("--single", action="store_true", help="one process, no replicas (the reference run)")
    ap.add_argument("--steps-only", action="store_true",
                    help="no training loop: batch s is rows [s B, (s + 1) B) of the data, the key of step s is s")
    args = ap.parse_args()
    model = bmc.compile(args.model, dtype=args.dtype)
    data = synthetic(model, args.samples)
    if args.steps_only:
        return steps_only(model, data, args)
    replicas = None if args.single else Replicas(communicator())
    rank = 0 if replicas is None else replicas.rank

    def kill(history) -> None:
        if rank == args.kill_rank:
            os.kill(os.getpid(), signal.SIGKILL)

    build = model.train(data, steps=args.steps, batch=args.batch, progress=False, log=lambda m: None,
                        warn=lambda w: None, replicas=replicas, on_epoch=[kill])
    if rank == 0:
        np.savez(args.out, **{f"params/{k}": v for k, v in build.params.items()},
                 **{f"state/{k}": v for k, v in build.state.items()},
                 **{f"loss/{i}": e.loss for i, e in enumerate(build.history.epochs)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
