"""Data-parallel training over MPI: every rank runs the same program on its shard of each batch.

Launched as `mpirun -n K bmc train ...` (or `bmc train --workers K`, which starts mpirun), every rank builds the same
module, initializes the same parameters from the same seed and draws the same batch order; then each step

1. rank r takes rows [r n / K, (r + 1) n / K) of the batch of n samples (its shard of n_r rows),
2. runs the generated `gradients()` on them: the shard's mean loss, its gradients, its batch-norm statistics,
3. scales them by n_r and sums them over all ranks in one in-place all-reduce of one flat buffer,
4. divides by n and runs the generated `apply()`: the same update on every rank, from the same gradients.

So the parameters stay identical on every rank, and the step is the single-process step on the whole batch, with
two exceptions a model may have: batch normalization normalizes each shard by that shard's statistics (as
PyTorch's DistributedDataParallel does without SyncBatchNorm; the running averages are averaged over the ranks),
and dropout draws each rank's masks from a key of (seed, step, rank). The batch size of the train block is the
global batch: a run's batches and results do not depend on K, and a checkpoint resumes with any K.

Rank 0 alone prints, writes checkpoints and the trained build; every rank scores the validation and test sets (the
same numbers, from the same parameters). A rank that fails aborts the whole job (`MPI.Abort`), so no rank waits
forever in an all-reduce for one that is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np

from bmc.diagnostics import UsageError
from bmc.ir.graph import Graph
from bmc.ir.types import NUMPY_NAMES

_KEY_STRIDE = 0x5851F42D4C957F2D  # an odd 63-bit constant: rank r's dropout key is the step's key + r * stride


def communicator():
    """MPI's world communicator (mpi4py), or a UsageError saying how to get it."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise UsageError(f"data-parallel training needs mpi4py ({e})",
                         notes=("install Open MPI and mpi4py: apt-get install openmpi-bin libopenmpi-dev; "
                                "pip install mpi4py",)) from None
    return MPI.COMM_WORLD


class Replicas:
    """This rank's part in data-parallel training (see the module's docstring)."""

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self._layout: list[tuple[str, int, int, tuple[int, ...], np.dtype]] = []
        self._buffer = np.zeros(0, np.float32)

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @property
    def buffer_bytes(self) -> int:
        """The bytes each step's all-reduce sums (the flat buffer `prepare` laid out)."""
        return self._buffer.nbytes

    def describe(self) -> str:
        return f"data-parallel over {self.size} MPI ranks, each batch split {self.size} ways"

    def prepare(self, gradients: Graph) -> None:
        """The flat buffer the step sums over the ranks, laid out from the gradients graph's outputs (the same on
        every rank, whatever its rows): the loss, every `grad/<name>`, every running statistic `params/<name>`."""
        entries = [("loss", gradients.outputs["loss"].type)]
        entries += [(k, v.type) for k, v in gradients.outputs.items() if k.startswith(("grad/", "params/"))]
        widest = np.float64 if any(t.dtype == "f64" for _, t in entries) else np.float32
        self._layout, offset = [], 0
        for key, t in entries:
            size = int(np.prod(t.shape, dtype=np.int64))
            self._layout.append((key, offset, offset + size, tuple(t.shape), np.dtype(NUMPY_NAMES[t.dtype])))
            offset += size
        self._buffer = np.zeros(offset, dtype=widest)

    def shard(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """This rank's rows of a batch: [r n / K, (r + 1) n / K), so the shards differ by at most one row."""
        n = len(next(iter(feed.values())))
        lo, hi = self.rank * n // self.size, (self.rank + 1) * n // self.size
        return {k: v[lo:hi] for k, v in feed.items()}

    def key(self, key: np.integer) -> np.int64:
        """Rank r's dropout key for a step whose single-process key is `key` (rank 0 keeps it)."""
        return np.int64((int(key) + self.rank * _KEY_STRIDE) % (1 << 63))

    def train_step(self, module: ModuleType, params: dict, state: dict, local: dict[str, np.ndarray], total: int,
                   hyper: dict[str, np.generic]) -> dict:
        """One step on the whole batch of `total` rows, of which `local` is this rank's shard: what the generated
        train_step returns (the batch's mean loss; the model's outputs on this rank's rows)."""
        n = len(next(iter(local.values())))
        # a last batch with fewer rows than ranks leaves some without any: they add zeros, and still take part
        result = module.gradients(params, local, *(self.key(v) if k == "rng" else v for k, v in hyper.items()
                                                   if k != "lr")) if n else {}
        buffer = self._buffer
        for key, start, stop, _, _ in self._layout:
            view = buffer[start:stop]
            if not n:
                view[...] = 0
            elif key == "loss":
                view[0] = float(result["loss"]) * n
            else:  # a gradient, or a running statistic gradients() wrote into params
                value = result[key] if key.startswith("grad/") else params[key.split("/", 1)[1]]
                np.multiply(value.reshape(-1), n, out=view, casting="unsafe")
        self.comm.Allreduce(_mpi().IN_PLACE, buffer)
        np.multiply(buffer, 1.0 / total, out=buffer)
        grads, loss = {}, 0.0
        for key, start, stop, shape, dtype in self._layout:
            view = buffer[start:stop].reshape(shape)
            if key == "loss":
                loss = view
            elif key.startswith("grad/"):
                grads[key] = view.astype(dtype, copy=False)
            else:
                params[key.split("/", 1)[1]][...] = view
        module.apply(params, state, grads, *(v for k, v in hyper.items() if k == "lr"))
        out = {k: v for k, v in result.items() if not k.startswith("grad/")}
        out["loss"] = np.asarray(loss, dtype=self._layout[0][4])
        return out

    def combine(self, acc) -> None:
        """Sum a metrics accumulator (a confusion matrix, regression error sums) over the ranks, in place: each
        rank counted its own rows of the epoch's batches."""
        if acc is None or self.size == 1:
            return
        saved = acc.to_json()
        acc.restore({k: self.comm.allreduce(np.asarray(v), op=_mpi().SUM).tolist() for k, v in saved.items()})


def _mpi():
    from mpi4py import MPI

    return MPI


def silent(_: str) -> None:
    """The log of a rank other than 0: rank 0 speaks for the job."""


def for_rank(replicas: Replicas | None, log: Callable[[str], None]) -> Callable[[str], None]:
    return log if replicas is None or replicas.leader else silent

