"""The CUDA backend on a real GPU, in one run: compile the generated model.cu files with nvcc, check them against
bmc's NumPy backend, and time them against cuBLAS and PyTorch CUDA eager.

    python benchmarks/gpu_check.py --prepare     # where bmc is installed (needs lark): writes build/gpu_bundle
    python benchmarks/gpu_check.py               # on the GPU machine: compile, check, time; prints a report

The GPU machine needs nvcc, NumPy and PyTorch (CUDA build); not lark, not bmc's other dependencies, no network: the
bundle holds each case's model.cu and manifest, initial parameters and the NumPy backend's generated train step
(model.py, NumPy only) as the reference, and this script loads backends/cuda/nvcc.py and runtime.py by path. Where
the bundle is missing but bmc imports, it is prepared first, so one call does everything.

Cases:
* matmul: a graph with one `matmul` (M, K, P symbolic): our tiled GEMM against torch.matmul (cuBLAS) at 4096^3
  f32 (TF32 off in torch, as our kernels are plain FP32), and a ragged 1000 x 777 x 1029 product against NumPy;
* mlp (examples/mlp.bm): the train step (forward, backward, Adam) at batch 64 and 4096;
* cnn (examples/cnn.bm): the train step at batch 256 (conv, batch norm, max pool, dropout, Adam).
Checks: several train steps from the same parameters against the NumPy reference (loss and parameters; dropout masks
are defined exactly, so they agree). Timing: interleaved rounds of N steps per system; each step reads a
contiguous device-resident batch and returns the loss to the host (`float(loss)`, `loss.item()`), as a training
loop does. Without a CUDA device it compiles, says so and exits 0 (nothing to time).
Writes the results as JSON to --json (default: BUNDLE/results.json, and $OUT/gpu_check.json when $OUT is set).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "build" / "gpu_bundle"
CASES = ("matmul", "mlp", "cnn")
MATMUL_IR = """graph matmul(input %a: f32[M, K], input %b: f32[K, P]) {
  %c: f32[M, P] = matmul(%a, %b, transpose_a=false, transpose_b=false)
  return c = %c
}"""


# ---- preparing the bundle (needs bmc) ----------------------------------------------------------------------------


def prepare(bundle: Path) -> None:
    sys.path.insert(0, str(REPO))
    from bmc.backends import cuda
    from bmc.backends.cuda import build as cuda_build

    import bmc
    from bmc.ir.parse import parse_graph

    bundle.mkdir(parents=True, exist_ok=True)
    graph = parse_graph(MATMUL_IR)
    _write_case(bundle / "matmul", cuda.generate("matmul", "<ir>", "", {"run": graph}), {}, {}, None)
    for name in ("mlp", "cnn"):
        model = bmc.compile(REPO / "examples" / f"{name}.bm")
        params, state = model.init_params(0)
        _write_case(bundle / name, cuda_build.program(model), params, state, model.generate("numpy", train=True))
    (bundle / "bundle.json").write_text(json.dumps({"bmc_version": bmc.__version__, "cases": list(CASES),
                                                    "created": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1))
    print(f"wrote {bundle}")


def _write_case(path: Path, program, params: dict, state: dict, reference: str | None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.cu").write_text(program.source, encoding="utf-8")
    (path / "manifest.json").write_text(json.dumps(program.manifest, indent=1), encoding="utf-8")
    np.savez(path / "params.npz", **params)
    np.savez(path / "state.npz", **state)
    if reference is not None:
        (path / "reference.py").write_text(reference, encoding="utf-8")


# ---- loading without bmc --------------------------------------------------------------------------------------------


def load_by_path(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"bmc_cuda_{name}", REPO / "backends" / "cuda" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


def load_reference(path: Path) -> types.ModuleType:
    module = types.ModuleType(f"reference_{path.parent.name}")
    module.__file__ = str(path)
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)
    return module


def npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


# ---- timing ---------------------------------------------------------------------------------------------------------


def interleaved(systems: dict, rounds: int) -> dict[str, list[float]]:
    """Each round runs every system once (the first one alternates); returns seconds per round per system."""
    times: dict[str, list[float]] = {k: [] for k in systems}
    names = list(systems)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(systems[name]())
    return times


def summary(times: dict[str, list[float]], per: int, unit: str = "ms/step") -> dict:
    out = {k: {"median_s": statistics.median(v), "min_s": min(v), f"median_{unit}": 1e3 * statistics.median(v) / per}
           for k, v in times.items()}
    names = list(times)
    if len(names) == 2:
        out["ratio"] = statistics.median(times[names[0]]) / statistics.median(times[names[1]])
    return out


# ---- the cases ----------------------------------------------------------------------------------------------------


def check_matmul(lib, torch, rounds: int) -> dict:
    s = lib.session()
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1000, 777), np.float32), rng.standard_normal((777, 1029), np.float32)
    got = s.run("run", {"a": a, "b": b})["c"]
    want = a.astype(np.float64) @ b
    result = {"ragged_max_rel_err": float(np.abs(got - want).max() / np.abs(want).max())}
    if torch is None:
        return result
    n = 4096
    at, bt = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
    ours, theirs = torch.empty(n, n, device="cuda"), torch.empty(n, n, device="cuda")
    torch.cuda.synchronize()
    s.run("run", {"a": at, "b": bt}, out={"c": ours})
    torch.matmul(at, bt, out=theirs)
    torch.cuda.synchronize()
    result["4096_max_rel_err_vs_cublas"] = float((ours - theirs).abs().max() / theirs.abs().max())
    calls = 20

    def bmc_run():
        start = time.perf_counter()
        for _ in range(calls):
            s.run("run", {"a": at, "b": bt}, out={"c": ours})
        return time.perf_counter() - start

    def cublas_run():
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            torch.matmul(at, bt, out=theirs)
        torch.cuda.synchronize()
        return time.perf_counter() - start

    bmc_run(), cublas_run()  # warm-up
    times = interleaved({"bmc": bmc_run, "cublas": cublas_run}, rounds)
    result["timing"] = summary(times, calls, "ms/call")
    flops = 2 * n ** 3
    for k in ("bmc", "cublas"):
        result["timing"][k]["tflops"] = flops / (result["timing"][k]["median_ms/call"] * 1e-3) / 1e12
    return result


def check_train(name: str, case: Path, lib, torch, batches: list[int], rounds: int, steps: int) -> dict:
    reference = load_reference(case / "reference.py")
    params0, state0 = npz(case / "params.npz"), npz(case / "state.npz")
    s = lib.session()
    image_shape = {"mlp": (784,), "cnn": (1, 28, 28)}[name]
    result = {}
    for batch in batches:
        rng = np.random.default_rng(batch)
        params = {k: v.copy() for k, v in params0.items()}
        state = {k: v.copy() for k, v in state0.items()}
        s.load(params, state)
        losses = []
        for step in range(3):  # checks against the NumPy backend, from the same parameters and batches
            x = rng.random((batch, *image_shape), np.float32)
            y = rng.integers(0, 10, batch)
            hyper = {"lr": np.float32(1e-3), "rng": np.int64(step)}
            want = reference.train_step(params, state, {"image": x, "label": y}, *(hyper[k] for k in reference.HYPER))
            got = s.run("train_step", {"image": x, "label": y}, {k: hyper[k] for k in reference.HYPER})
            losses.append((float(want["loss"]), float(got["loss"])))
        errors = {k: float(np.linalg.norm(s.read(k) - v) / max(np.linalg.norm(v), 1e-12)) for k, v in params.items()}
        # a convolution's bias before batch norm has a gradient that is exactly zero in theory: rounding noise,
        # which Adam normalizes into full-size steps in both systems (they differ); everything else must agree
        weights = {k: e for k, e in errors.items() if not k.endswith("conv2d.b") and "running" not in k}
        result[f"batch_{batch}"] = {"losses_numpy_vs_cuda": losses, "max_param_rel_err": max(weights.values()),
                                    "param_rel_err": errors}
        if torch is not None:
            result[f"batch_{batch}"]["timing"] = time_train(name, s, torch, params0, state0, batch, rounds, steps)
    return result


def time_train(name: str, s, torch, params0: dict, state0: dict, batch: int, rounds: int, steps: int) -> dict:
    """Our train step against PyTorch eager, both on contiguous device-resident batches, the loss to the host."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    shape = {"mlp": (784,), "cnn": (1, 28, 28)}[name]
    count = batch * steps
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.rand((count, *shape), device="cuda", generator=g)
    y = torch.randint(0, 10, (count,), device="cuda", generator=g)
    s.load(params0, state0)
    model = (torch_mlp if name == "mlp" else torch_cnn)(torch, params0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    counter = [0]

    def bmc_run():
        torch.cuda.synchronize()
        start = time.perf_counter()
        for k in range(steps):
            feeds = {"image": x[k * batch:(k + 1) * batch], "label": y[k * batch:(k + 1) * batch]}
            hyper = {"lr": 1e-3, "rng": counter[0]} if name == "cnn" else {"lr": 1e-3}
            float(s.run("train_step", feeds, hyper, outputs=["loss"])["loss"])
            counter[0] += 1
        return time.perf_counter() - start

    def torch_run():
        model.train()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for k in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[k * batch:(k + 1) * batch]), y[k * batch:(k + 1) * batch])
            loss.backward()
            optimizer.step()
            loss.item()
        return time.perf_counter() - start

    bmc_run(), torch_run()  # warm-up (cuDNN autotuning, our arena)
    return summary(interleaved({"bmc": bmc_run, "torch_eager": torch_run}, rounds), steps)


def torch_mlp(torch, params: dict):
    nn = torch.nn
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10)).cuda()
    with torch.no_grad():
        for layer, key in ((model[0], "h"), (model[2], "logits")):  # bmc's W is [in, out]
            layer.weight.copy_(torch.from_numpy(params[f"{key}.W"].T.copy()))
            layer.bias.copy_(torch.from_numpy(params[f"{key}.b"]))
    return model


def torch_cnn(torch, params: dict):
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.BatchNorm2d(32, eps=1e-5, momentum=0.1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64, eps=1e-5, momentum=0.1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10)).cuda()
    with torch.no_grad():
        for conv, bn, key in ((model[0], model[1], "c1"), (model[4], model[5], "c2")):
            conv.weight.copy_(torch.from_numpy(params[f"{key}.conv2d.W"]))
            conv.bias.copy_(torch.from_numpy(params[f"{key}.conv2d.b"]))
            bn.weight.copy_(torch.from_numpy(params[f"{key}.batch_norm.gamma"]))
            bn.bias.copy_(torch.from_numpy(params[f"{key}.batch_norm.beta"]))
        for layer, key in ((model[9], "h"), (model[12], "logits")):
            layer.weight.copy_(torch.from_numpy(params[f"{key}.W"].T.copy()))
            layer.bias.copy_(torch.from_numpy(params[f"{key}.b"]))
    return model


# ---- the run ------------------------------------------------------------------------------------------------------


def import_torch():
    try:
        import torch
    except ImportError:
        print("note: PyTorch is not installed: no cuBLAS or PyTorch timings")
        return None
    if not torch.cuda.is_available():
        print("note: PyTorch sees no CUDA device: no cuBLAS or PyTorch timings")
        return None
    return torch


def run(bundle: Path, rounds: int, steps: int) -> dict:
    nvcc, runtime = load_by_path("nvcc"), load_by_path("runtime")
    report: dict = {"bundle": json.loads((bundle / "bundle.json").read_text())}
    cases = {name: bundle / name for name in CASES}
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        compiled = dict(zip(cases, pool.map(lambda p: nvcc.compile_library((p / "model.cu").read_text()),
                                            cases.values()), strict=True))
    report["compile"] = {"seconds": time.perf_counter() - start,
                         "kernels": {k: len(c.kernels) for k, c in compiled.items()},
                         "max_registers": {k: max(s.get("registers", 0) for s in c.kernels.values())
                                           for k, c in compiled.items()},
                         "spills": {k: c.spills() for k, c in compiled.items()}}
    print(f"compiled {', '.join(cases)} with nvcc in {report['compile']['seconds']:.1f} s; spills: "
          f"{ {k: len(v) for k, v in report['compile']['spills'].items()} }")
    libs = {k: runtime.Library(c.path, json.loads((cases[k] / "manifest.json").read_text()))
            for k, c in compiled.items()}
    try:
        libs["matmul"].session().close()
    except runtime.CudaUnavailableError as e:
        print(f"skipped: {e}")
        report["skipped"] = str(e)
        return report
    torch = import_torch()
    report["matmul"] = check_matmul(libs["matmul"], torch, rounds)
    print("matmul:", json.dumps(report["matmul"], indent=1))
    report["mlp"] = check_train("mlp", cases["mlp"], libs["mlp"], torch, [64, 4096], rounds, steps)
    print("mlp:", json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "param_rel_err"}
                              for k, v in report["mlp"].items()}, indent=1))
    report["cnn"] = check_train("cnn", cases["cnn"], libs["cnn"], torch, [256], rounds, max(10, steps // 4))
    print("cnn:", json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "param_rel_err"}
                              for k, v in report["cnn"].items()}, indent=1))
    report["ok"] = (report["matmul"]["ragged_max_rel_err"] < 1e-5
                    and all(v["max_param_rel_err"] < 1e-3 for case in ("mlp", "cnn")
                            for v in report[case].values()))
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=BUNDLE, help=f"the prepared bundle (default {BUNDLE})")
    p.add_argument("--prepare", action="store_true", help="only write the bundle (needs bmc and lark)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=100, help="train steps per timed round (the CNN runs a quarter)")
    p.add_argument("--quick", action="store_true", help="2 rounds of 20 steps")
    p.add_argument("--json", type=Path, help="where to write the results (default BUNDLE/results.json)")
    args = p.parse_args(argv)
    if args.prepare:
        prepare(args.bundle)
        return 0
    if not (args.bundle / "bundle.json").exists():
        try:
            prepare(args.bundle)
        except ImportError as e:
            print(f"error: no bundle at {args.bundle}, and bmc cannot be imported here to make one ({e}).\n"
                  "  run `python benchmarks/gpu_check.py --prepare` where bmc is installed, and bring build/gpu_bundle",
                  file=sys.stderr)
            return 2
    rounds, steps = (2, 20) if args.quick else (args.rounds, args.steps)
    report = run(args.bundle, rounds, steps)
    text = json.dumps(report, indent=1, default=float)
    targets = [args.json or args.bundle / "results.json"]
    if os.environ.get("OUT"):
        targets.append(Path(os.environ["OUT"]) / "gpu_check.json")
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if "skipped" in report:
        return 0
    print(f"checks {'passed' if report['ok'] else 'FAILED'}; results in {targets[0]}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
