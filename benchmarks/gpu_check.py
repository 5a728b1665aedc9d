"""The CUDA backend on a real GPU, in one call: compile every case's model.cu with nvcc, check several train steps
against bmc's NumPy backend, run each case twice and compare bit for bit, run one small step of each case under
`compute-sanitizer --tool memcheck`, and time everything against cuBLAS and PyTorch eager CUDA.

Two commands, one on each machine:

    python benchmarks/gpu_check.py --prepare       # here, where bmc is installed: writes build/gpu_bundle, prints
                                                   # the device command and the carry list
    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py     # on the GPU machine, as the device tool's `run` with
                                                   # carry=["build/gpu_bundle"] (build/ is ignored by git: the
                                                   # bundle travels only when carried), timeout_s=480

`--prepare` prints that `run` call exactly; run it right after preparing. The GPU machine needs nvcc, NumPy and
PyTorch (CUDA build), not lark or bmc's other dependencies, and no network: the bundle holds each case's model.cu and
manifest, initial parameters, the NumPy backend's generated train step (reference.py, NumPy only) and what the check
needs to know (inputs and their ranges, optimizer, dims); this script loads backends/cuda/nvcc.py and runtime.py by
path. The bundle records a SHA-256 of the sources it was made from (bmc/, backends/, grammar/, examples/): the device
side recomputes it over the tree that travelled and, where they differ, says STALE at the start and the end, lists the
changed files, runs anyway and exits 3 (`--check-fresh` asks the same question here, without a GPU).

Cases (each example is picked up from examples/*.bm):
* matmul: a graph with one `matmul` (M, K, P symbolic): our GEMM against torch.matmul (cuBLAS) at 4096^3 and the
  MLP's shapes, and a ragged 1000 x 777 x 1029 product against NumPy (float64);
* every example: the train step (forward, backward, optimizer) at its train block's batch (the MLP also at 4096, the
  CNN also at 256), against the NumPy reference and PyTorch eager (compact PyTorch versions below; they start from
  PyTorch's own initial values: only their times are compared);
* NAME.tf32 (and .bf16): where the bundle was prepared with `--precision` (default `auto`: fp32, and tf32 when this
  bmc's CUDA target accepts a precision): matmul, mlp, cnn, vit and char_lm built with tensor cores, against NumPy with
  looser tolerances and against cuBLAS / PyTorch with TF32 allowed (bf16: PyTorch autocast).
The FP32 references run with TF32 off (torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 =
False), as our FP32 kernels are plain FP32.

Checks: 3 train steps from the same parameters on the same batches against the NumPy reference (each loss; every
parameter and optimizer state by relative norm, except a parameter whose gradient is zero in theory, found at
--prepare: a convolution's bias before batch norm, attention's key bias, and what follows their values, a running
mean; Adam turns their rounding noise into full steps); the same 3 steps run twice in fresh sessions, every loss,
parameter and state compared bit for bit, and once more with CUDA graphs off (`session.graphs = False`, where the
runtime has graphs): replay and direct launches must agree bit for bit too; memcheck of one small step (N = 2) of
each case where compute-sanitizer is installed (in one process, beside the checks, before any timing).

Timing: interleaved rounds (the first system alternates); each train step reads a contiguous device-resident batch
and returns the loss to the host (`float(loss)`, `loss.item()`), as a training loop does; steps per round are sized
from a warm-up so that the whole run stays in --budget seconds (default 240, --quick 120 with fewer and shorter
rounds and one check batch; 300 at most): a timing that no longer fits is skipped and says so. Each train step timing
also reports how our steps launched (CUDA graph replays, kernels per step) where the runtime counts them. Every ratio
is printed with its direction ("bmc/PyTorch eager step time 0.47 (lower is better)"). Without a CUDA device it
compiles what it can, runs one step of each NumPy reference, says plainly that nothing ran on a GPU or was timed, and
exits 0.

Results: JSON in BUNDLE/results.json (or --json), and $OUT/gpu_check.json with the printed log $OUT/gpu_check.log when
$OUT is set. Exit status: 0 checks passed (or no CUDA device), 1 a check failed, 2 no bundle, 3 the checks passed but
the bundle is stale. `--cases mlp,cnn` runs (or prepares) some cases only; `--no-compile` skips nvcc (a dry run).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "build" / "gpu_bundle"
FORMAT = 2  # of the bundle; part of its source hash
SOURCES = ("bmc", "backends", "grammar", "examples")  # what a bundle is made from (hashed)
FIRST = ("matmul", "mlp", "cnn")  # run first (if the budget runs out, these are done); then the rest by name
LOW_PRECISION = ("matmul", "mlp", "cnn", "vit", "char_lm")  # the cases built again with --precision tf32 / bf16
TIMED = {"mlp": (64, 4096), "cnn": (64, 256)}  # batch sizes; the others: their train block's batch (or 64)
CHECKED = {"mlp": (64, 4096), "char_lm": (8,)}  # batches of the NumPy check, where not the first timed one
DIMS = {"T": 64}  # other symbols of the check (a sequence length); timing uses the train block's `sequence`
# loss, params, GEMM. tf32 and bf16: the loss to tests/test_cuda_precision.py's tolerance; weight matrices only (Adam's
# moments, biases and normalization shifts follow gradients near zero, whose relative rounding error is large) and 4x
# looser than there, as Adam turns a small gradient's rounding into a full step (the full-size MLP drifts 6e-3 from
# FP32 in 3 TF32 steps at batch 5)
TOLERANCE = {"fp32": (1e-4, 1e-3, 1e-5), "tf32": (5e-3, 2e-2, 5e-3), "bf16": (4e-2, 1.5e-1, 3e-2)}
MATMUL_IR = """graph matmul(input %a: f32[M, K], input %b: f32[K, P]) {
  %c: f32[M, P] = matmul(%a, %b, transpose_a=false, transpose_b=false)
  return c = %c
}"""
MATMUL_SHAPES = ((4096, 4096, 4096), (64, 784, 128), (4096, 784, 128))  # M, K, P timed against cuBLAS
DEVICE_COMMAND = "PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py"
DEVICE_TIMEOUT_S = 480
LOG: list[str] = []


def say(*parts) -> None:
    text = " ".join(str(p) for p in parts)
    print(text, flush=True)
    LOG.append(text)
    if os.environ.get("OUT"):
        with open(Path(os.environ["OUT"]) / "gpu_check.log", "a", encoding="utf-8") as f:
            f.write(text + "\n")


# ---- the sources a bundle is made from -----------------------------------------------------------------------------


def source_hashes(root: Path = REPO) -> dict[str, str]:
    """SHA-256 of every file under SOURCES (bytecode caches and egg-info left out), by path relative to root."""
    out = {}
    for top in SOURCES:
        for folder, dirs, files in os.walk(root / top):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.endswith(".egg-info"))
            for name in files:
                path = Path(folder) / name
                if name.endswith((".pyc", ".pyo")) or path.is_symlink():
                    continue
                out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return dict(sorted(out.items()))


def digest(hashes: dict[str, str]) -> str:
    text = f"format {FORMAT}\n" + "".join(f"{k} {v}\n" for k, v in sorted(hashes.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def freshness(bundle: Path, root: Path = REPO) -> tuple[bool, list[str]]:
    """(fresh, what differs): whether the tree at root holds the sources the bundle was prepared from."""
    info = json.loads((bundle / "bundle.json").read_text())
    then, now = info["sources"]["files"], source_hashes(root)
    changed = [f"changed {k}" for k in sorted(then.keys() & now.keys()) if then[k] != now[k]]
    changed += [f"new {k}" for k in sorted(now.keys() - then.keys())]
    changed += [f"removed {k}" for k in sorted(then.keys() - now.keys())]
    if info.get("format") != FORMAT:
        changed.insert(0, f"bundle format {info.get('format')}, this script reads {FORMAT}")
    return not changed and info["sources"]["sha256"] == digest(now), changed


# ---- preparing the bundle (needs bmc) ------------------------------------------------------------------------------


def supported_precisions() -> list[str]:
    """fp32, plus what bmc's CUDA target offers (`--precision fp32|tf32|bf16`: the `precision(name)` scope of
    bmc.backends.cuda, inside which generate() builds tensor-core GEMMs)."""
    from bmc.backends import cuda

    if not callable(getattr(cuda, "precision", None)):
        return ["fp32"]
    return ["fp32", *(p for p in getattr(cuda.gemm, "PRECISIONS", ("tf32", "bf16")) if p != "fp32")]


def precision_scope(precision: str):
    """The scope in which bmc's CUDA target generates `precision` GEMMs (fp32: none needed)."""
    import contextlib

    from bmc.backends import cuda

    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in supported_precisions():
        raise SystemExit(f"error: --precision {precision}: this bmc's CUDA target has no such precision (it offers "
                         f"{', '.join(supported_precisions())}); prepare with --precision fp32")
    return cuda.precision(precision)


def input_specs(model, function: dict) -> list[dict]:
    """What the check feeds each input of the train step: its dtype and shape, and for integers the range its
    consumers accept (class indices, token ids); float targets of a loss get probabilities or values in [0, 1)."""
    from bmc import ops

    graph = model.compiled.model.graph
    users = graph.users()
    through = (ops.Reshape, ops.Transpose, ops.BroadcastTo, ops.Slice, ops.Concat, ops.Cast)
    by_name = {v.name: v for v in graph.inputs}
    specs = []
    for item in function["inputs"]:
        found, todo = [], [by_name[item["name"]]]  # the ops that use it, looking through data movement
        while todo:
            for node in users.get(todo.pop(), []):
                if isinstance(node.op, through):
                    todo.extend(node.outputs)
                else:
                    found.append(node)
        spec = {"name": item["name"], "dtype": item["dtype"], "shape": item["shape"], "kind": "normal"}
        if item["dtype"] in ("i32", "i64"):
            limits = [n.inputs[0].type.shape[-1] for n in found if isinstance(n.op, ops.CrossEntropy)]
            limits += [n.op.depth for n in found if isinstance(n.op, ops.OneHot)]
            limits += [n.inputs[0].type.shape[0] for n in found if isinstance(n.op, ops.Gather)]
            spec.update(kind="index", high=int(min(limits, default=2)))
        elif item["dtype"] == "bool":
            spec["kind"] = "bool"
        elif any(isinstance(n.op, ops.CrossEntropy) for n in found):
            spec["kind"] = "probs"
        elif any(isinstance(n.op, ops.BinaryCrossEntropy) for n in found) or item["role"] != "target":
            spec["kind"] = "unit"
        specs.append(spec)
    return specs


def zero_gradient_params(reference, params: dict, state: dict, specs: list[dict], lr: float, dims: dict,
                         steps: int = 3) -> tuple[dict[str, float], list[str]]:
    """Parameters whose gradient is rounding noise (zero in theory: max |grad| under 1e-5 of the largest one), and
    the tensors that follow their values (a running mean after a convolution's bias): over `steps` Adam steps from the
    same start, these differ between any two systems that round differently, so the check leaves them out."""
    rng = np.random.default_rng(0)
    batches = [make_batch(specs, dims, rng) for _ in range(steps)]
    hyper = {"rng": np.int64(0)}
    grads = reference.gradients({k: v.copy() for k, v in params.items()}, batches[0],
                                *(hyper[k] for k in reference.HYPER if k != "lr"))
    size = {k[len("grad/"):]: float(np.abs(v).max(initial=0.0)) for k, v in grads.items() if k.startswith("grad/")}
    top = max(size.values(), default=0.0)
    zero = {k: v for k, v in size.items() if v < 1e-5 * top}
    if not zero:
        return zero, []

    def train(start: dict) -> dict:
        p, s = {k: v.copy() for k, v in start.items()}, {k: v.copy() for k, v in state.items()}
        for step, batch in enumerate(batches):
            h = {"lr": np.float32(lr), "rng": np.int64(step)}
            reference.train_step(p, s, batch, *(h[k] for k in reference.HYPER))
        return {**p, **s}

    moved = {k: v + np.float32(steps * lr) if k in zero else v for k, v in params.items()}
    a, b = train(params), train(moved)
    follow = [k for k in a if k not in zero and k.rpartition("/")[2] not in zero and rel_norm(b[k], a[k]) > 1e-4]
    return zero, follow


def prepare(bundle: Path, precisions: str = "auto", only: list[str] | None = None) -> dict:
    sys.path.insert(0, str(REPO))
    from bmc.backends import cuda
    from bmc.backends.cuda import build as cuda_build

    import bmc
    from bmc.ir.parse import parse_graph
    from bmc.runtime import load_source

    wanted = supported_precisions()[:2] if precisions == "auto" else precisions.split(",")
    unknown = [p for p in wanted if p not in TOLERANCE]
    if unknown:
        raise SystemExit(f"error: unknown precision {', '.join(unknown)} (known: {', '.join(TOLERANCE)})")
    wanted = ["fp32", *(p for p in wanted if p != "fp32")]
    hashes = source_hashes()
    if bundle.exists():
        if any(bundle.iterdir()) and not (bundle / "bundle.json").exists():
            raise SystemExit(f"error: {bundle} exists and is not a bundle; give another --bundle")
        shutil.rmtree(bundle)
    bundle.mkdir(parents=True)
    examples = {p.stem: p for p in sorted((REPO / "examples").glob("*.bm"))}
    names = [n for n in (*FIRST, *sorted(examples)) if n == "matmul" or n in examples]
    names = list(dict.fromkeys(n for n in names if not only or n in only))
    cases = []
    for name in names:
        for precision in wanted:
            if precision != "fp32" and name not in LOW_PRECISION:
                continue
            key = name if precision == "fp32" else f"{name}.{precision}"
            path = bundle / key
            path.mkdir()
            with precision_scope(precision):
                if name == "matmul":
                    prog = cuda.generate("matmul", "<ir>", "", {"run": parse_graph(MATMUL_IR)})
                    info = {"kind": "matmul"}
                else:
                    model = bmc.compile(examples[name])
                    prog = cuda_build.program(model)
                    info = train_case_info(model, prog, path if precision == "fp32" else None, load_source)
            if prog.manifest.get("precision", "fp32") != precision:
                raise SystemExit(f"error: {key}: asked for {precision} GEMMs, the build says "
                                 f"{prog.manifest.get('precision')}")
            (path / "model.cu").write_text(prog.source, encoding="utf-8")
            (path / "manifest.json").write_text(json.dumps(prog.manifest, indent=1), encoding="utf-8")
            info.update(name=key, example=name, precision=precision, base=name,
                        source_sha256=hashlib.sha256(prog.source.encode()).hexdigest())
            (path / "case.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
            cases.append(key)
    info = {"format": FORMAT, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "bmc_version": bmc.__version__,
            "precisions": wanted, "cases": cases, "sources": {"sha256": digest(hashes), "files": hashes}}
    (bundle / "bundle.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    return info


def train_case_info(model, prog, path: Path | None, load_source) -> dict:
    """case.json of an example (and, for its fp32 case, params.npz, state.npz and reference.py in path)."""
    c = model.compiled
    config = c.config
    function = next(f for f in prog.manifest["functions"] if f["name"] == "train_step")
    specs = input_specs(model, function)
    constants = {k: v for k, v in c.model.constants.items() if type(v) in (int, float)}
    lr = config.optimizer.lr
    timed = list(TIMED.get(c.name, (config.batch or 442,)))
    checked = list(CHECKED.get(c.name, timed[:1]))
    symbols = {s for i in function["inputs"] for d in i["shape"] if isinstance(d, str) for s in d.split("*")
               if not s.isdigit()}
    check_dims = {s: DIMS.get(s, 16) for s in symbols if s != "N"}
    sequence = config.sequence or constants.get("context") or check_dims.get("T", 16)
    info = {"kind": "train", "inputs": specs, "hyper": [h["name"] for h in function["hyper"]], "lr": lr,
            "optimizer": {"kind": config.optimizer.kind, "args": dict(config.optimizer.args)}, "clip": config.clip,
            "constants": constants, "check_batches": checked, "timed_batches": timed, "check_dims": check_dims,
            "timed_dims": {s: sequence for s in check_dims}}
    if path is not None:
        source = model.generate("numpy", train=True)
        (path / "reference.py").write_text(source, encoding="utf-8")
        params, state = model.init_params(0)
        np.savez_compressed(path / "params.npz", **params)
        np.savez_compressed(path / "state.npz", **state)
        info["zero_gradient"], info["follow_zero_gradient"] = zero_gradient_params(
            load_source(source), params, state, specs, lr, {"N": checked[0], **check_dims})
    return info


def device_call(bundle: Path, quick: bool = False) -> tuple[str, list[str]]:
    """The device tool's command and carry list for this bundle."""
    rel = bundle.resolve().relative_to(REPO).as_posix()
    command = DEVICE_COMMAND + ("" if rel == "build/gpu_bundle" else f" --bundle {rel}") + (" --quick" * quick)
    return command, [rel]


# ---- loading without bmc -------------------------------------------------------------------------------------------


def load_by_path(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"bmc_cuda_{name}", REPO / "backends" / "cuda" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


class Case:
    """One case of a bundle: case.json, the files of its directory, and those of its fp32 base (parameters,
    reference)."""

    def __init__(self, bundle: Path, name: str):
        self.dir = bundle / name
        self.info = json.loads((self.dir / "case.json").read_text())
        self.base = bundle / self.info["base"]
        self.name, self.kind, self.precision = name, self.info["kind"], self.info["precision"]
        self.manifest = json.loads((self.dir / "manifest.json").read_text())
        if self.kind == "train":
            self.info = {**json.loads((self.base / "case.json").read_text()), **self.info}

    def source(self) -> str:
        return (self.dir / "model.cu").read_text(encoding="utf-8")

    def reference(self) -> types.ModuleType:
        path = self.base / "reference.py"
        module = types.ModuleType(f"reference_{self.base.name}")
        module.__file__ = str(path)
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)
        return module

    def arrays(self, which: str) -> dict[str, np.ndarray]:
        with np.load(self.base / f"{which}.npz") as f:
            return {k: f[k] for k in f.files}

    def hyper(self, step: int) -> dict:
        return {"lr": np.float32(self.info["lr"]), "rng": np.int64(step)}


DTYPES = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}


def shape_of(spec: dict, dims: dict) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else math.prod(int(f) if f.isdigit() else dims[f] for f in d.split("*"))
                 for d in spec["shape"])


def make_batch(specs: list[dict], dims: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for spec in specs:
        shape, kind = shape_of(spec, dims), spec["kind"]
        if kind == "index":
            a = rng.integers(0, spec["high"], shape)
        elif kind == "bool":
            a = rng.random(shape) < 0.5
        elif kind == "probs":
            e = np.exp(rng.standard_normal(shape))
            a = e / e.sum(axis=-1, keepdims=True)
        elif kind == "unit":
            a = rng.random(shape)
        else:
            a = rng.standard_normal(shape)
        out[spec["name"]] = a.astype(DTYPES[spec["dtype"]])
    return out


def reference_step(case: Case, dims: dict | None = None) -> float:
    """One step of the case's NumPy reference at small dims (N = 2, T = 8): the loss."""
    reference = case.reference()
    params, state = case.arrays("params"), case.arrays("state")
    dims = dims or {"N": 2, **{s: 8 for s in case.info["check_dims"]}}
    batch = make_batch(case.info["inputs"], dims, np.random.default_rng(0))
    hyper = case.hyper(0)
    return float(reference.train_step(params, state, batch, *(hyper[k] for k in reference.HYPER))["loss"])


# ---- checks: against NumPy, and bit for bit against itself ---------------------------------------------------------


def rel_norm(got: np.ndarray, want: np.ndarray, floor: float = 1e-2) -> float:
    """||got - want|| / ||want||, with ||want|| at least floor * sqrt(size) (a parameter that stays near zero)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), floor * math.sqrt(max(want.size, 1))))


REFERENCE_RUNS: dict[tuple, tuple] = {}


def check_train(case: Case, lib, batch: int, steps: int = 3, device=None) -> dict:
    """`steps` train steps against the NumPy reference, and the same steps twice in fresh sessions, bit for bit (the
    second run from device-resident inputs, a new buffer each step, where `device` copies a batch to the GPU), and
    once more with CUDA graphs off."""
    reference = case.reference()
    params0, state0 = case.arrays("params"), case.arrays("state")
    dims = {"N": batch, **case.info["check_dims"]}
    rng = np.random.default_rng(batch)
    batches = [make_batch(case.info["inputs"], dims, rng) for _ in range(steps)]
    hypers = [case.hyper(step) for step in range(steps)]
    key = (str(case.base), batch, steps)  # a precision variant shares its base's reference run
    if key not in REFERENCE_RUNS:
        params, state = {k: v.copy() for k, v in params0.items()}, {k: v.copy() for k, v in state0.items()}
        want = [float(reference.train_step(params, state, b, *(h[k] for k in reference.HYPER))["loss"])
                for b, h in zip(batches, hypers, strict=True)]
        REFERENCE_RUNS[key] = want, params, state
    want, params, state = REFERENCE_RUNS[key]
    runs = {}
    for run in ("first", "second", "direct"):  # direct: every kernel launched directly, no CUDA graph replay
        s = lib.session()
        try:
            if run == "direct":
                if not hasattr(s, "graphs"):  # a runtime without CUDA graphs: nothing to compare
                    break
                s.graphs = False
            s.load(params0, state0)
            feeds = [device(b) for b in batches] if run == "second" and device else batches
            losses = [s.run("train_step", b, {k: h[k] for k in case.info["hyper"]}, outputs=["loss"])["loss"]
                      for b, h in zip(feeds, hypers, strict=True)]
            tensors = {k: s.read(k) for k, (_, t) in lib.tensors.items() if t["role"] in ("param", "state")}
        finally:
            s.close()
        runs[run] = (np.array(losses, np.float32), tensors)
    losses, tensors = runs["first"]

    def differ(other: str) -> list[str]:
        losses2, tensors2 = runs[other]
        return ["loss"] * (losses.tobytes() != losses2.tobytes()) + [
            k for k in tensors if tensors[k].tobytes() != tensors2[k].tobytes()]

    differ_runs = differ("second")
    differ_direct = differ("direct") if "direct" in runs else None
    zero = set(case.info.get("zero_gradient", {}))
    skipped = {k for k in tensors if k in zero or k.rpartition("/")[2] in zero} | set(
        case.info.get("follow_zero_gradient", []))
    if case.precision != "fp32":  # weight matrices only: vectors (biases, batch norm's shifts) and Adam's moments
        skipped |= {k for k in tensors if k in state or tensors[k].ndim < 2}  # follow gradients near zero
    expected = {**params, **state}
    errors = {k: rel_norm(tensors[k], v) for k, v in expected.items() if k not in skipped}
    loss_err = max(abs(float(g) - w) / max(1.0, abs(w)) for g, w in zip(losses, want, strict=True))
    tol_loss, tol_params, _ = TOLERANCE[case.precision]
    worst = max(errors, key=errors.get) if errors else None
    return {"batch": batch, "dims": dims, "losses_numpy": want, "losses_bmc": [float(x) for x in losses],
            "loss_max_rel_diff": loss_err, "max_param_rel_err": errors.get(worst, 0.0), "worst_tensor": worst,
            "not_compared": sorted(skipped) if case.precision == "fp32" else [
                "optimizer state", "vectors (biases, normalization scales and shifts)",
                *sorted(k for k in skipped if k in zero or tensors[k].ndim > 1)],
            "tolerances": {"loss": tol_loss, "params": tol_params},
            "agrees": loss_err <= tol_loss and errors.get(worst, 0.0) <= tol_params,
            "bit_identical": not differ_runs, "differ_between_runs": differ_runs[:10],
            "second_run_inputs": "device" if device else "host",
            "graph_vs_direct_identical": None if differ_direct is None else not differ_direct,
            "differ_graph_vs_direct": (differ_direct or [])[:10],
            "param_rel_err": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:8])}


def check_matmul(case: Case, lib) -> dict:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1000, 777), np.float32), rng.standard_normal((777, 1029), np.float32)
    want = a.astype(np.float64) @ b
    got = [lib.session().run("run", {"a": a, "b": b})["c"] for _ in range(2)]
    err = float(np.abs(got[0] - want).max() / np.abs(want).max())
    tol = TOLERANCE[case.precision][2]
    return {"shape": [1000, 777, 1029], "max_rel_err_vs_numpy_f64": err, "tolerance": tol, "agrees": err <= tol,
            "bit_identical": got[0].tobytes() == got[1].tobytes()}


def passed(c: dict) -> bool:
    return c["agrees"] and c["bit_identical"] and c.get("graph_vs_direct_identical") is not False


def print_check(name: str, c: dict) -> None:
    if "max_rel_err_vs_numpy_f64" in c:
        say(f"  {name} {'x'.join(map(str, c['shape']))}: max rel err vs NumPy float64 "
            f"{c['max_rel_err_vs_numpy_f64']:.1e} (tolerance {c['tolerance']:.0e}): "
            f"{'ok' if c['agrees'] else 'FAILED'}; two runs bit-identical: {'yes' if c['bit_identical'] else 'NO'}")
        return
    say(f"  {name} batch {c['batch']}: vs NumPy over {len(c['losses_bmc'])} steps: loss max rel diff "
        f"{c['loss_max_rel_diff']:.1e}, params/state max rel err {c['max_param_rel_err']:.1e} ({c['worst_tensor']}) "
        f"(tolerances {c['tolerances']['loss']:.0e}, {c['tolerances']['params']:.0e}): "
        f"{'ok' if c['agrees'] else 'FAILED'}; two runs bit-identical: "
        f"{'yes' if c['bit_identical'] else 'NO: ' + ', '.join(c['differ_between_runs'])}"
        + ("" if c.get("graph_vs_direct_identical") is None else "; CUDA graph replay = direct launches bit for bit: "
           + ("yes" if c["graph_vs_direct_identical"] else "NO: " + ", ".join(c["differ_graph_vs_direct"]))))


# ---- compute-sanitizer: one small step of each case, in one process --------------------------------------------------


def memcheck_child(listing: Path) -> int:
    """Runs inside compute-sanitizer: one train step (N = 2) or one small product of each listed case."""
    runtime = load_by_path("runtime")
    entries = json.loads(listing.read_text())
    rng = np.random.default_rng(0)
    for entry in entries:
        case = Case(Path(entry["bundle"]), entry["case"])
        print(f"memcheck-case: {case.name}", flush=True)
        try:
            s = runtime.Library(entry["library"], case.manifest).session()
            if case.kind == "matmul":
                a, b = rng.standard_normal((33, 17), np.float32), rng.standard_normal((17, 29), np.float32)
                s.run("run", {"a": a, "b": b})
            else:
                s.load(case.arrays("params"), case.arrays("state"))
                batch = make_batch(case.info["inputs"], {"N": 2, **{k: 8 for k in case.info["check_dims"]}}, rng)
                s.run("train_step", batch, {k: case.hyper(0)[k] for k in case.info["hyper"]})
            s.close()
        except Exception as e:  # reported by the parent; the other cases still run
            print(f"memcheck-error: {case.name}: {type(e).__name__}: {e}", flush=True)
            continue
        print(f"memcheck-done: {case.name}", flush=True)
    return 0


def start_memcheck(bundle: Path, libraries: dict[str, Path], work: Path, tool: str | None = None):
    """compute-sanitizer --tool memcheck over memcheck_child, started in the background (None: not installed)."""
    tool = tool or shutil.which("compute-sanitizer") or next(
        (p for p in ("/usr/local/cuda/bin/compute-sanitizer",) if os.access(p, os.X_OK)), None)
    if tool is None or not libraries:
        return None
    listing = work / "memcheck_cases.json"
    listing.write_text(json.dumps([{"bundle": str(bundle), "case": k, "library": str(p)}
                                   for k, p in libraries.items()]))
    command = [tool, "--tool", "memcheck", "--error-exitcode", "9", "--print-limit", "30", sys.executable,
               str(Path(__file__).resolve()), "--memcheck-child", str(listing)]
    log = open(work / "memcheck.log", "w+", encoding="utf-8")  # noqa: SIM115 - read back in finish_memcheck
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OUT": ""}), log, \
        list(libraries), time.perf_counter()


def finish_memcheck(started, timeout: float) -> dict:
    if started is None:
        return {"ran": False, "why": "compute-sanitizer is not installed"}
    proc, log, cases, t0 = started
    try:
        proc.wait(timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.seek(0)
    text = log.read()
    log.close()
    per, current = {}, None
    for line in text.splitlines():
        if line.startswith("memcheck-case: "):
            current = line.split(": ", 1)[1]
            per[current] = {"errors": 0, "finished": False}
        elif line.startswith("memcheck-done: ") and current:
            per[current]["finished"] = True
        elif line.startswith("memcheck-error: ") and current:
            per[current]["failure"] = line.split(": ", 2)[2]
        elif current and re.match(r"=+ (Invalid|Program hit|Malloc|Leaked|Out-of-range|Misaligned|Uninit)", line):
            per[current]["errors"] += 1
    summary = re.search(r"ERROR SUMMARY: (\d+) error", text)
    errors = sum(v["errors"] for v in per.values())
    # a sanitizer that refuses the device (gVisor: "Device not supported") runs nothing: not a finding
    ran = any(v["finished"] for v in per.values()) or errors > 0
    result = {"ran": ran, "seconds": time.perf_counter() - t0, "returncode": proc.returncode,
              "errors": max(errors, int(summary.group(1)) if summary and ran else 0), "cases": per,
              "not_reached": [c for c in cases if c not in per or not per[c]["finished"]],
              "tail": text.splitlines()[-25:]}
    if not ran:
        result["why"] = "compute-sanitizer ran no case: " + " | ".join(text.splitlines()[-4:])
    return result


# ---- timing ---------------------------------------------------------------------------------------------------------


class Clock:
    """The run's time budget: each timing is sized from a warm-up to take `round_s` per system per round."""

    def __init__(self, budget: float, quick: bool):
        self.start, self.budget = time.perf_counter(), budget
        self.rounds, self.round_s, self.max_steps = (3, 0.05, 40) if quick else (5, 0.2, 400)

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)

    def cost(self, systems: int) -> float:
        """About what one timing of that many systems takes (warm-ups and rounds)."""
        return systems * (self.rounds + 1) * self.round_s + 1

    def affordable(self, systems: int) -> bool:
        return self.left() > self.cost(systems) + 5

    def time(self, systems: dict) -> dict:
        """systems: name -> run(steps) -> seconds. Interleaved rounds; ms per step (per call) per system."""
        per_step = {}
        for name, run in systems.items():
            run(2)  # warm-up: caches, autotuning, our arena
            per_step[name] = run(3) / 3
        steps = int(min(self.max_steps, max(3, self.round_s / max(max(per_step.values()), 1e-7))))
        times: dict[str, list[float]] = {k: [] for k in systems}
        names = list(systems)
        for r in range(self.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                times[name].append(systems[name](steps))
        out = {k: {"median_ms": 1e3 * statistics.median(v) / steps, "min_ms": 1e3 * min(v) / steps,
                   "rounds_ms": [1e3 * t / steps for t in v]} for k, v in times.items()}
        return {"steps_per_round": steps, "rounds": self.rounds, **out}


def ratio_line(timing: dict, ours: str, theirs: str, what: str) -> tuple[float, str]:
    r = timing[ours]["median_ms"] / timing[theirs]["median_ms"]
    per_round = ", ".join(f"{a / b:.2f}" for a, b in zip(timing[ours]["rounds_ms"], timing[theirs]["rounds_ms"],
                                                         strict=True))
    return r, (f"{ours} {timing[ours]['median_ms']:.3f} ms, {theirs} {timing[theirs]['median_ms']:.3f} ms: "
               f"{what} {r:.2f} (lower is better; per round {per_round})")


def set_tf32(torch, allowed: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = allowed
    torch.backends.cudnn.allow_tf32 = allowed


def time_matmul(case: Case, lib, torch, clock: Clock) -> dict:
    s = lib.session()
    out = {}
    for m, k, n in MATMUL_SHAPES:
        if not clock.affordable(2):
            out[f"{m}x{k}x{n}"] = {"skipped": "over the time budget"}
            continue
        g = torch.Generator(device="cuda").manual_seed(0)
        a, b = torch.randn(m, k, device="cuda", generator=g), torch.randn(k, n, device="cuda", generator=g)
        ours, theirs = torch.empty(m, n, device="cuda"), torch.empty(m, n, device="cuda")
        a16, b16, theirs16 = a.bfloat16(), b.bfloat16(), torch.empty(m, n, device="cuda", dtype=torch.bfloat16)

        def bmc_run(calls, a=a, b=b, ours=ours):
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(calls):
                s.run("run", {"a": a, "b": b}, out={"c": ours})
            torch.cuda.synchronize()
            return time.perf_counter() - start

        def cublas_run(calls, a=a, b=b, theirs=theirs, a16=a16, b16=b16, theirs16=theirs16):
            set_tf32(torch, case.precision == "tf32")
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(calls):
                if case.precision == "bf16":
                    torch.matmul(a16, b16, out=theirs16)
                else:
                    torch.matmul(a, b, out=theirs)
            torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            set_tf32(torch, False)
            return elapsed

        bmc_run(1), cublas_run(1)
        reference = theirs16.float() if case.precision == "bf16" else theirs
        entry = {"max_rel_err_vs_cublas": float((ours - reference).abs().max() / reference.abs().max())}
        entry.update(clock.time({"bmc": bmc_run, "cublas": cublas_run}))
        for key in ("bmc", "cublas"):
            entry[key]["tflops"] = 2 * m * k * n / (entry[key]["median_ms"] * 1e-3) / 1e12
        label = {"fp32": "cuBLAS FP32 (TF32 off)", "tf32": "cuBLAS TF32", "bf16": "cuBLAS BF16"}[case.precision]
        entry["ratio"], line = ratio_line(entry, "bmc", "cublas", f"bmc/{label} time")
        say(f"  {case.name} {m}x{k}x{n}: {line}; bmc {entry['bmc']['tflops']:.1f} TFLOP/s = "
            f"{1 / entry['ratio']:.2f} of cuBLAS's (higher is better)")
        out[f"{m}x{k}x{n}"] = entry
        del a, b, ours, theirs, a16, b16, theirs16
    s.close()
    return out


def time_train(case: Case, lib, torch, batch: int, clock: Clock) -> dict:
    """Our train step against the PyTorch version of the example, both on device-resident batches."""
    dims = {"N": batch, **case.info["timed_dims"]}
    ring = 8
    g = torch.Generator(device="cuda").manual_seed(batch)
    data = [{spec["name"]: torch_data(torch, spec, dims, g) for spec in case.info["inputs"]} for _ in range(ring)]
    s = lib.session()
    s.load(case.arrays("params"), case.arrays("state"))
    model, loss_fn = torch_model(torch, case.info["example"], case.info["constants"])
    model = model.cuda().train()
    optimizer = torch_optimizer(torch, model.parameters(), case.info["optimizer"])
    clip, counter = case.info["clip"], [0]
    lr = float(case.info["lr"])
    autocast = case.precision == "bf16"

    def bmc_run(steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            k = counter[0]
            hyper = {"lr": lr, "rng": k} if "rng" in case.info["hyper"] else {"lr": lr}
            float(s.run("train_step", data[k % ring], hyper, outputs=["loss"])["loss"])
            counter[0] += 1
        return time.perf_counter() - start

    def torch_run(steps):
        set_tf32(torch, case.precision == "tf32")
        torch.cuda.synchronize()
        start = time.perf_counter()
        for k in range(steps):
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                loss = loss_fn(model, data[k % ring])
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            loss.item()
        elapsed = time.perf_counter() - start
        set_tf32(torch, False)
        return elapsed

    result = {"dims": dims, **clock.time({"bmc": bmc_run, "torch_eager": torch_run})}
    label = {"fp32": "", "tf32": " (TF32)", "bf16": " (BF16 autocast)"}[case.precision]
    result["ratio"], line = ratio_line(result, "bmc", "torch_eager", f"bmc/PyTorch eager{label} step time")
    if hasattr(s, "launch_stats"):  # how our steps ran: CUDA graph replays, kernels per step
        try:
            result["launches"] = stats = s.launch_stats("train_step")
            line += (f"; bmc: {stats['replayed']} of {stats['replayed'] + stats['direct']} steps replayed a CUDA graph"
                     f" of {stats['graph_kernels']} kernels ({stats['direct_kernels']} launched directly)")
        except Exception as e:  # an older library: no statistics
            result["launches"] = str(e)
    say(f"  {case.name} batch {batch}: {line}")
    s.close()
    return result


def torch_data(torch, spec: dict, dims: dict, g, device: str = "cuda"):
    shape = shape_of(spec, dims)
    if spec["kind"] == "index":
        return torch.randint(0, spec["high"], shape, device=device, generator=g)
    if spec["kind"] == "bool":
        return torch.rand(shape, device=device, generator=g) < 0.5
    if spec["kind"] == "probs":
        return torch.softmax(torch.randn(shape, device=device, generator=g), dim=-1)
    if spec["kind"] == "unit":
        return torch.rand(shape, device=device, generator=g)
    return torch.randn(shape, device=device, generator=g)


# ---- the examples in PyTorch (their times are compared, not their values) -----------------------------------------


def torch_model(torch, name: str, k: dict):
    """(module, loss(module, feeds)) of an example, feeds by the .bm input names."""
    nn, fn = torch.nn, torch.nn.functional
    ce = fn.cross_entropy

    class Attention(nn.Module):  # q, k, v and output projections with biases, as bmc's attention
        def __init__(self, d, heads, causal):
            super().__init__()
            self.qkv, self.out, self.heads, self.causal = nn.Linear(d, 3 * d), nn.Linear(d, d), heads, causal

        def forward(self, x):
            n, t, d = x.shape
            q, kk, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            y = fn.scaled_dot_product_attention(q, kk, v, is_causal=self.causal)
            return self.out(y.transpose(1, 2).reshape(n, t, d))

    class Block(nn.Module):  # pre-norm: x + attention(ln(x)), then + dense(gelu(dense(ln(a))))
        def __init__(self, d, heads, hidden, causal=False, rate=0.0):
            super().__init__()
            self.ln1, self.attention, self.ln2 = nn.LayerNorm(d), Attention(d, heads, causal), nn.LayerNorm(d)
            self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
            self.drop = nn.Dropout(rate)

        def forward(self, x):
            a = x + self.drop(self.attention(self.ln1(x)))
            return a + self.drop(self.mlp(self.ln2(a)))

    class Residual(nn.Module):
        def __init__(self, width, hidden):
            super().__init__()
            self.f = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width))

        def forward(self, x):
            return x + self.f(x)

    class Recurrent(nn.Module):  # the last state classifies
        def __init__(self, cell):
            super().__init__()
            self.cell = cell(k["features"], k["hidden"], batch_first=True)
            self.head = nn.Linear(k["hidden"], k["classes"])

        def forward(self, rows):
            return self.head(self.cell(rows)[0][:, -1])

    class Transformer(nn.Module):  # vit (rows as tokens, mean pooling) and char_lm (causal, every position)
        def __init__(self, lm):
            super().__init__()
            width, self.lm = k["width"], lm
            self.embed = nn.Embedding(k["vocab"], width) if lm else nn.Linear(k["features"], width)
            self.pos = nn.Parameter(0.02 * torch.randn(k["context" if lm else "tokens"], width))
            self.drop = nn.Dropout(0.1 if lm else 0.0)
            self.blocks = nn.Sequential(*(Block(width, k["heads"], (4 if lm else 2) * width, lm, 0.1 if lm else 0.0)
                                          for _ in range(k["blocks"])))
            self.ln, self.head = nn.LayerNorm(width), nn.Linear(width, k["vocab"] if lm else k["classes"])

        def forward(self, x):
            h = self.blocks(self.drop(self.embed(x) + self.pos[:x.shape[1]]))
            return self.head(self.ln(h)) if self.lm else self.head(self.ln(h.mean(1)))

    if name == "mlp":
        m = nn.Sequential(nn.Linear(k["features"], k["hidden"]), nn.ReLU(), nn.Linear(k["hidden"], k["classes"]))
        return m, lambda m, f: ce(m(f["image"]), f["label"])
    if name == "cnn":
        m = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, k["classes"]))
        return m, lambda m, f: ce(m(f["image"]), f["label"])
    if name == "residual_mlp":
        m = nn.Sequential(nn.Linear(k["features"], k["width"]), nn.ReLU(), Residual(k["width"], k["hidden"]),
                          Residual(k["width"], k["hidden"]), nn.Linear(k["width"], k["classes"]))
        return m, lambda m, f: ce(m(f["image"]), f["label"]) + 1e-4 * (m[-1].weight ** 2).sum()
    if name == "linear_regression":
        return nn.Linear(k["features"], 1), lambda m, f: fn.mse_loss(m(f["x"])[:, 0], f["y"])
    if name == "logistic_regression":
        return nn.Linear(k["features"], 1), lambda m, f: fn.binary_cross_entropy_with_logits(m(f["x"])[:, 0],
                                                                                             f["y"].float())
    if name in ("rnn", "lstm", "gru"):
        return Recurrent({"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[name]), lambda m, f: ce(m(f["rows"]),
                                                                                                 f["label"])
    if name == "vit":
        return Transformer(False), lambda m, f: ce(m(f["rows"]), f["label"])
    if name == "char_lm":
        return Transformer(True), lambda m, f: ce(m(f["tokens"]).flatten(0, 1), f["next"].flatten())
    return None


def torch_optimizer(torch, parameters, optimizer: dict):
    kind, a = optimizer["kind"], optimizer["args"]
    if kind in ("adam", "adamw"):
        extra = {"weight_decay": a.get("weight_decay", 0.0)} if kind == "adamw" else {}
        return (torch.optim.Adam if kind == "adam" else torch.optim.AdamW)(
            parameters, lr=a["lr"], betas=(a.get("beta1", 0.9), a.get("beta2", 0.999)), eps=a.get("eps", 1e-7),
            **extra)
    return torch.optim.SGD(parameters, lr=a["lr"], momentum=a.get("momentum", 0.0),
                           nesterov=bool(a.get("nesterov", False)))


# ---- the run ------------------------------------------------------------------------------------------------------


def import_torch():
    try:
        import torch
    except ImportError:
        say("note: PyTorch is not installed: no cuBLAS or PyTorch timings")
        return None
    if not torch.cuda.is_available():
        say("note: PyTorch sees no CUDA device: no cuBLAS or PyTorch timings")
        return None
    set_tf32(torch, False)  # the FP32 references are plain FP32, as our FP32 kernels
    torch.backends.cudnn.benchmark = True  # cuDNN picks its fastest convolutions (in the warm-up)
    return torch


def compile_all(nvcc, cases: dict[str, Case]) -> tuple[dict, dict]:
    def one(case):
        try:
            return nvcc.compile_library(case.source())
        except Exception as e:  # reported with the case
            return e

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(len(cases), os.cpu_count() or 1))) as pool:
        results = dict(zip(cases, pool.map(one, cases.values()), strict=True))
    compiled = {k: v for k, v in results.items() if not isinstance(v, Exception)}
    report = {"seconds": time.perf_counter() - start, "cached": [k for k, c in compiled.items() if c.cached],
              "errors": {k: str(v)[:2000] for k, v in results.items() if isinstance(v, Exception)},
              "kernels": {k: len(c.kernels) for k, c in compiled.items()},
              "max_registers": {k: max((s.get("registers", 0) for s in c.kernels.values()), default=0)
                                for k, c in compiled.items()},
              "spills": {k: c.spills() for k, c in compiled.items()}}
    spills = {k: len(v) for k, v in report["spills"].items() if v}
    say(f"compiled {len(compiled)} of {len(cases)} cases with nvcc in {report['seconds']:.1f} s "
        f"({len(report['cached'])} from the cache); kernels with spills: {spills or 'none'}")
    for k, e in report["errors"].items():
        say(f"  {k}: nvcc FAILED: {e.splitlines()[0] if e else ''}")
    return compiled, report


def run(bundle: Path, quick: bool = False, budget: float = 240.0, only: list[str] | None = None,
        compile_: bool = True) -> dict:
    clock = Clock(budget, quick)
    info = json.loads((bundle / "bundle.json").read_text())
    fresh, changed = freshness(bundle)
    report: dict = {"bundle": {**{k: v for k, v in info.items() if k != "sources"},
                               "sources": info["sources"]["sha256"]},
                    "fresh": fresh, "changed": changed[:50], "quick": quick, "budget_s": budget}
    say(f"bundle {bundle} (prepared {info['created']}, bmc {info['bmc_version']}, precisions "
        f"{', '.join(info['precisions'])}): " + ("fresh" if fresh else f"STALE: {len(changed)} source files differ "
                                                  f"from the tree it was prepared from: {', '.join(changed[:8])}"))
    cases = {k: Case(bundle, k) for k in info["cases"] if not only or k in only or k.split(".")[0] in only}
    nvcc, runtime = load_by_path("nvcc"), load_by_path("runtime")
    if not compile_ or nvcc.find_nvcc() is None:
        compiled, report["compile"] = {}, {"skipped": "--no-compile" if not compile_ else "nvcc not found"}
        say(f"nothing was compiled ({report['compile']['skipped']})")
    else:
        compiled, report["compile"] = compile_all(nvcc, cases)
    report["cases"] = {k: {"precision": c.precision} for k, c in cases.items()}
    try:
        runtime.require_device()
    except runtime.CudaUnavailableError as e:
        report["skipped"] = str(e)
        for k, c in cases.items():
            if c.kind == "train" and c.precision == "fp32":
                report["cases"][k]["numpy_reference_loss"] = reference_step(c)
        say(f"NumPy references: one step of each ran ({len([c for c in cases.values() if c.kind == 'train'])} "
            "train cases)")
        say(f"NO CUDA DEVICE: nothing ran on a GPU and nothing was timed ({e})")
        return report
    report["device"] = device_info()
    say(f"device: {report['device']}")
    libraries = {}
    for k, c in compiled.items():
        try:
            libraries[k] = runtime.Library(c.path, cases[k].manifest)
        except runtime.CudaError as e:  # reported with the case
            report["cases"][k]["error"] = f"cannot load the library: {e}"
            say(f"  {k}: ERROR {report['cases'][k]['error']}")
    work = bundle / "run"
    work.mkdir(exist_ok=True)
    order = sorted(libraries, key=lambda k: cases[k].precision != "fp32")  # fp32 first; --quick: fp32 only
    memcheck = start_memcheck(bundle, {k: compiled[k].path for k in order if not quick or
                                       cases[k].precision == "fp32"}, work)
    torch = import_torch()
    report["torch"] = torch_info(torch)

    def on_device(batch: dict) -> dict:  # the second run's inputs, as the timed steps get them
        return {k: torch.from_numpy(v).cuda() for k, v in batch.items()}

    to_device = on_device if torch is not None else None
    say("checks (against NumPy; two runs bit for bit" + (", the second from device-resident inputs" if torch else "")
        + "):")
    for k, lib in libraries.items():
        case, entry = cases[k], report["cases"][k]
        try:
            if case.kind == "matmul":
                entry["checks"] = [check_matmul(case, lib)]
            else:
                batches = case.info["check_batches"][:1] if quick else case.info["check_batches"]
                entry["checks"] = [check_train(case, lib, b, device=to_device) for b in batches]
        except Exception as e:  # a failing case is reported, the others still run
            entry["error"] = f"{type(e).__name__}: {e}"
            say(f"  {k}: ERROR {entry['error']}")
            continue
        for c in entry["checks"]:
            print_check(k, c)

    timings = sum(len(MATMUL_SHAPES) if c.kind == "matmul" else len(c.info["timed_batches"]) for c in cases.values())
    report["memcheck"] = finish_memcheck(memcheck, min(150, clock.left() - timings * clock.cost(2) - 10))
    m = report["memcheck"]
    if not m["ran"]:
        say(f"memcheck: not run: {m['why']}")
    else:
        bad = {k: v["errors"] for k, v in m["cases"].items() if v["errors"]}
        say(f"memcheck (compute-sanitizer, one small step of each case, {m['seconds']:.0f} s): {m['errors']} errors"
            + (f" in {bad}" if bad else "") + (f"; not reached: {', '.join(m['not_reached'])}"
                                                if m["not_reached"] else ""))

    if torch is not None:
        say("timing (medians over interleaved rounds):")
        for k, lib in libraries.items():
            case, entry = cases[k], report["cases"][k]
            if "error" in entry:
                continue
            try:
                if case.kind == "matmul":
                    entry["timing"] = time_matmul(case, lib, torch, clock)
                    continue
                if torch_model(torch, case.info["example"], case.info["constants"]) is None:
                    entry["timing"] = {"skipped": "no PyTorch version of this example"}
                    continue
                entry["timing"] = {}
                for b in case.info["timed_batches"]:
                    if not clock.affordable(2):
                        entry["timing"][f"batch_{b}"] = {"skipped": "over the time budget"}
                        say(f"  {k} batch {b}: skipped (over the time budget)")
                        continue
                    entry["timing"][f"batch_{b}"] = time_train(case, lib, torch, b, clock)
            except Exception as e:
                entry["timing_error"] = f"{type(e).__name__}: {e}"
                say(f"  {k}: timing ERROR {entry['timing_error']}")
    else:
        say("nothing was timed (no PyTorch with CUDA)")

    failed = [k for k, e in report["cases"].items() if "error" in e or k in report["compile"].get("errors", {})
              or not all(map(passed, e.get("checks", [])))]
    if m["ran"] and (m["errors"] or any(v["errors"] for v in m["cases"].values())):
        failed.append("memcheck")
    report["failed"], report["ok"] = failed, not failed
    say_summary(report)
    return report


def device_info() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
        return out or "unknown (nvidia-smi printed nothing)"
    except (OSError, subprocess.SubprocessError):
        return "unknown (no nvidia-smi)"


def torch_info(torch) -> dict | None:
    if torch is None:
        return None
    return {"version": torch.__version__, "device": torch.cuda.get_device_name(),
            "matmul_fp32_precision": torch.get_float32_matmul_precision()}


def say_summary(report: dict) -> None:
    say("summary (every ratio: bmc's time over the other's, lower is better):")
    for k, e in report["cases"].items():
        timing = e.get("timing", {})
        ratios = [f"{label}: {t['ratio']:.2f}" for label, t in timing.items() if "ratio" in t]
        checks = e.get("checks", [])
        state = "ERROR" if "error" in e else "-" if not checks else "ok" if all(map(passed, checks)) else "FAILED"
        other = "cuBLAS" if k.startswith("matmul") else "PyTorch eager"
        say(f"  {k:<24} checks {state:<6} bmc/{other} time " + ("; ".join(ratios) if ratios else "not timed"))
    say(f"checks {'passed' if report['ok'] else 'FAILED: ' + ', '.join(report['failed'])}"
        + ("" if report["fresh"] else "; the bundle is STALE (prepared from other sources; see the first line)"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", type=Path, default=BUNDLE, help=f"the prepared bundle (default {BUNDLE})")
    p.add_argument("--prepare", action="store_true", help="write the bundle (needs bmc) and print the device command")
    p.add_argument("--precision", default="auto", help="with --prepare: fp32,tf32,bf16 or a subset (default auto: "
                                                       "fp32, and tf32 where bmc's CUDA target supports it)")
    p.add_argument("--check-fresh", action="store_true", help="whether the bundle matches the sources here")
    p.add_argument("--cases", help="only these cases, comma-separated (matmul, mlp, ...; mlp takes mlp.tf32 too)")
    p.add_argument("--quick", action="store_true", help="fewer and shorter timing rounds, one check batch")
    p.add_argument("--budget", type=float, help="seconds for the whole run (default 240, --quick 120; 300 at most)")
    p.add_argument("--no-compile", action="store_true", help="skip nvcc (a dry run of the rest where no GPU is)")
    p.add_argument("--json", type=Path, help="where to write the results (default BUNDLE/results.json)")
    p.add_argument("--memcheck-child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    only = args.cases.split(",") if args.cases else None
    if args.memcheck_child:
        return memcheck_child(args.memcheck_child)
    if args.prepare:
        info = prepare(args.bundle, args.precision, only)
        size = sum(f.stat().st_size for f in args.bundle.rglob("*") if f.is_file())
        say(f"wrote {args.bundle}: {len(info['cases'])} cases ({', '.join(info['cases'])}), {size / 2**20:.1f} MiB, "
            f"precisions {', '.join(info['precisions'])}, sources {info['sources']['sha256'][:12]}")
        try:
            command, carry = device_call(args.bundle)
        except ValueError:
            say(f"warning: {args.bundle} is outside the repository: it cannot travel to the device machine")
            return 0
        say("the device run (one call; at most 4 minutes of work, about 4 to 5 of device time with the machine's "
            "start):")
        say(f"  run(command={json.dumps(command)}, carry={json.dumps(carry)}, timeout_s={DEVICE_TIMEOUT_S})")
        say(f"  or --quick (2 minutes of work): run(command={json.dumps(device_call(args.bundle, quick=True)[0])}, "
            f"carry={json.dumps(carry)}, timeout_s=300)")
        say("  (prepare again after any change to bmc/, backends/, grammar/ or examples/: the device side checks)")
        return 0
    if not (args.bundle / "bundle.json").exists():
        say(f"error: no bundle at {args.bundle}. Run `python benchmarks/gpu_check.py --prepare` where bmc is "
            "installed, then the device command it prints (with carry=[\"build/gpu_bundle\"])")
        return 2
    if args.check_fresh:
        fresh, changed = freshness(args.bundle)
        say(f"{args.bundle}: " + ("fresh" if fresh else "STALE: " + ", ".join(changed[:20])))
        return 0 if fresh else 3
    budget = min(args.budget or (120 if args.quick else 240), 300)
    start = time.perf_counter()
    report = run(args.bundle, args.quick, budget, only, not args.no_compile)
    report["elapsed_s"] = time.perf_counter() - start
    text = json.dumps(report, indent=1, default=float)
    targets = [args.json or args.bundle / "results.json"]
    if os.environ.get("OUT"):
        targets.append(Path(os.environ["OUT"]) / "gpu_check.json")
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    say(f"results in {', '.join(map(str, targets))} ({report['elapsed_s']:.0f} s)")
    if "skipped" not in report and not report["ok"]:
        return 1
    return 0 if report["fresh"] or "skipped" in report else 3


if __name__ == "__main__":
    sys.exit(main())
