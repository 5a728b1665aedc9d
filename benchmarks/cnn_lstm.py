"""Training steps of the CNN (examples/cnn.bm) and the LSTM (examples/lstm.bm) on Fashion-MNIST: bmc's NumPy backend
vs PyTorch eager, on CPU.

Both systems train the same models (CNN: Conv 32 3x3, BatchNorm, ReLU, MaxPool 2, Conv 64 3x3, BatchNorm, ReLU,
MaxPool 2, Dense 128 ReLU, Dropout 0.25, Dense 10; LSTM: LSTM 128 over the 28 rows of an image, last hidden state,
Dense 10; softmax cross-entropy, Adam lr 1e-3 eps 1e-7, batch 64) from the same initial weights (bmc's
`init_params(seed)`, copied into torch), on the same shuffled batches, with one thread each. The runs are interleaved
in one process: after a warm-up, each round times N steps of each system (which one goes first alternates), so
machine noise hits both alike. Compare the ratio, not the absolute seconds across runs.

    python benchmarks/cnn_lstm.py                       # 3 rounds: 200 CNN steps and 200 LSTM steps per system
    python benchmarks/cnn_lstm.py --only lstm --rounds 5
    python benchmarks/cnn_lstm.py --cnn-steps 50 --lstm-steps 50 --rounds 1   # quick check

Needs torch (not a bmc dependency): `pip install torch==2.13.0`, and Fashion-MNIST:
`apt-get install dataset-fashion-mnist`.
"""

from __future__ import annotations

import common  # noqa: F401 - first: one BLAS thread and this checkout on the path, before NumPy loads

# isort: split

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import REPO, import_torch, load_average, load_data, numpy_calls, tensor

import bmc
import bmc.runtime

BATCH = 64
LR = 1e-3
EPS = 1e-7  # bmc's Adam epsilon (torch's default is 1e-8)
HIDDEN = 128
FLOATS = {"f16": np.float16, "f32": np.float32, "f64": np.float64}


def batch_order(seed: int, run: int, n: int) -> np.ndarray:
    """The shuffled sample order of one timed run; run 0 is the warm-up. Both systems get the same orders."""
    return np.random.default_rng([seed, run]).permutation(n)


class BmcRunner:
    """bmc's generated NumPy module, driven like bmc/train/loop.py `fit`: gather the batch, `train_step` with the
    hyper arguments in `module.HYPER` order (a fresh dropout key per step), `float(loss)`."""

    name = "bmc numpy"

    def __init__(self, model, params, state, x, y, label: str):
        self.source = model.generate("numpy", train=True)
        self.module = bmc.runtime.load_source(self.source, f"<bmc {label} benchmark>")
        (self.input,) = self.module.INPUTS  # "image" for the CNN, "rows" for the LSTM
        self.params, self.state = params, state
        self.x, self.y = x, y
        self.lr_type = FLOATS[self.module.HYPER["lr"][0]] if "lr" in self.module.HYPER else np.float32
        self.step = 0  # global step counter: the dropout key of each step

    def run(self, order: np.ndarray, steps: int) -> tuple[float, float]:
        module, params, state, x, y, names = self.module, self.params, self.state, self.x, self.y, self.module.HYPER
        lr = self.lr_type(LR)
        total, seen = 0.0, 0
        start = time.perf_counter()
        for step in range(steps):
            idx = order[step * BATCH:(step + 1) * BATCH]
            hyper = {"lr": lr, "rng": np.int64(self.step)}
            result = module.train_step(params, state, {self.input: x[idx], "label": y[idx]},
                                       *(hyper[k] for k in names))
            total += float(result["loss"]) * len(idx)
            seen += len(idx)
            self.step += 1
        return time.perf_counter() - start, total / seen

    def probs(self, x: np.ndarray) -> np.ndarray:
        return bmc.runtime.predict_batches(self.module, self.params, {self.input: x})["probs"]

    def numpy_calls(self, idx: np.ndarray) -> dict[str, int]:
        """The NumPy calls of one train step on the batch `idx`, in a counting copy of the module with copies of
        the params and state (the timed module and parameters are untouched)."""
        params = {k: v.copy() for k, v in self.params.items()}
        state = {k: v.copy() for k, v in self.state.items()}
        hyper = {"lr": self.lr_type(LR), "rng": np.int64(0)}
        batch = {self.input: self.x[idx], "label": self.y[idx]}
        return numpy_calls(self.source, lambda m: m.train_step(params, state, batch, *(hyper[k] for k in m.HYPER)))


class TorchRunner:
    """PyTorch eager on CPU: the model, CrossEntropyLoss, Adam; a standard loop (zero_grad, forward, loss, backward,
    step, loss.item())."""

    name = "torch eager"

    def __init__(self, torch, model, x, y):
        self.torch, self.model = torch, model
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.optimizer = torch.optim.Adam(model.parameters(), lr=LR, eps=EPS)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)  # converted once, outside any timing

    def run(self, order: np.ndarray, steps: int) -> tuple[float, float]:
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

    def probs(self, x: np.ndarray) -> np.ndarray:
        self.model.eval()
        with self.torch.no_grad():
            out = [self.torch.softmax(self.model(self.torch.from_numpy(x[i:i + 1024])), dim=1)
                   for i in range(0, len(x), 1024)]
        return self.torch.cat(out).numpy()


def torch_cnn(torch, params: dict[str, np.ndarray]):
    """examples/cnn.bm in torch, starting from bmc's weights. bmc's batch-norm momentum 0.9 (weight of the old running
    value) is torch's momentum 0.1 (weight of the new one); both use eps 1e-5 and the unbiased running variance."""
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.BatchNorm2d(32, eps=1e-5, momentum=0.1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64, eps=1e-5, momentum=0.1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))
    with torch.no_grad():
        for conv, bn, name in ((model[0], model[1], "c1"), (model[4], model[5], "c2")):
            conv.weight.copy_(tensor(torch, params[f"{name}.conv2d.W"]))  # [O, C, kh, kw] in both
            conv.bias.copy_(tensor(torch, params[f"{name}.conv2d.b"]))
            bn.weight.copy_(tensor(torch, params[f"{name}.batch_norm.gamma"]))
            bn.bias.copy_(tensor(torch, params[f"{name}.batch_norm.beta"]))
            bn.running_mean.copy_(tensor(torch, params[f"{name}.batch_norm.running_mean"]))
            bn.running_var.copy_(tensor(torch, params[f"{name}.batch_norm.running_var"]))
        for layer, name in ((model[9], "h"), (model[12], "logits")):  # bmc W is [in, out], torch's weight [out, in]
            layer.weight.copy_(tensor(torch, params[f"{name}.W"].T))
            layer.bias.copy_(tensor(torch, params[f"{name}.b"]))
    return model


# bmc's LSTM stacks its gate blocks in ONNX order (i, o, f, c), torch in (i, f, g, o): torch block k is bmc block
# ONNX_TO_TORCH_GATES[k].
ONNX_TO_TORCH_GATES = (0, 2, 3, 1)


def torch_gates(a: np.ndarray) -> np.ndarray:
    blocks = np.split(a, 4, axis=0)
    return np.concatenate([blocks[k] for k in ONNX_TO_TORCH_GATES], axis=0)


def torch_lstm(torch, params: dict[str, np.ndarray]):
    """examples/lstm.bm in torch (nn.LSTM over the rows, last hidden state, Linear), starting from bmc's weights."""
    nn = torch.nn

    class LstmClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(28, HIDDEN, batch_first=True)
            self.fc = nn.Linear(HIDDEN, 10)

        def forward(self, x):
            _, (h, _) = self.lstm(x)
            return self.fc(h[-1])

    model = LstmClassifier()
    bias = params["state.B"]  # [Wb (4H), Rb (4H)]: torch's bias_ih and bias_hh
    with torch.no_grad():
        model.lstm.weight_ih_l0.copy_(tensor(torch, torch_gates(params["state.W"])))  # [4H, F]
        model.lstm.weight_hh_l0.copy_(tensor(torch, torch_gates(params["state.R"])))  # [4H, H]
        model.lstm.bias_ih_l0.copy_(tensor(torch, torch_gates(bias[:4 * HIDDEN])))
        model.lstm.bias_hh_l0.copy_(tensor(torch, torch_gates(bias[4 * HIDDEN:])))
        model.fc.weight.copy_(tensor(torch, params["logits.W"].T))
        model.fc.bias.copy_(tensor(torch, params["logits.b"]))
    return model


@dataclass
class Bench:
    name: str
    title: str
    model_file: Path
    build_torch: Callable  # (torch, params) -> the torch nn.Module, with bmc's initial weights
    shape: Callable[[np.ndarray], np.ndarray]  # [n, 28, 28] images -> the model's input


BENCHES = {
    "cnn": Bench("cnn", "cnn (conv 32, bn, pool, conv 64, bn, pool, dense 128, dropout 0.25, dense 10)",
                 REPO / "examples" / "cnn.bm", torch_cnn, lambda x: np.ascontiguousarray(x[:, None])),
    "lstm": Bench("lstm", "lstm (LSTM 128 over 28 rows of 28, last state, dense 10)",
                  REPO / "examples" / "lstm.bm", torch_lstm, lambda x: x),
}


def bench(torch, spec: Bench, steps: int, args, data) -> None:
    x_train, y_train, x_test, y_test = data
    n = len(x_train)
    full_steps = math.ceil(n / BATCH)
    steps = min(steps, full_steps)
    xtr, xte = spec.shape(x_train), spec.shape(x_test)

    model = bmc.compile(spec.model_file)
    params, state = model.init_params(args.seed)
    torch_runner = TorchRunner(torch, spec.build_torch(torch, params), xtr, y_train)  # copies the weights
    bmc_runner = BmcRunner(model, params, state, xtr, y_train, spec.name)  # trains `params` in place from here on
    calls = bmc_runner.numpy_calls(batch_order(args.seed, 0, n)[:BATCH])
    runners = [bmc_runner, torch_runner]

    # Same start: both compute the same function before training (inference mode: running batch-norm statistics).
    sample = xte[:512]
    start_diff = float(np.abs(bmc_runner.probs(sample) - torch_runner.probs(sample)).max())

    print(f"== {spec.title}")
    print(f"Fashion-MNIST ({n} train / {len(x_test)} test), input {list(xtr.shape[1:])}, batch {BATCH}, "
          f"Adam lr {LR:g} eps {EPS:g}; {steps} timed steps per run, {args.rounds} rounds, {args.warmup} warm-up "
          f"steps; same initial weights (max |probs bmc - torch| on 512 test images before training: "
          f"{start_diff:.1e}); {load_average()}")

    first = {r.name: r.run(batch_order(args.seed, 0, n), args.warmup)[1] for r in runners}
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    losses: dict[str, float] = {}
    for rnd in range(args.rounds):
        order = runners if rnd % 2 == 0 else runners[::-1]
        batches = batch_order(args.seed, rnd + 1, n)
        line = []
        for r in order:
            seconds, losses[r.name] = r.run(batches, steps)
            times[r.name].append(seconds)
            line.append(f"{r.name} {seconds:.3f} s")
        print(f"round {rnd + 1}/{args.rounds}: " + ", ".join(line))

    bmc_name, torch_name = bmc_runner.name, torch_runner.name
    med = {k: statistics.median(v) for k, v in times.items()}
    scale = full_steps / steps
    print()
    print(f"{'system':<12} {f'median s/{steps}':>13} {f'min s/{steps}':>11} {'ms/step':>8} "
          f"{f's/epoch ({full_steps})':>15} {'warm-up loss':>13} {'last loss':>10} {'test acc':>9}")
    for r in runners:
        acc = float((r.probs(xte).argmax(axis=1) == y_test).mean())
        print(f"{r.name:<12} {med[r.name]:>13.3f} {min(times[r.name]):>11.3f} {med[r.name] / steps * 1e3:>8.1f} "
              f"{med[r.name] * scale:>15.1f} {first[r.name]:>13.4f} {losses[r.name]:>10.4f} {acc:>9.4f}")
    ratio = med[bmc_name] / med[torch_name]
    verdict = "bmc faster" if ratio < 1 else "torch faster" if ratio > 1 else "tie"
    per_round = [b / t for b, t in zip(times[bmc_name], times[torch_name], strict=True)]
    note = f" (extrapolated from {steps} steps)" if steps != full_steps else ""
    print()
    print(f"{spec.name}: ratio bmc/torch {ratio:.2f} ({verdict}); per-round ratios: "
          + ", ".join(f"{q:.2f}" for q in per_round))
    print(f"{spec.name}: {bmc_name} makes {sum(calls.values()):,} NumPy calls per train step ({calls['np']:,} np "
          f"functions and ufuncs, {calls['methods']:,} array methods, {calls['operators']:,} array operators, "
          f"{calls['indexing']:,} array indexing): {med[bmc_name] / steps / sum(calls.values()) * 1e6:.1f} us per call")
    print(f"{spec.name}: per 60k-image epoch ({full_steps} steps){note}: {bmc_name} {med[bmc_name] * scale:.1f} s, "
          f"{torch_name} {med[torch_name] * scale:.1f} s; {load_average()}")
    print("(warm-up loss: mean over the warm-up steps; last loss: mean over the last round's timed steps; "
          "test acc: after all rounds)")
    print()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--cnn-steps", type=int, default=200, help="timed CNN steps per run (default 200)")
    ap.add_argument("--lstm-steps", type=int, default=200, help="timed LSTM steps per run (default 200)")
    ap.add_argument("--warmup", type=int, default=20, help="warm-up steps per system before timing (default 20)")
    ap.add_argument("--only", choices=sorted(BENCHES), help="run one model only")
    ap.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the batch orders")
    args = ap.parse_args(argv)
    if min(args.rounds, args.cnn_steps, args.lstm_steps, args.warmup) < 1:
        ap.error("--rounds, --cnn-steps, --lstm-steps and --warmup must be >= 1")

    torch = import_torch()
    data = load_data()
    print(f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
          f"bmc {bmc.__version__}; threads: torch {torch.get_num_threads()}, "
          f"OPENBLAS/OMP/MKL_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; {load_average()}")
    print()
    steps = {"cnn": args.cnn_steps, "lstm": args.lstm_steps}
    for name, spec in BENCHES.items():
        if args.only in (None, name):
            bench(torch, spec, steps[name], args, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
