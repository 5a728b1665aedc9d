"""benchmarks/gpu_check.py where there is no GPU: the bundle it prepares (every example, small, with the sources' hash),
the freshness check, the run without a device (no lark, no bmc: as on the GPU machine), every case's NumPy reference,
the PyTorch versions of the examples, the timing arithmetic and the memcheck plumbing. The device-side checks
themselves (NumPy agreement, two runs bit for bit, CUDA graph replay against direct launches) run here on the CPU
emulator's build of the same model.cu (slow: g++).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.bm"))
# as on the GPU machine: neither lark nor bmc importable
WITHOUT_BMC = ("import runpy, sys; sys.modules['lark'] = sys.modules['bmc'] = None; sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gpu_check = load_script()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpu") / "bundle"
    return path, gpu_check.prepare(path)


def run_script(*args: str, cwd: Path, out: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OUT": str(out) if out else ""}
    return subprocess.run([sys.executable, "-c", WITHOUT_BMC, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


# ---- the bundle -----------------------------------------------------------------------------------------------------


def test_bundle_holds_every_example_and_is_small(bundle):
    path, info = bundle
    fp32 = [c for c in info["cases"] if "." not in c]
    assert sorted(fp32) == sorted(["matmul", *EXAMPLES]) and fp32[:3] == ["matmul", "mlp", "cnn"]
    for name in info["cases"]:
        case = gpu_check.Case(path, name)
        assert (case.dir / "model.cu").read_text().strip() and case.manifest["functions"]
        if case.kind == "train":
            assert (case.base / "reference.py").exists() and case.arrays("params")
            assert case.info["timed_batches"] and case.info["inputs"]
    variants = {c.split(".")[1] for c in info["cases"] if "." in c}
    assert variants == set(info["precisions"]) - {"fp32"}
    if "tf32" in gpu_check.supported_precisions():  # auto: tf32 where bmc's CUDA target offers it
        assert "tf32" in info["precisions"] and {"matmul.tf32", "mlp.tf32", "cnn.tf32"} <= set(info["cases"])
        assert gpu_check.Case(path, "mlp.tf32").manifest["precision"] == "tf32"
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    assert size < 24 * 2**20, f"{size / 2**20:.1f} MiB: the device copy is limited to 64 MiB, the tree included"


def test_inputs_get_data_their_consumers_accept(bundle):
    path, _ = bundle
    specs = {name: {s["name"]: s for s in gpu_check.Case(path, name).info["inputs"]} for name in EXAMPLES}
    assert specs["mlp"]["label"]["high"] == 10 and specs["mlp"]["image"]["kind"] == "unit"
    assert specs["char_lm"]["tokens"]["high"] == specs["char_lm"]["next"]["high"] == 96  # vocab
    assert specs["logistic_regression"]["y"]["high"] == 2
    assert specs["linear_regression"]["y"]["kind"] == "normal"
    char_lm = gpu_check.Case(path, "char_lm").info
    assert char_lm["check_dims"] == {"T": 64} and char_lm["timed_dims"] == {"T": 128}  # the model's context
    batch = gpu_check.make_batch(char_lm["inputs"], {"N": 3, "T": 5}, np.random.default_rng(0))
    assert batch["tokens"].shape == (3, 5) and batch["tokens"].dtype == np.int64 and batch["tokens"].max() < 96


def test_zero_gradient_parameters_are_found_and_left_out(bundle):
    """A convolution's bias before batch norm and attention's key bias: gradients of rounding noise; the running
    means after those convolutions follow the biases."""
    path, _ = bundle
    info = {name: gpu_check.Case(path, name).info for name in EXAMPLES}
    assert set(info["cnn"]["zero_gradient"]) == {"c1.conv2d.b", "c2.conv2d.b"}
    assert set(info["cnn"]["follow_zero_gradient"]) >= {"c1.batch_norm.running_mean"}
    assert set(info["vit"]["zero_gradient"]) == {"h.0.a.attention.k.b", "h.1.a.attention.k.b"}
    assert info["mlp"]["zero_gradient"] == {} and info["lstm"]["zero_gradient"] == {}


def test_every_numpy_reference_in_the_bundle_runs(bundle):
    path, info = bundle
    for name in info["cases"]:
        case = gpu_check.Case(path, name)
        if case.kind == "train" and case.precision == "fp32":
            assert math.isfinite(gpu_check.reference_step(case)), name


# ---- freshness ------------------------------------------------------------------------------------------------------


def test_a_fresh_bundle_is_fresh(bundle):
    path, info = bundle
    assert info["sources"]["sha256"] == gpu_check.digest(gpu_check.source_hashes())
    assert gpu_check.freshness(path) == (True, [])


def test_freshness_names_what_changed(tmp_path):
    root = tmp_path / "repo"
    for rel in ("bmc/a.py", "backends/cuda/templates/model.cu.j2", "examples/mlp.bm", "grammar/bm.lark"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    hashes = gpu_check.source_hashes(root)
    assert sorted(hashes) == ["backends/cuda/templates/model.cu.j2", "bmc/a.py", "examples/mlp.bm", "grammar/bm.lark"]
    (bundle / "bundle.json").write_text(json.dumps({"format": gpu_check.FORMAT, "sources": {
        "sha256": gpu_check.digest(hashes), "files": hashes}}))
    assert gpu_check.freshness(bundle, root) == (True, [])
    (root / "bmc/__pycache__").mkdir()
    (root / "bmc/__pycache__/a.cpython-311.pyc").write_bytes(b"\0")  # bytecode does not travel: not a source
    assert gpu_check.freshness(bundle, root) == (True, [])
    (root / "backends/cuda/templates/model.cu.j2").write_text("edited")
    (root / "examples/new.bm").write_text("model m() {}")
    (root / "grammar/bm.lark").unlink()
    fresh, changed = gpu_check.freshness(bundle, root)
    assert not fresh and changed == ["changed backends/cuda/templates/model.cu.j2", "new examples/new.bm",
                                     "removed grammar/bm.lark"]


def test_every_hashed_source_travels_to_the_device():
    """The device side hashes the tree that travelled (tracked and untracked-not-ignored files): a git-ignored file
    under the hashed folders would make every bundle look stale there."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = "\n".join(gpu_check.source_hashes())
    ignored = subprocess.run(["git", "check-ignore", "--stdin"], input=files, capture_output=True, text=True, cwd=ROOT)
    assert ignored.stdout.strip() == ""


def test_the_device_command_and_carry():
    command, carry = gpu_check.device_call(gpu_check.BUNDLE)
    assert command == "PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py" and carry == ["build/gpu_bundle"]
    assert gpu_check.device_call(ROOT / "build" / "other", quick=True) == (
        "PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --bundle build/other --quick", ["build/other"])
    ignored = subprocess.run(["git", "check-ignore", "-q", "build/gpu_bundle"], cwd=ROOT) if shutil.which("git") \
        else None
    assert ignored is None or ignored.returncode == 0  # ignored by git: it travels only when carried


# ---- the run without a GPU --------------------------------------------------------------------------------------


def test_without_a_gpu_it_says_nothing_was_timed_and_exits_0(bundle, tmp_path):
    path, _ = bundle
    result = run_script("--bundle", str(path), "--quick", "--no-compile", cwd=tmp_path, out=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    if "skipped" not in report:
        pytest.skip("a CUDA device is present")
    assert "nothing ran on a GPU and nothing was timed" in result.stdout and ": fresh" in result.stdout
    assert (tmp_path / "gpu_check.log").read_text().splitlines()[0] == result.stdout.splitlines()[0]
    losses = {k: v["numpy_reference_loss"] for k, v in report["cases"].items() if "numpy_reference_loss" in v}
    assert sorted(losses) == EXAMPLES and all(map(math.isfinite, losses.values()))


def test_a_stale_bundle_is_named_stale(bundle, tmp_path):
    path, _ = bundle
    stale = tmp_path / "bundle"
    shutil.copytree(path, stale, ignore=shutil.ignore_patterns("results.json", "run"))
    info = json.loads((stale / "bundle.json").read_text())
    info["sources"]["files"]["examples/mlp.bm"] = "0" * 64
    (stale / "bundle.json").write_text(json.dumps(info))
    checked = run_script("--bundle", str(stale), "--check-fresh", cwd=tmp_path)
    assert checked.returncode == 3 and "STALE: changed examples/mlp.bm" in checked.stdout
    result = run_script("--bundle", str(stale), "--quick", "--no-compile", "--cases", "mlp", cwd=tmp_path)
    assert "STALE" in result.stdout.splitlines()[0] and "changed examples/mlp.bm" in result.stdout


def test_no_bundle_is_a_clear_error(tmp_path):
    result = run_script("--bundle", str(tmp_path / "none"), cwd=tmp_path)
    assert result.returncode == 2 and "--prepare" in result.stdout


@pytest.mark.slow
def test_without_a_gpu_it_compiles_every_case(bundle, tmp_path):
    from bmc.backends.cuda import nvcc

    if nvcc.find_nvcc() is None:
        pytest.skip("nvcc (the CUDA toolkit) is not installed")
    path, info = bundle
    result = run_script("--bundle", str(path), "--quick", cwd=tmp_path, out=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["compile"]["errors"] == {} and set(report["compile"]["kernels"]) == set(info["cases"])
    assert all(spills == {} for spills in report["compile"]["spills"].values())


# ---- the PyTorch versions and the timing arithmetic -----------------------------------------------------------------


def test_the_pytorch_versions_have_the_examples_parameters(bundle):
    torch = pytest.importorskip("torch")
    path, _ = bundle
    for name in EXAMPLES:
        case = gpu_check.Case(path, name)
        model, loss_fn = gpu_check.torch_model(torch, name, case.info["constants"])
        optimizer = gpu_check.torch_optimizer(torch, model.parameters(), case.info["optimizer"])
        g = torch.Generator().manual_seed(0)
        feeds = {s["name"]: gpu_check.torch_data(torch, s, {"N": 3, **case.info["timed_dims"]}, g, "cpu")
                 for s in case.info["inputs"]}
        loss = loss_fn(model.train(), feeds)
        loss.backward()
        optimizer.step()
        assert math.isfinite(loss.item()), name
        trainable = sum(v.size for k, v in case.arrays("params").items() if "running" not in k)
        assert sum(p.numel() for p in model.parameters()) == trainable, name


def test_timing_rounds_are_sized_and_ratios_say_their_direction():
    clock = gpu_check.Clock(budget=100, quick=True)
    calls = {"bmc": [], "torch_eager": []}

    def system(name, per_step):
        def run(steps):
            calls[name].append(steps)
            return steps * per_step
        return run

    timing = clock.time({"bmc": system("bmc", 1e-3), "torch_eager": system("torch_eager", 2e-3)})
    assert timing["steps_per_round"] == 25  # 0.05 s per round at the slower system's 2 ms per step
    assert calls["bmc"] == [2, 3, 25, 25, 25] and timing["rounds"] == 3
    assert timing["bmc"]["median_ms"] == pytest.approx(1.0) and timing["torch_eager"]["median_ms"] == pytest.approx(2)
    ratio, line = gpu_check.ratio_line(timing, "bmc", "torch_eager", "bmc/PyTorch eager step time")
    assert ratio == pytest.approx(0.5) and "bmc/PyTorch eager step time 0.50 (lower is better" in line
    assert gpu_check.Clock(budget=5, quick=False).affordable(2) is False


# ---- the device-side checks on the CPU emulator's build ----------------------------------------------------------


def emulated(case):
    from tests.cuda_emulator import emulate

    if emulate.compiler() is None:
        pytest.skip("no g++ for the CUDA emulator")
    runtime = gpu_check.load_by_path("runtime")
    return emulate.build(case.source()), runtime


@pytest.mark.slow
@pytest.mark.parametrize(("name", "batch"), [("mlp", 5), ("linear_regression", 37), ("cnn", 3)])
def test_the_checks_pass_on_the_emulator(bundle, name, batch):
    path, _ = bundle
    case = gpu_check.Case(path, name)
    library, runtime = emulated(case)
    check = gpu_check.check_train(case, runtime.Library(library, case.manifest), batch)
    assert check["agrees"] and check["bit_identical"], check
    assert check["graph_vs_direct_identical"] in (True, None)
    assert check["loss_max_rel_diff"] < 1e-5 and len(check["losses_bmc"]) == 3
    if name == "cnn":
        assert {"c1.conv2d.b", "c1.batch_norm.running_mean"} <= set(check["not_compared"])


FAKE_SANITIZER = """#!/bin/sh
while [ "$1" != "--print-limit" ]; do shift; done
shift 2
"$@"
rc=$?
{planted}echo "========= ERROR SUMMARY: {count} errors"
exit $rc
"""


@pytest.mark.slow
@pytest.mark.parametrize("planted", [False, True])
def test_memcheck_runs_each_case_and_attributes_errors(bundle, tmp_path, planted):
    """The memcheck child run under a stand-in for compute-sanitizer (the emulator's library): each case reached and
    finished; an error the sanitizer reports is counted against the case it came in."""
    path, _ = bundle
    case = gpu_check.Case(path, "mlp")
    library, _ = emulated(case)
    tool = tmp_path / "compute-sanitizer"
    tool.write_text(FAKE_SANITIZER.format(
        planted='echo "========= Invalid __global__ write of size 4 bytes"\n' if planted else "",
        count=int(planted)))
    tool.chmod(0o755)
    started = gpu_check.start_memcheck(path, {"mlp": library, "linear_regression": library}, tmp_path, str(tool))
    result = gpu_check.finish_memcheck(started, timeout=300)
    assert result["ran"] and result["not_reached"] == ["linear_regression"]  # the wrong library: reported
    assert result["cases"]["mlp"]["finished"] and "failure" in result["cases"]["linear_regression"]
    assert result["errors"] == int(planted) and result["cases"]["linear_regression"]["errors"] == int(planted)


@pytest.mark.slow
def test_the_device_run_on_the_emulator(bundle, monkeypatch, capsys):
    """The whole device side as on a GPU, with the emulator's g++ build standing in for nvcc's and its 'device'
    for the GPU: libraries loaded, each case checked (NumPy, bit for bit, graphs against direct launches), the
    summary printed; no PyTorch with CUDA here, so nothing is timed, and it says so."""
    from tests.cuda_emulator import emulate

    if emulate.compiler() is None:
        pytest.skip("no g++ for the CUDA emulator")
    path, _ = bundle
    real = gpu_check.load_by_path

    class Built:
        def __init__(self, source):
            self.path, self.kernels, self.cached = emulate.build(source), {}, False

        def spills(self):
            return {}

    def load(name):
        module = real(name)
        if name == "runtime":
            module.require_device = lambda: None
        else:
            module.find_nvcc = lambda: "g++"
            module.compile_library = Built
        return module

    monkeypatch.setattr(gpu_check, "load_by_path", load)
    monkeypatch.setattr(gpu_check, "start_memcheck", lambda *args: None)
    monkeypatch.delenv("OUT", raising=False)
    report = gpu_check.run(path, quick=True, only=["mlp", "linear_regression"])
    out = capsys.readouterr().out
    assert report["ok"], out
    assert set(report["cases"]) >= {"mlp", "linear_regression"}
    assert all(gpu_check.passed(c) for e in report["cases"].values() for c in e["checks"])
    assert "memcheck: not run: compute-sanitizer is not installed" in out
    assert "checks passed" in out and "mlp" in out.split("summary")[1]
    assert "bmc/PyTorch eager time not timed" in out or "nothing was timed" in out
