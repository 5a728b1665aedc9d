"""bmc's ONNX export vs torch.onnx.export, both run in onnxruntime on CPU, and bmc's ONNX train step vs its NumPy one.

1. Inference of the MLP (examples/mlp.bm) and the CNN (examples/cnn.bm): bmc's `inference_model` and the same model
   in PyTorch (bmc's weights copied in, eval mode, a final Softmax) exported with `torch.onnx.export`. It prints both
   graphs (nodes, op types, attribute differences, and what onnxruntime's optimizer makes of each), checks that they
   compute the same probabilities, then times them in onnxruntime (CPU provider, one intra-op and one inter-op thread,
   ORT_ENABLE_ALL): latency at batch 1 (median of many runs) and throughput at batch 1024 (images/s).
2. The MLP's training step at batch 64: bmc's exported train step run by `onnx_backend.Trainer` (parameters and Adam
   state kept in onnxruntime's memory, one thread) vs bmc's NumPy backend `train_step`, on the same batches.

Everything is interleaved in one process: each round runs every system once (which goes first alternates), so
machine noise hits both alike. Compare the ratios, not absolute times across runs.

    python benchmarks/onnx_models.py                 # all three, 5 rounds (~1-2 min)
    python benchmarks/onnx_models.py --only cnn --rounds 9

Needs torch (not a bmc dependency): `pip install torch==2.13.0`, and Fashion-MNIST:
`apt-get install dataset-fashion-mnist`.
"""

from __future__ import annotations

import common  # noqa: F401 - first: one BLAS thread and this checkout on the path, before NumPy loads

# isort: split

import argparse
import io
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from bmc.backends import onnx as onnx_backend
from common import REPO, import_torch, load_average, load_data, tensor
from onnx import helper

import bmc
import bmc.runtime

CPU = ["CPUExecutionProvider"]
THROUGHPUT_BATCH = 1024
TRAIN_BATCH = 64
LR = np.float32(1e-3)
TOLERANCE = 0.10  # the goal: bmc's exported models within 10% of torch's


def session_options(optimized_path: str | None = None) -> ort.SessionOptions:
    """onnxruntime's settings for every session here: one intra-op and one inter-op thread, all graph optimizations."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if optimized_path is not None:
        options.optimized_model_filepath = optimized_path
    return options


# ---------------------------------------------------------------------------------------------------- the models


def copy_dense(torch, layer, params: dict[str, np.ndarray], name: str) -> None:
    """bmc's dense W is [in, out], torch's Linear weight [out, in]."""
    layer.weight.copy_(tensor(torch, params[f"{name}.W"].T))
    layer.bias.copy_(tensor(torch, params[f"{name}.b"]))


def torch_mlp(torch, params: dict[str, np.ndarray]):
    nn = torch.nn
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10), nn.Softmax(dim=1))
    with torch.no_grad():
        copy_dense(torch, model[0], params, "h")
        copy_dense(torch, model[2], params, "logits")
    return model.eval()


def torch_cnn(torch, params: dict[str, np.ndarray]):
    """examples/cnn.bm in torch (as in cnn_lstm.py), bmc's weights copied in; eval mode: running batch-norm
    statistics, dropout the identity."""
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.BatchNorm2d(32, eps=1e-5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64, eps=1e-5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10), nn.Softmax(dim=1))
    with torch.no_grad():
        for conv, bn, name in ((model[0], model[1], "c1"), (model[4], model[5], "c2")):
            conv.weight.copy_(tensor(torch, params[f"{name}.conv2d.W"]))  # [O, C, kh, kw] in both
            conv.bias.copy_(tensor(torch, params[f"{name}.conv2d.b"]))
            bn.weight.copy_(tensor(torch, params[f"{name}.batch_norm.gamma"]))
            bn.bias.copy_(tensor(torch, params[f"{name}.batch_norm.beta"]))
            bn.running_mean.copy_(tensor(torch, params[f"{name}.batch_norm.running_mean"]))
            bn.running_var.copy_(tensor(torch, params[f"{name}.batch_norm.running_var"]))
        copy_dense(torch, model[9], params, "h")
        copy_dense(torch, model[12], params, "logits")
    return model.eval()


def trained_like_batch_norm(params: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Fresh batch norms (gamma 1, beta 0, running mean 0, variance 1) fold into a convolution almost unchanged, which
    would not test the folding: give them trained-looking values (the same in both exports)."""
    rng = np.random.default_rng([seed, 12345])
    out = dict(params)
    for k, v in params.items():
        if ".batch_norm." not in k:
            continue
        kind = k.rsplit(".", 1)[1]
        new = {"gamma": lambda n: rng.uniform(0.5, 1.5, n), "beta": lambda n: rng.normal(0.0, 0.2, n),
               "running_mean": lambda n: rng.normal(0.0, 0.3, n),
               "running_var": lambda n: rng.uniform(0.3, 2.0, n)}[kind](v.shape)
        out[k] = new.astype(v.dtype)
    return out


@dataclass
class Spec:
    name: str
    title: str
    model_file: Path
    build_torch: Callable  # (torch, params) -> the torch nn.Module in eval mode, with bmc's weights
    shape: Callable[[np.ndarray], np.ndarray]  # [n, 28, 28] images -> the model's input
    latency_runs: int  # batch-1 runs per system, over all rounds
    throughput_runs: int  # batch-1024 runs per system per round


SPECS = {
    "mlp": Spec("mlp", "mlp: examples/mlp.bm (Dense 784->128 relu, Dense 10, softmax)", REPO / "examples" / "mlp.bm",
                torch_mlp, lambda x: np.ascontiguousarray(x.reshape(len(x), -1)), 2000, 20),
    "cnn": Spec("cnn", "cnn: examples/cnn.bm (Conv 32 3x3, BN, ReLU, MaxPool 2, Conv 64 3x3, BN, ReLU, MaxPool 2, "
                "Flatten, Dense 128, ReLU, Dropout 0.25, Dense 10, softmax)", REPO / "examples" / "cnn.bm",
                torch_cnn, lambda x: np.ascontiguousarray(x[:, None]), 500, 3),
}


def torch_export(torch, model, example: np.ndarray) -> tuple[onnx.ModelProto, str]:
    """`torch.onnx.export` with a dynamic batch axis: the default (dynamo) exporter at opset 21 when its extra
    packages (onnxscript) are installed, else the legacy TorchScript exporter at its default opset (it supports at
    most 20)."""
    f = io.BytesIO()
    names = {"input_names": ["image"], "output_names": ["probs"]}
    x = torch.from_numpy(example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import onnxscript  # noqa: F401
        except ImportError:
            torch.onnx.export(model, (x,), f, **names, dynamic_axes={"image": {0: "N"}, "probs": {0: "N"}},
                              dynamo=False)
            how = "TorchScript exporter (dynamo=False; the dynamo one needs onnxscript), its default opset"
        else:
            batch = torch.export.Dim("N")
            program = torch.onnx.export(model, (x,), **names, dynamic_shapes=({0: batch},), opset_version=21,
                                        dynamo=True, verbose=False)
            program.save(f)
            how = "dynamo exporter, opset 21"
    proto = onnx.load_from_string(f.getvalue())
    return proto, f"{how}; got opset {opset(proto)}"


# ------------------------------------------------------------------------------------------------ graph reports


def opset(proto: onnx.ModelProto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


ATTR_DEFAULTS = {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0, "group": 1, "ceil_mode": 0, "storage_order": 0,
                 "dilations": [1, 1], "auto_pad": b"NOTSET"}


def attributes(node: onnx.NodeProto) -> dict:
    """A node's attributes, leaving out those set to ONNX's default (torch writes them, bmc mostly does not)."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return {k: v for k, v in attrs.items() if not (k in ATTR_DEFAULTS and v == ATTR_DEFAULTS[k])}


def op_name(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def describe(proto: onnx.ModelProto) -> str:
    g = proto.graph
    values = sum(math.prod(t.dims) for t in g.initializer)
    consts = sum(n.op_type == "Constant" for n in g.node)
    return (f"{len(g.node)} nodes: {', '.join(op_name(n) for n in g.node)}; {len(g.initializer)} initializers "
            f"({values:,} values), {consts} Constant nodes, {len(proto.SerializeToString()):,} bytes")


def graph_differences(a: onnx.ModelProto, b: onnx.ModelProto) -> list[str]:
    """Node by node (op types, then non-default attributes); the input/output shapes too."""
    na, nb = list(a.graph.node), list(b.graph.node)
    if [n.op_type for n in na] != [n.op_type for n in nb]:
        return [f"op sequences differ: bmc {[n.op_type for n in na]} vs torch {[n.op_type for n in nb]}"]
    diffs = []
    for i, (x, y) in enumerate(zip(na, nb, strict=True)):
        ax, ay = attributes(x), attributes(y)
        if ax != ay:
            keys = sorted(set(ax) | set(ay))
            diffs.append(f"node {i} {x.op_type}: " + ", ".join(f"{k} bmc {ax.get(k, '-')} / torch {ay.get(k, '-')}"
                                                                 for k in keys if ax.get(k) != ay.get(k)))
    for kind in ("input", "output"):
        sa = [shape(v) for v in getattr(a.graph, kind)]
        sb = [shape(v) for v in getattr(b.graph, kind)]
        if sa != sb:
            diffs.append(f"{kind}s: bmc {sa} / torch {sb}")
    return diffs


def shape(v: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]


def optimized_graph(proto: onnx.ModelProto) -> str:
    """The op types onnxruntime runs after its ORT_ENABLE_ALL optimizations on the CPU provider."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(proto.SerializeToString(), session_options(path), providers=CPU)
        optimized = onnx.load(path)
    return f"{len(optimized.graph.node)} nodes: {', '.join(op_name(n) for n in optimized.graph.node)}"


# -------------------------------------------------------------------------------------------------- inference


def timed_runs(session: ort.InferenceSession, feed: dict, n: int) -> list[float]:
    run, outputs, clock = session.run, ["probs"], time.perf_counter
    times = []
    for _ in range(n):
        start = clock()
        run(outputs, feed)
        times.append(clock() - start)
    return times


def percent(a: float, b: float) -> str:
    return f"{100 * a / b:.1f}%"


def within(latency_ratio: float, throughput_ratio: float) -> str:
    ok = latency_ratio <= 1 + TOLERANCE and throughput_ratio >= 1 - TOLERANCE
    return "yes" if ok else "NO"


def bench_inference(torch, spec: Spec, args, x_test: np.ndarray, y_test: np.ndarray) -> None:
    model = bmc.compile(spec.model_file)
    params, _ = model.init_params(args.seed)
    params = trained_like_batch_norm(params, args.seed)  # the CNN's; the MLP has none
    x = spec.shape(x_test)

    bmc_proto = onnx_backend.inference_model(model, params)
    onnx_backend.check(bmc_proto)
    torch_proto, how = torch_export(torch, spec.build_torch(torch, params), x[:1])
    onnx.checker.check_model(torch_proto)
    protos = {"bmc": bmc_proto, "torch": torch_proto}

    print(f"== {spec.title}")
    print(f"bmc   onnx (onnx_backend.inference_model, opset {opset(bmc_proto)}): {describe(bmc_proto)}")
    print(f"torch onnx (torch.onnx.export, {how}): {describe(torch_proto)}")
    diffs = graph_differences(bmc_proto, torch_proto)
    print("differences (non-default attributes): " + ("; ".join(diffs) if diffs else "none"))
    for name, proto in protos.items():
        print(f"{name:<5} after onnxruntime's ORT_ENABLE_ALL (CPU): {optimized_graph(proto)}")

    sessions = {k: ort.InferenceSession(p.SerializeToString(), session_options(), providers=CPU)
                for k, p in protos.items()}
    threads = {k: s.get_session_options().intra_op_num_threads for k, s in sessions.items()}

    # Same outputs on the same inputs (1024 test images, in one batch and one image at a time for a few).
    big = x[:THROUGHPUT_BATCH]
    out = {k: s.run(["probs"], {"image": big})[0] for k, s in sessions.items()}
    diff = float(np.abs(out["bmc"] - out["torch"]).max())
    agree = int((out["bmc"].argmax(1) == out["torch"].argmax(1)).sum())
    single = max(float(np.abs(sessions["bmc"].run(["probs"], {"image": x[i:i + 1]})[0]
                              - sessions["torch"].run(["probs"], {"image": x[i:i + 1]})[0]).max()) for i in range(16))
    acc = {k: float((o.argmax(1) == y_test[:len(big)]).mean()) for k, o in out.items()}
    print(f"same outputs: max |probs bmc - torch| on {len(big)} test images {diff:.1e} (batch 1, 16 images: "
          f"{single:.1e}); argmax agrees on {agree}/{len(big)}; accuracy (untrained) bmc {acc['bmc']:.4f}, "
          f"torch {acc['torch']:.4f}")

    per_round = max(1, math.ceil(spec.latency_runs / args.rounds))
    print(f"onnxruntime {ort.__version__}, CPU provider, intra/inter-op threads {threads['bmc']}/1 (bmc) "
          f"{threads['torch']}/1 (torch), ORT_ENABLE_ALL; {args.rounds} rounds: {per_round} batch-1 runs and "
          f"{spec.throughput_runs} batch-{THROUGHPUT_BATCH} runs per system per round; {load_average()}")

    one, batch = {"image": x[:1]}, {"image": big}
    for s in sessions.values():  # warm-up
        timed_runs(s, one, 200)
        timed_runs(s, batch, 2)

    names = list(sessions)
    lat: dict[str, list[float]] = {k: [] for k in names}
    thr: dict[str, list[float]] = {k: [] for k in names}
    round_lat: dict[str, list[float]] = {k: [] for k in names}
    round_thr: dict[str, list[float]] = {k: [] for k in names}
    for rnd in range(args.rounds):
        order = names if rnd % 2 == 0 else names[::-1]
        for k in order:
            t = timed_runs(sessions[k], one, per_round)
            lat[k] += t
            round_lat[k].append(statistics.median(t))
        for k in order:
            t = timed_runs(sessions[k], batch, spec.throughput_runs)
            thr[k] += t
            round_thr[k].append(THROUGHPUT_BATCH / statistics.median(t))
        print(f"round {rnd + 1}/{args.rounds}: batch 1 median " +
              ", ".join(f"{k} {round_lat[k][-1] * 1e6:.1f} us" for k in order) + f"; batch {THROUGHPUT_BATCH} " +
              ", ".join(f"{k} {round_thr[k][-1]:,.0f} img/s" for k in order))

    print()
    print(f"{'system':<6} {'batch-1 median us':>18} {'p10 us':>8} {'p90 us':>8} {'runs':>6} "
          f"{f'batch-{THROUGHPUT_BATCH} img/s':>17} {'median ms':>10} {'runs':>5}")
    med_lat, med_thr = {}, {}
    for k in names:
        q = np.quantile(lat[k], [0.1, 0.9])
        med_lat[k] = statistics.median(lat[k])
        med_thr[k] = THROUGHPUT_BATCH / statistics.median(thr[k])
        print(f"{k:<6} {med_lat[k] * 1e6:>18.1f} {q[0] * 1e6:>8.1f} {q[1] * 1e6:>8.1f} {len(lat[k]):>6} "
              f"{med_thr[k]:>17,.0f} {statistics.median(thr[k]) * 1e3:>10.2f} {len(thr[k]):>5}")
    lat_ratio = med_lat["bmc"] / med_lat["torch"]
    thr_ratio = med_thr["bmc"] / med_thr["torch"]
    print()
    print(f"{spec.name}: bmc latency (batch 1) is {percent(med_lat['bmc'], med_lat['torch'])} of torch's "
          f"(below 100%: bmc faster); per round: "
          + ", ".join(percent(b, t) for b, t in zip(round_lat["bmc"], round_lat["torch"], strict=True)))
    print(f"{spec.name}: bmc throughput (batch {THROUGHPUT_BATCH}) is {percent(med_thr['bmc'], med_thr['torch'])} of "
          f"torch's (above 100%: bmc faster); per round: "
          + ", ".join(percent(b, t) for b, t in zip(round_thr["bmc"], round_thr["torch"], strict=True)))
    print(f"{spec.name}: within 10% of torch (latency <= 110%, throughput >= 90%): "
          f"{within(lat_ratio, thr_ratio)}; {load_average()}")
    print()


# ------------------------------------------------------------------------------------------------- train step


def batch_order(seed: int, run: int, n: int) -> np.ndarray:
    """The shuffled sample order of one timed run; run 0 is the warm-up. Both systems get the same orders."""
    return np.random.default_rng([seed, run]).permutation(n)


class NumpyTrain:
    name = "bmc numpy"

    def __init__(self, model, params, state):
        self.module = bmc.runtime.load_source(model.generate("numpy", train=True), "<bmc onnx_models benchmark>")
        # train_step updates params and state in place: its own copies
        self.params = {k: v.copy() for k, v in params.items()}
        self.state = {k: v.copy() for k, v in state.items()}

    def step(self, batch: dict) -> float:
        return float(self.module.train_step(self.params, self.state, batch, LR)["loss"])

    def current(self) -> dict[str, np.ndarray]:
        return self.params


class OrtTrain:
    name = "bmc onnx/ort"

    def __init__(self, model, params, state):
        self.proto = onnx_backend.train_step_model(model)
        self.trainer = onnx_backend.Trainer(self.proto, params, state, CPU)

    def step(self, batch: dict) -> float:
        return float(self.trainer.step(batch, lr=LR)["loss"])

    def current(self) -> dict[str, np.ndarray]:
        return self.trainer.params()


def run_steps(system, x: np.ndarray, y: np.ndarray, order: np.ndarray, steps: int) -> tuple[float, list[float]]:
    losses = []
    start = time.perf_counter()
    for s in range(steps):
        idx = order[s * TRAIN_BATCH:(s + 1) * TRAIN_BATCH]
        losses.append(system.step({"image": x[idx], "label": y[idx]}))
    return time.perf_counter() - start, losses


def bench_train(args, data) -> None:
    x_train, y_train, x_test, y_test = data
    x_train, x_test = SPECS["mlp"].shape(x_train), SPECS["mlp"].shape(x_test)
    n = len(x_train)
    steps = min(args.train_steps, n // TRAIN_BATCH)
    model = bmc.compile(SPECS["mlp"].model_file)
    params, state = model.init_params(args.seed)
    systems = [NumpyTrain(model, params, state), OrtTrain(model, params, state)]
    opts = systems[1].trainer.session.get_session_options()  # the backend's own: OMP_NUM_THREADS (1 here) threads
    kinds: dict[str, int] = {}
    for node in systems[1].proto.graph.node:
        kinds[node.op_type] = kinds.get(node.op_type, 0) + 1
    print("== mlp train step: examples/mlp.bm, Adam lr 1e-3, batch 64, Fashion-MNIST: bmc's exported train step in "
          "onnxruntime (onnx_backend.Trainer) vs bmc's NumPy backend train_step")
    print(f"same initial params (init_params({args.seed})) and batches; Trainer session: "
          f"{systems[1].trainer.device}, intra/inter-op threads {opts.intra_op_num_threads}/"
          f"{opts.inter_op_num_threads}, spinning {opts.get_session_config_entry('session.intra_op.allow_spinning')}, "
          f"{opts.graph_optimization_level.name}; {args.warmup} warm-up steps, {args.rounds} rounds x {steps} steps; "
          f"{load_average()}")
    print(f"train step graph: {len(systems[1].proto.graph.node)} nodes ("
          + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])) + ")")

    warm = [run_steps(s, x_train, y_train, batch_order(args.seed, 0, n), args.warmup)[1] for s in systems]
    early = max(abs(p - q) for p, q in zip(*warm, strict=True))
    times: dict[str, list[float]] = {s.name: [] for s in systems}
    last: dict[str, list[float]] = {}
    for rnd in range(args.rounds):
        order = systems if rnd % 2 == 0 else systems[::-1]
        batches = batch_order(args.seed, rnd + 1, n)
        for s in order:
            seconds, last[s.name] = run_steps(s, x_train, y_train, batches, steps)
            times[s.name].append(seconds)
        print(f"round {rnd + 1}/{args.rounds}: " + ", ".join(
            f"{s.name} {times[s.name][-1] / steps * 1e3:.3f} ms/step (mean loss {np.mean(last[s.name]):.4f})"
            for s in order))

    forward = systems[0].module
    print()
    print(f"{'system':<13} {'median ms/step':>15} {'min ms/step':>12} {'last-round loss':>16} {'final-step loss':>16} "
          f"{'test acc':>9}")
    med = {}
    finals = {}
    for s in systems:
        med[s.name] = statistics.median(times[s.name]) / steps
        finals[s.name] = s.current()
        probs = bmc.runtime.predict_batches(forward, finals[s.name], {"image": x_test})["probs"]
        acc = float((probs.argmax(1) == y_test).mean())
        print(f"{s.name:<13} {med[s.name] * 1e3:>15.3f} {min(times[s.name]) / steps * 1e3:>12.3f} "
              f"{np.mean(last[s.name]):>16.6f} {last[s.name][-1]:>16.6f} {acc:>9.4f}")
    a, b = systems[1].name, systems[0].name
    pdiff = max(float(np.abs(finals[a][k] - finals[b][k]).max()) for k in finals[b])
    ldiff = max(abs(p - q) for p, q in zip(last[a], last[b], strict=True))
    total = args.warmup + args.rounds * steps
    print()
    print(f"train: {a} {med[a] * 1e3:.3f} ms/step, {b} {med[b] * 1e3:.3f} ms/step: onnx/numpy ratio "
          f"{med[a] / med[b]:.2f} (below 1: onnxruntime faster); per round: "
          + ", ".join(f"{p / q:.2f}" for p, q in zip(times[a], times[b], strict=True)))
    print(f"train: max |loss onnx - numpy| over the {args.warmup} warm-up steps {early:.1e}; after {total} steps each, "
          f"over the last round's steps {ldiff:.1e}, max |params onnx - numpy| {pdiff:.1e} (float32 rounding, "
          f"amplified where Adam divides a gradient near its eps 1e-7 by itself, and growing with the steps)")
    print(f"train: {load_average()}")
    print()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    ap.add_argument("--only", choices=["mlp", "cnn", "train"], help="run one part only")
    ap.add_argument("--train-steps", type=int, default=200, help="timed train steps per system per round (200)")
    ap.add_argument("--warmup", type=int, default=50, help="warm-up train steps per system (default 50)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the batch orders")
    args = ap.parse_args(argv)
    if min(args.rounds, args.train_steps, args.warmup) < 1:
        ap.error("--rounds, --train-steps and --warmup must be >= 1")

    torch = import_torch()
    data = load_data()
    print(f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
          f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, bmc {bmc.__version__}; threads: torch "
          f"{torch.get_num_threads()}, OPENBLAS/OMP/MKL_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; "
          f"{load_average()}")
    print()
    for name, spec in SPECS.items():
        if args.only in (None, name):
            bench_inference(torch, spec, args, data[2], data[3])
    if args.only in (None, "train"):
        bench_train(args, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
