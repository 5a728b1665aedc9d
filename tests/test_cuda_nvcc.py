"""nvcc on the generated model.cu: every example compiles for Hopper (sm_90, with compute_90 PTX) with no register
spills; nvcc errors name the .bm statement; a CUDA build loads here and says clearly that there is no driver or
device. On a machine with a GPU the same build also runs and is checked against the NumPy backend.

Skips with a reason where nvcc is absent. Compiles are cached by content hash (~/.cache/bmc/cuda, or BMC_CACHE_DIR):
the first run compiles the ten examples in parallel (a few minutes on two cores), later runs take seconds.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from bmc.backends.cuda import build as cuda_build
from bmc.backends.cuda import nvcc, pointwise
from bmc.backends.cuda.runtime import CudaUnavailableError, Library

import bmc
from bmc import ops
from bmc.runtime import load_source

pytestmark = [pytest.mark.skipif(nvcc.find_nvcc() is None, reason="nvcc (the CUDA toolkit) is not installed"),
              pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.bm"))


@pytest.fixture(scope="module")
def compiled():
    """Every example's forward, train step and evaluation, compiled once (in parallel) for this module."""

    def one(path: Path):
        try:
            return nvcc.compile_library(cuda_build.program(bmc.compile(path)).source)
        except Exception as e:  # reported by the test of that example
            return e

    with ThreadPoolExecutor(max_workers=max(1, min(len(EXAMPLES), os.cpu_count() or 1))) as pool:
        return dict(zip([p.stem for p in EXAMPLES], pool.map(one, EXAMPLES), strict=True))


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_example_compiles_for_sm90_without_spills(compiled, name):
    result = compiled[name]
    if isinstance(result, Exception):
        raise result
    assert result.path.exists() and result.kernels
    assert all(stats.get("registers", 0) <= 255 for stats in result.kernels.values())
    assert result.spills() == {}, f"ptxas reports spills in {sorted(result.spills())}"


def test_nvcc_errors_name_the_bm_statement():
    with pointwise.POINTWISE.replaced(ops.Relu, lambda node, a, ctx: f"bmc_no_such_function({a[0]})"):
        source = cuda_build.program(bmc.compile(ROOT / "examples/mlp.bm", defines={"hidden": 16})).source
    with pytest.raises(nvcc.NvccError, match=r"examples/mlp.bm:7 \(relu\): nvcc: model.cu:\d+: identifier "
                                             r"\"bmc_no_such_function\" is undefined"):
        nvcc.compile_library(source)


@pytest.fixture(scope="module")
def mlp_build(tmp_path_factory):
    """`bmc build examples/mlp.bm --target cuda -o DIR`, through the backend's build function."""
    out = tmp_path_factory.mktemp("build") / "mlp"
    model = bmc.compile(ROOT / "examples/mlp.bm")
    return cuda_build.build(model, out, seed=0), model


def test_build_writes_source_library_and_manifest(mlp_build):
    out, _ = mlp_build
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.cu", "model.so", "params.npz",
                                                    "state.npz"]
    info = json.loads((out / "manifest.json").read_text())
    assert info["target"] == "cuda" and info["cuda"]["arch"] == "sm_90" and info["cuda"]["library"] == "model.so"
    assert "-cudart" in info["cuda"]["nvcc_flags"] and info["cuda"]["ptxas"]
    assert "// bmc: " in (out / "model.cu").read_text()


def gpu_session(library: Library):
    try:
        return library.session()
    except CudaUnavailableError:
        return None


def test_loading_without_a_gpu_is_a_clear_error_not_a_crash(mlp_build):
    out, _ = mlp_build
    info = json.loads((out / "manifest.json").read_text())
    library = Library(out / "model.so", info["cuda"])
    s = gpu_session(library)
    if s is not None:
        pytest.skip("a CUDA device is present (test_gpu_train_steps_match_numpy runs instead)")
    with pytest.raises(CudaUnavailableError, match="no CUDA driver/device: cudaGetDeviceCount says cudaError"):
        library.session()
    with pytest.raises(CudaUnavailableError):
        cuda_build.load(out)


@pytest.mark.parametrize("batch", [64, 37])
def test_gpu_train_steps_match_numpy(mlp_build, batch):
    out, model = mlp_build
    info = json.loads((out / "manifest.json").read_text())
    s = gpu_session(Library(out / "model.so", info["cuda"]))
    if s is None:
        pytest.skip("no CUDA driver or device")
    params, state = model.init_params(0)
    s.load(params, state)
    module = load_source(model.generate("numpy", train=True))
    rng = np.random.default_rng(batch)
    for _ in range(5):
        x, y = rng.random((batch, 784), dtype=np.float32), rng.integers(0, 10, batch)
        want = module.train_step(params, state, {"image": x, "label": y}, np.float32(1e-3))
        got = s.run("train_step", {"image": x, "label": y}, {"lr": 1e-3})
        assert abs(float(got["loss"]) - float(want["loss"])) < 1e-4
    for name, value in params.items():
        assert np.linalg.norm(s.read(name) - value) <= 1e-4 * np.linalg.norm(value), name


def test_gpu_check_script_runs_without_lark(tmp_path):
    """benchmarks/gpu_check.py as on the GPU machine: a prepared bundle, no lark; here it compiles everything and
    exits 0 saying there is no device (on a GPU it checks and times)."""
    import subprocess
    import sys

    script = ROOT / "benchmarks" / "gpu_check.py"
    bundle = tmp_path / "bundle"
    prepared = subprocess.run([sys.executable, str(script), "--prepare", "--bundle", str(bundle)], capture_output=True,
                              text=True, cwd=ROOT)
    assert prepared.returncode == 0, prepared.stderr
    no_lark = ("import runpy, sys; sys.modules['lark'] = None; sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", no_lark, str(script), "--bundle", str(bundle), "--quick"],
                            capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OUT": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    spills = report["compile"]["spills"]
    assert {"matmul", "mlp", "cnn"} <= set(spills) and all(s == {} for s in spills.values()), spills
    assert "skipped" in report or report["ok"]
