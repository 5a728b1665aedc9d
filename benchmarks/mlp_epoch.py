"""One training epoch of the MLP (examples/mlp.bm) on Fashion-MNIST: bmc's NumPy backend vs PyTorch eager, on CPU.

Both systems train the same model (Dense 128 relu, Dense 10, softmax cross-entropy, Adam lr 1e-3 eps 1e-7, batch 64)
from the same initial weights (bmc's `init_params(seed)`), on the same shuffled batches, with one thread each.
The runs are interleaved in one process: after a warm-up, each round runs one epoch of each system (which one goes
first alternates), so machine noise hits both alike. Compare the ratio, not the absolute seconds across runs.

    python benchmarks/mlp_epoch.py                 # 3 rounds, full epochs (938 steps each)
    python benchmarks/mlp_epoch.py --steps 200     # quick check: time 200 steps per "epoch"

Needs torch (not a bmc dependency): `pip install torch==2.13.0`, and Fashion-MNIST:
`apt-get install dataset-fashion-mnist`.
"""

from __future__ import annotations

import common  # first: one BLAS thread and this checkout on the path, before NumPy loads

# isort: split

import argparse
import math
import os
import platform
import statistics
import sys
import time

import numpy as np
from common import REPO, import_torch

import bmc
import bmc.runtime

MODEL_FILE = REPO / "examples" / "mlp.bm"
BATCH = 64
LR = 1e-3


def load_data():
    x_train, y_train, x_test, y_test = common.load_data()
    return flat(x_train), y_train, flat(x_test), y_test


def flat(x: np.ndarray) -> np.ndarray:
    """[n, 28, 28] images as the model's [n, 784] float32 input."""
    return np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled sample order of one epoch; epoch 0 is the warm-up. Both systems get the same orders."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class BmcRunner:
    """bmc's generated NumPy module, driven like bmc/train/loop.py `fit` (gather, train_step, float(loss))."""

    name = "bmc numpy"

    def __init__(self, model, params, state, x, y):
        self.module = bmc.runtime.load_source(model.generate("numpy", train=True), "<bmc mlp benchmark>")
        self.params, self.state = params, state
        self.x, self.y = x, y
        self.lr = np.float32(LR)

    def epoch(self, order: np.ndarray, steps: int) -> tuple[float, float]:
        module, params, state, x, y, lr = self.module, self.params, self.state, self.x, self.y, self.lr
        total, seen = 0.0, 0
        start = time.perf_counter()
        for step in range(steps):
            idx = order[step * BATCH:(step + 1) * BATCH]
            result = module.train_step(params, state, {"image": x[idx], "label": y[idx]}, lr)
            total += float(result["loss"]) * len(idx)
            seen += len(idx)
        return time.perf_counter() - start, total / seen

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        probs = bmc.runtime.predict_batches(self.module, self.params, {"image": x})["probs"]
        return float((probs.argmax(axis=1) == y).mean())


class TorchRunner:
    """PyTorch eager on CPU: nn.Sequential(Linear, ReLU, Linear), CrossEntropyLoss, Adam; a standard loop."""

    name = "torch eager"

    def __init__(self, torch, params, x, y):
        self.torch = torch
        nn = torch.nn
        self.model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
        with torch.no_grad():  # start from bmc's initial weights (bmc stores W as [in, out], torch as [out, in])
            for layer, name in ((self.model[0], "h"), (self.model[2], "logits")):
                layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(params[f"{name}.W"].T)))
                layer.bias.copy_(torch.from_numpy(params[f"{name}.b"]))
        self.loss_fn = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR, eps=1e-7)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)  # converted once, outside any timing

    def epoch(self, order: np.ndarray, steps: int) -> tuple[float, float]:
        model, loss_fn, optimizer, x, y = self.model, self.loss_fn, self.optimizer, self.x, self.y
        order_t = self.torch.from_numpy(order)
        model.train()
        total, seen = 0.0, 0
        start = time.perf_counter()
        for step in range(steps):
            idx = order_t[step * BATCH:(step + 1) * BATCH]
            xb, yb = x[idx], y[idx]
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        return time.perf_counter() - start, total / seen

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        self.model.eval()
        with self.torch.no_grad():
            logits = self.model(self.torch.from_numpy(x))
        return float((logits.argmax(dim=1).numpy() == y).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--epochs-per-round", type=int, default=1, help="epochs of each system per round (default 1)")
    ap.add_argument("--steps", type=int, default=None, help="time only N steps per epoch (quick check)")
    ap.add_argument("--warmup", type=int, default=300, help="warm-up steps per system before timing (default 300)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the batch orders")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.epochs_per_round < 1 or (args.steps is not None and args.steps < 1):
        ap.error("--rounds, --epochs-per-round and --steps must be >= 1")

    torch = import_torch()
    x_train, y_train, x_test, y_test = load_data()
    n = len(x_train)
    full_steps = math.ceil(n / BATCH)
    steps = full_steps if args.steps is None else min(args.steps, full_steps)
    warmup = min(args.warmup, full_steps)

    model = bmc.compile(MODEL_FILE)
    params, state = model.init_params(args.seed)
    torch_runner = TorchRunner(torch, params, x_train, y_train)  # copies the initial weights
    runners = [BmcRunner(model, params, state, x_train, y_train), torch_runner]

    print(f"mlp 784-128-10 on Fashion-MNIST ({n} train / {len(x_test)} test), batch {BATCH}, Adam lr {LR:g}; "
          f"{steps} steps per epoch{'' if steps == full_steps else f' (of {full_steps}: --steps)'}, "
          f"{args.rounds} rounds x {args.epochs_per_round} epoch(s), {warmup} warm-up steps")
    print(f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
          f"bmc {bmc.__version__}; threads: torch {torch.get_num_threads()}, "
          f"OPENBLAS/OMP/MKL_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; "
          f"load average {os.getloadavg()[0]:.2f}")

    for r in runners:
        r.epoch(epoch_order(args.seed, 0, n), warmup)

    times: dict[str, list[float]] = {r.name: [] for r in runners}
    losses: dict[str, float] = {}
    epoch = 0
    for rnd in range(args.rounds):
        order = runners if rnd % 2 == 0 else runners[::-1]
        line = []
        for k in range(args.epochs_per_round):
            batches = epoch_order(args.seed, epoch + k + 1, n)
            for r in order:
                seconds, losses[r.name] = r.epoch(batches, steps)
                times[r.name].append(seconds)
                line.append(f"{r.name} {seconds:.3f} s")
        epoch += args.epochs_per_round
        print(f"round {rnd + 1}/{args.rounds}: " + ", ".join(line))

    bmc_name, torch_name = runners[0].name, runners[1].name
    med = {k: statistics.median(v) for k, v in times.items()}
    scale = full_steps / steps  # seconds per full epoch when only --steps were timed
    print()
    print(f"{'system':<12} {'median s/epoch':>15} {'min s/epoch':>12} {'steps/s':>9} {'last loss':>10} "
          f"{'test acc':>9}")
    for r in runners:
        acc = r.accuracy(x_test, y_test)
        print(f"{r.name:<12} {med[r.name] * scale:>15.3f} {min(times[r.name]) * scale:>12.3f} "
              f"{steps / med[r.name]:>9,.0f} {losses[r.name]:>10.4f} {acc:>9.4f}")
    ratio = med[bmc_name] / med[torch_name]
    verdict = "bmc faster" if ratio < 1 else "torch faster" if ratio > 1 else "tie"
    per_round = [b / t for b, t in zip(times[bmc_name], times[torch_name], strict=True)]
    note = " (extrapolated from --steps)" if steps != full_steps else ""
    print()
    print(f"{bmc_name}  {med[bmc_name] * scale:.2f} s/epoch   {torch_name}  {med[torch_name] * scale:.2f} s/epoch   "
          f"ratio {ratio:.2f} ({verdict}){note}")
    print("per-epoch ratios bmc/torch: " + ", ".join(f"{q:.2f}" for q in per_round))
    return 0


if __name__ == "__main__":
    sys.exit(main())
