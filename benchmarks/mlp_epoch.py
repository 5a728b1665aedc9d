"""One training epoch of the MLP (examples/mlp.bm) on Fashion-MNIST, on CPU with one thread: bmc's NumPy backend and
bmc's ONNX train step in onnxruntime against three anchors: a careful hand-written NumPy MLP (the NumPy reference),
PyTorch eager, and JAX (a `jax.jit` train step, and the whole epoch in one `jax.lax.scan`).

Every system trains the same model (Dense 128 relu, Dense 10, softmax cross-entropy, Adam lr 1e-3 eps 1e-7, batch 64)
from the same initial weights (bmc's `init_params(seed)`), on the same shuffled batches, with one thread each.
The runs are interleaved in one process: after a warm-up, each round runs one epoch of each system (the order
rotates), so machine noise hits all alike. Compare the ratios, not the absolute seconds across runs.

    python benchmarks/mlp_epoch.py                 # 3 rounds, full epochs (938 steps each)
    python benchmarks/mlp_epoch.py --steps 200     # quick check: time 200 steps per "epoch"
    python benchmarks/mlp_epoch.py --skip onnx --skip torch

torch and JAX are benchmark-only extras (`pip install -e '.[bench]'`); a system whose package is absent is skipped
with the install command. Fashion-MNIST: `apt-get install dataset-fashion-mnist`.
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
from common import REPO, import_jax, import_torch, load_average, numpy_calls

import bmc
import bmc.runtime

MODEL_FILE = REPO / "examples" / "mlp.bm"
BATCH = 64
LR = 1e-3
BETA1, BETA2, EPS = 0.9, 0.999, 1e-7  # bmc's Adam (torch's default eps is 1e-8)
LAYERS = (("h", 784, 128), ("logits", 128, 10))  # bmc's parameter names: {name}.W [in, out] and {name}.b [out]


def load_data():
    x_train, y_train, x_test, y_test = common.load_data()
    return flat(x_train), y_train, flat(x_test), y_test


def flat(x: np.ndarray) -> np.ndarray:
    """[n, 28, 28] images as the model's [n, 784] float32 input."""
    return np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The shuffled sample order of one epoch; epoch 0 is the warm-up. Every system gets the same orders."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batches(order: np.ndarray, steps: int):
    for step in range(steps):
        yield order[step * BATCH:(step + 1) * BATCH]


def copy_params(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in params.items()}


class BmcRunner:
    """bmc's generated NumPy module, driven like bmc/train/loop.py `fit` (gather, train_step, float(loss))."""

    name = "bmc numpy"

    def __init__(self, model, params, state, x, y):
        self.source = model.generate("numpy", train=True)
        self.module = bmc.runtime.load_source(self.source, "<bmc mlp benchmark>")
        self.params, self.state = copy_params(params), copy_params(state)  # train_step updates them in place
        self.x, self.y = x, y
        self.lr = np.float32(LR)

    def epoch(self, order: np.ndarray, steps: int) -> float:
        module, params, state, x, y, lr = self.module, self.params, self.state, self.x, self.y, self.lr
        total = 0.0
        for idx in batches(order, steps):
            total += float(module.train_step(params, state, {"image": x[idx], "label": y[idx]}, lr)["loss"]) * len(idx)
        return total

    def probs(self, x: np.ndarray) -> np.ndarray:
        return bmc.runtime.predict_batches(self.module, self.params, {"image": x})["probs"]

    def describe(self) -> str:
        params, state = copy_params(self.params), copy_params(self.state)  # a counting copy of the module steps
        batch = {"image": self.x[:BATCH], "label": self.y[:BATCH]}
        calls = numpy_calls(self.source, lambda m: m.train_step(params, state, batch, self.lr))
        return (f"bmc numpy: {sum(calls.values())} NumPy calls per train step ({calls['np']} np functions and ufuncs, "
                f"{calls['methods']} array methods, {calls['operators']} array operators, {calls['indexing']} array "
                f"indexing)")


class OnnxRunner:
    """bmc's exported train step in onnxruntime (`onnx_backend.Trainer`: parameters and Adam state stay in
    onnxruntime's memory), as `bmc train --backend onnxruntime --threads 1` runs it."""

    name = "bmc onnx"

    def __init__(self, model, params, state, x, y):
        from bmc.backends import onnx as onnx_backend

        self.proto = onnx_backend.train_step_model(model)
        self.trainer = onnx_backend.Trainer(self.proto, params, state, ["CPUExecutionProvider"])
        self.forward = bmc.runtime.load_source(model.generate("numpy", train=False), "<bmc mlp forward>")
        self.x, self.y = x, y
        self.lr = np.float32(LR)

    def epoch(self, order: np.ndarray, steps: int) -> float:
        trainer, x, y, lr = self.trainer, self.x, self.y, self.lr
        total = 0.0
        for idx in batches(order, steps):
            total += float(trainer.step({"image": x[idx], "label": y[idx]}, lr=lr)["loss"]) * len(idx)
        return total

    def probs(self, x: np.ndarray) -> np.ndarray:
        return bmc.runtime.predict_batches(self.forward, self.trainer.params(), {"image": x})["probs"]

    def describe(self) -> str:
        options = self.trainer.session.get_session_options()
        kinds: dict[str, int] = {}
        for node in self.proto.graph.node:
            kinds[node.op_type] = kinds.get(node.op_type, 0) + 1
        top = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
        return (f"bmc onnx: train step of {len(self.proto.graph.node)} nodes ({top}); session threads intra/inter "
                f"{options.intra_op_num_threads}/{options.inter_op_num_threads}, spinning "
                f"{options.get_session_config_entry('session.intra_op.allow_spinning')}, "
                f"{options.graph_optimization_level.name}")


class CarefulNumpy:
    """The NumPy reference: the MLP's step written by hand as NumPy's best case. Parameters, gradients and the two
    Adam moments are each one flat float32 buffer (the layers' W and b are views into it), every array op writes
    into a preallocated buffer (`out=`), the batch is gathered into a buffer, and Adam is 13 ufuncs over all
    101,770 parameters at once."""

    name = "careful numpy"

    def __init__(self, params, x, y):
        sizes = [size for _, i, o in LAYERS for size in (i * o, o)]
        total = sum(sizes)
        self.theta, self.grad, self.m, self.v, self.tmp = (np.zeros(total, np.float32) for _ in range(5))
        self.t = 0
        self.weights, self.grads = [], []
        offset = 0
        for name, i, o in LAYERS:
            views = []
            for buffer in (self.theta, self.grad):
                w = buffer[offset:offset + i * o].reshape(i, o)
                b = buffer[offset + i * o:offset + i * o + o]
                views.append((w, b))
            self.weights.append(views[0])
            self.grads.append(views[1])
            views[0][0][...] = params[f"{name}.W"]
            views[0][1][...] = params[f"{name}.b"]
            offset += i * o + o
        self.x, self.y = x, y
        full = {k: np.empty(s, np.float32) for k, s in
                (("x", (BATCH, 784)), ("h", (BATCH, 128)), ("dh", (BATCH, 128)), ("z", (BATCH, 10)),
                 ("zmax", (BATCH, 1)), ("sum", (BATCH, 1)))}
        full["mask"] = np.empty((BATCH, 128), np.bool_)
        self.full = full
        self.views: dict[int, dict[str, np.ndarray]] = {}  # per batch size: the buffers' leading rows

    def buffers(self, n: int) -> dict[str, np.ndarray]:
        if n not in self.views:
            self.views[n] = {k: v[:n] for k, v in self.full.items()} | {"rows": np.arange(n)}
        return self.views[n]

    def step(self, idx: np.ndarray) -> float:
        n = len(idx)
        buf = self.buffers(n)
        x, h, dh, z, zmax, zsum, mask, rows = (buf[k] for k in ("x", "h", "dh", "z", "zmax", "sum", "mask", "rows"))
        (w1, b1), (w2, b2) = self.weights
        (gw1, gb1), (gw2, gb2) = self.grads
        labels = self.y[idx]
        np.take(self.x, idx, axis=0, out=x)
        # forward: h = relu(x w1 + b1), z = h w2 + b2, softmax cross-entropy (log-sum-exp of the shifted logits)
        np.matmul(x, w1, out=h)
        np.add(h, b1, out=h)
        np.maximum(h, 0, out=h)
        np.matmul(h, w2, out=z)
        np.add(z, b2, out=z)
        np.max(z, axis=1, keepdims=True, out=zmax)
        np.subtract(z, zmax, out=z)
        picked = z[rows, labels]
        np.exp(z, out=z)
        np.sum(z, axis=1, keepdims=True, out=zsum)
        loss = float(np.log(zsum).sum() - picked.sum()) / n
        # backward: dz = (softmax - onehot) / n, in z's buffer
        np.multiply(zsum, n, out=zsum)
        np.divide(z, zsum, out=z)
        z[rows, labels] -= np.float32(1.0 / n)
        np.matmul(h.T, z, out=gw2)
        np.sum(z, axis=0, out=gb2)
        np.matmul(z, w2.T, out=dh)
        np.greater(h, 0, out=mask)
        np.multiply(dh, mask, out=dh)
        np.matmul(x.T, dh, out=gw1)
        np.sum(dh, axis=0, out=gb1)
        self.adam()
        return loss

    def adam(self) -> None:
        """m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2; p <- p - lr/c1 m / (sqrt(v / c2) + eps), as bmc."""
        g, m, v, tmp = self.grad, self.m, self.v, self.tmp
        self.t += 1
        c1, c2 = 1.0 - BETA1 ** self.t, 1.0 - BETA2 ** self.t  # in float64, as bmc and torch
        np.multiply(m, np.float32(BETA1), out=m)
        np.multiply(g, np.float32(1 - BETA1), out=tmp)
        np.add(m, tmp, out=m)
        np.multiply(v, np.float32(BETA2), out=v)
        np.multiply(g, g, out=tmp)
        np.multiply(tmp, np.float32(1 - BETA2), out=tmp)
        np.add(v, tmp, out=v)
        np.divide(v, np.float32(c2), out=tmp)
        np.sqrt(tmp, out=tmp)
        np.add(tmp, np.float32(EPS), out=tmp)
        np.divide(m, tmp, out=tmp)
        np.multiply(tmp, np.float32(LR / c1), out=tmp)
        np.subtract(self.theta, tmp, out=self.theta)

    def epoch(self, order: np.ndarray, steps: int) -> float:
        return sum(self.step(idx) * len(idx) for idx in batches(order, steps))

    def probs(self, x: np.ndarray) -> np.ndarray:
        (w1, b1), (w2, b2) = self.weights
        z = np.maximum(x @ w1 + b1, 0) @ w2 + b2
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


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
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR, eps=EPS)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)  # converted once, outside any timing

    def epoch(self, order: np.ndarray, steps: int) -> float:
        model, loss_fn, optimizer, x, y = self.model, self.loss_fn, self.optimizer, self.x, self.y
        model.train()
        total = 0.0
        for idx in batches(self.torch.from_numpy(order), steps):
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        return total

    def probs(self, x: np.ndarray) -> np.ndarray:
        self.model.eval()
        with self.torch.no_grad():
            return self.torch.softmax(self.model(self.torch.from_numpy(x)), dim=1).numpy()


class JaxRunner:
    """JAX on CPU (one thread): the step is `jax.value_and_grad` of the loss and the same Adam in jax.numpy, the
    data on the device once, the batch gathered inside the compiled step. `jit`: one compiled step per batch, driven
    like the others (`float(loss)` each step); `scan`: the epoch's full batches in one compiled `lax.scan` (the
    epoch's last, smaller batch by the jit step). Both are compiled ahead of time (`.lower().compile()`) and run once
    on copies of the state, so the warm-up does not decide which shapes are ready."""

    def __init__(self, jax, params, x, y, scan: bool):
        self.jax, self.jnp, self.scan = jax, jax.numpy, scan
        self.name = "jax scan" if scan else "jax jit"
        jnp = self.jnp
        self.p = {k: jnp.asarray(params[f"{name}.{k[0]}"]) for name, _, _ in LAYERS for k in (f"W{name}", f"b{name}")}
        self.m = {k: jnp.zeros_like(v) for k, v in self.p.items()}
        self.v = {k: jnp.zeros_like(v) for k, v in self.p.items()}
        self.t = jnp.zeros((), jnp.float32)
        self.x, self.y = jax.device_put(x), jax.device_put(y.astype(np.int32))
        self.lr = jnp.float32(LR)
        self.step_jit = jax.jit(self.step_fn, donate_argnums=(0, 1, 2))
        self.epoch_jit = jax.jit(self.epoch_fn, donate_argnums=(0, 1, 2))
        self.compiled: dict[tuple[str, int], object] = {}

    def loss_fn(self, p, xb, yb):
        jax, jnp = self.jax, self.jnp
        h = jax.nn.relu(xb @ p["Wh"] + p["bh"])
        z = h @ p["Wlogits"] + p["blogits"]
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, yb[:, None], axis=1)[:, 0])

    def step_fn(self, p, m, v, t, x, y, idx, lr):
        jax, jnp = self.jax, self.jnp
        loss, g = jax.value_and_grad(self.loss_fn)(p, x[idx], y[idx])
        t = t + 1
        c1, c2 = 1 - jnp.float32(BETA1) ** t, 1 - jnp.float32(BETA2) ** t
        m = {k: BETA1 * m[k] + (1 - BETA1) * g[k] for k in p}
        v = {k: BETA2 * v[k] + (1 - BETA2) * g[k] * g[k] for k in p}
        p = {k: p[k] - (lr / c1) * m[k] / (jnp.sqrt(v[k] / c2) + EPS) for k in p}
        return p, m, v, t, loss

    def epoch_fn(self, p, m, v, t, x, y, idxs, lr):
        def body(carry, idx):
            p, m, v, t, loss = self.step_fn(*carry, x, y, idx, lr)
            return (p, m, v, t), loss

        (p, m, v, t), losses = self.jax.lax.scan(body, (p, m, v, t), idxs)
        return p, m, v, t, losses

    def prepare(self, steps: int, n: int) -> None:
        """Compile every shape an epoch of `steps` steps over `n` samples uses, before anything is timed."""
        full, tail = divmod(min(steps * BATCH, n), BATCH)
        shapes = [("step", BATCH), ("step", tail)] if not self.scan else [("epoch", full), ("step", tail)]
        for kind, size in shapes:
            if size and (kind, size) not in self.compiled:
                fn = self.step_jit if kind == "step" else self.epoch_jit
                idx = np.zeros((size, BATCH) if kind == "epoch" else size, np.int32)
                run = fn.lower(self.p, self.m, self.v, self.t, self.x, self.y, idx, self.lr).compile()
                # one run on copies (the state is donated): an executable's first run is slower than the next ones
                copies = [self.jax.tree.map(self.jnp.copy, tree) for tree in (self.p, self.m, self.v)]
                self.jax.block_until_ready(run(*copies, self.t, self.x, self.y, idx, self.lr))
                self.compiled[kind, size] = run

    def epoch(self, order: np.ndarray, steps: int) -> float:
        self.prepare(steps, len(order))
        order = order[:steps * BATCH].astype(np.int32)
        total = 0.0
        if self.scan:
            full = len(order) // BATCH
            run = self.compiled["epoch", full]
            self.p, self.m, self.v, self.t, losses = run(self.p, self.m, self.v, self.t, self.x, self.y,
                                                         order[:full * BATCH].reshape(full, BATCH), self.lr)
            total = float(losses.sum()) * BATCH
            order = order[full * BATCH:]
        for idx in batches(order, math.ceil(len(order) / BATCH)):
            step = self.compiled["step", len(idx)]
            self.p, self.m, self.v, self.t, loss = step(self.p, self.m, self.v, self.t, self.x, self.y, idx, self.lr)
            total += float(loss) * len(idx)
        return total

    def probs(self, x: np.ndarray) -> np.ndarray:
        p = {k: np.asarray(v) for k, v in self.p.items()}
        z = np.maximum(x @ p["Wh"] + p["bh"], 0) @ p["Wlogits"] + p["blogits"]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def timed(runner, order: np.ndarray, steps: int) -> tuple[float, float, float]:
    """Seconds, process CPU seconds (all threads: about the seconds on one thread) and the mean loss of one epoch."""
    start, cpu = time.perf_counter(), time.process_time()
    total = runner.epoch(order, steps)
    seconds = time.perf_counter() - start
    return seconds, time.process_time() - cpu, total / min(steps * BATCH, len(order))


SYSTEMS = ("bmc", "onnx", "careful", "torch", "jit", "scan")


def make_runners(args, model, params, state, x, y) -> list:
    runners = [BmcRunner(model, params, state, x, y)]
    if "onnx" not in args.skip:
        runners.append(OnnxRunner(model, params, state, x, y))
    if "careful" not in args.skip:
        runners.append(CarefulNumpy(params, x, y))
    torch = import_torch(required=False) if "torch" not in args.skip else None
    if torch is not None:
        runners.append(TorchRunner(torch, params, x, y))
    jax = import_jax() if {"jit", "scan"} - set(args.skip) else None
    if jax is not None:
        runners += [JaxRunner(jax, params, x, y, scan) for scan, key in ((False, "jit"), (True, "scan"))
                    if key not in args.skip]
    return runners


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--epochs-per-round", type=int, default=1, help="epochs of each system per round (default 1)")
    ap.add_argument("--steps", type=int, default=None, help="time only N steps per epoch (quick check)")
    ap.add_argument("--warmup", type=int, default=300, help="warm-up steps per system before timing (default 300)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the batch orders")
    ap.add_argument("--skip", action="append", default=[], choices=SYSTEMS[1:], help="leave a system out")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.epochs_per_round < 1 or (args.steps is not None and args.steps < 1):
        ap.error("--rounds, --epochs-per-round and --steps must be >= 1")

    x_train, y_train, x_test, y_test = load_data()
    n = len(x_train)
    full_steps = math.ceil(n / BATCH)
    steps = full_steps if args.steps is None else min(args.steps, full_steps)
    warmup = min(args.warmup, full_steps)

    model = bmc.compile(MODEL_FILE)
    params, state = model.init_params(args.seed)
    runners = make_runners(args, model, params, state, x_train, y_train)
    versions = [f"python {platform.python_version()}", f"numpy {np.__version__}", f"bmc {bmc.__version__}"]
    for module in ("torch", "jax", "onnxruntime"):
        if module in sys.modules:
            versions.append(f"{module} {sys.modules[module].__version__}")

    print(f"mlp 784-128-10 on Fashion-MNIST ({n} train / {len(x_test)} test), batch {BATCH}, Adam lr {LR:g} eps "
          f"{EPS:g}; {steps} steps per epoch{'' if steps == full_steps else f' (of {full_steps}: --steps)'}, "
          f"{args.rounds} rounds x {args.epochs_per_round} epoch(s), {warmup} warm-up steps")
    print(f"{', '.join(versions)}; OPENBLAS/OMP/MKL_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; {load_average()}")
    for r in runners:
        if hasattr(r, "describe"):
            print(r.describe())

    for r in runners:
        if hasattr(r, "prepare"):
            r.prepare(steps, n)
        r.epoch(epoch_order(args.seed, 0, n), warmup)

    times: dict[str, list[float]] = {r.name: [] for r in runners}
    cpu: dict[str, list[float]] = {r.name: [] for r in runners}
    losses: dict[str, float] = {}
    epoch = 0
    for rnd in range(args.rounds):
        shift = rnd % len(runners)
        order = runners[shift:] + runners[:shift]  # each system goes first in turn
        line = []
        for k in range(args.epochs_per_round):
            shuffled = epoch_order(args.seed, epoch + k + 1, n)
            for r in order:
                seconds, cpu_seconds, losses[r.name] = timed(r, shuffled, steps)
                times[r.name].append(seconds)
                cpu[r.name].append(cpu_seconds)
                line.append(f"{r.name} {seconds:.3f} s")
        epoch += args.epochs_per_round
        print(f"round {rnd + 1}/{args.rounds}: " + ", ".join(line) + f"; {load_average()}")

    med = {k: statistics.median(v) for k, v in times.items()}
    scale = full_steps / steps  # seconds per full epoch when only --steps were timed
    print()
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"{'system':<14} {'median s/epoch':>15} {'min s/epoch':>12} {'cpu s/epoch':>12} {'steps/s':>9} "
          f"{'cpu/wall':>9} {'last loss':>10} {'test acc':>9}")
    for r in runners:
        probs = r.probs(x_test)
        acc = float((probs.argmax(axis=1) == y_test).mean())
        print(f"{r.name:<14} {med[r.name] * scale:>15.3f} {min(times[r.name]) * scale:>12.3f} "
              f"{med_cpu[r.name] * scale:>12.3f} {steps / med[r.name]:>9,.0f} "
              f"{sum(cpu[r.name]) / sum(times[r.name]):>9.2f} {losses[r.name]:>10.4f} {acc:>9.4f}")
    note = " (extrapolated from --steps)" if steps != full_steps else ""
    print(f"(cpu s/epoch: the median process CPU seconds of an epoch; cpu/wall: CPU seconds per second of the timed "
          f"epochs, 1.0 on one thread, below 1 when the process waited for a CPU on a busy machine, where the CPU-time "
          f"ratios are the steadier ones; last loss: the last epoch's mean; test acc: after all rounds){note}")
    print()
    base = runners[0].name
    pairs = [(base, other) for other in ("jax jit", "careful numpy", "torch eager", "jax scan")] + [("bmc onnx", base)]
    for a, b in pairs:
        if a in med and b in med:
            per_round = ", ".join(f"{p / q:.2f}" for p, q in zip(times[a], times[b], strict=True))
            print(f"ratio {a}/{b}: {med[a] / med[b]:.2f} (below 1: {a} faster); per round: {per_round}; "
                  f"CPU time {med_cpu[a] / med_cpu[b]:.2f}")
    print(load_average())
    return 0


if __name__ == "__main__":
    sys.exit(main())
