"""The CUDA backend's calls as CUDA graphs, and its launch counts.

From the second call of a function with the same symbol values, model.cu captures the call's kernels and copies as a
CUDA graph and replays it (templates/model.cu.j2 `bmc_steps`); the CPU emulator (tests/cuda_emulator) records a
capture and replays it in order, so these tests run the same host code:

* graph-replayed train steps (with a new lr and dropout key every step) match the NumPy backend over several steps,
  for the MLP, the CNN (dropout, batch norm) and the LSTM (scans: host loops of copies and launches);
* a batch-size change mid-run is captured anew, and a graph is never replayed after the arena moved;
* replayed calls equal direct launches bit for bit, with inputs from the host or from device arrays;
* the static launch counts (launches.py, what `bmc build` prints) equal the kernels a direct call launches and the
  nodes its graph holds;
* the emulator's graph API: capture records in order, replay reruns, synchronizing during a capture invalidates it.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from bmc.backends import cuda
from bmc.backends.cuda import build as cuda_build
from bmc.backends.cuda import launches, nvcc
from bmc.backends.cuda.runtime import Library
from bmc.backends.numpy import compile_function

import bmc
from bmc.passes.pipeline import optimize
from bmc.train.step import train_graph
from tests.cuda_emulator import emulate
from tests.test_cuda_emulator import NUMPY, assert_close, feeds_for, rel_norm, take_updates
from tests.test_cuda_split_step import emulated_mlp, split_config
from tests.test_model_gradients import small_model

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.bm"))
emulator = pytest.mark.skipif(emulate.compiler() is None, reason="no g++ for the CUDA emulator")
EMULATED_SMS = 4  # what the emulator's cudaDeviceGetAttribute reports


# ---- the launch counter (no compiler) ------------------------------------------------------------------------------

HOST = """\
static inline unsigned bmc_ceil(long long n, long long d) {  // at least 1
  return n > 0 ? (unsigned)((n + d - 1) / d) : 1u;
}
static inline int bmc_twice(const bmc_ctx* ctx, long long n) {
  if (n > ctx->sm_count) return 1;
  long long s = 2 * n;
  return (int)s;
}
static int steps_f(bmc_ctx* ctx, const long long* dims, void* const* at) {
  const int v_N = (int)dims[0];
  const int v_T = (int)dims[1];
  BMC_LAUNCH(k0_a, 1, 256, 0, ctx->stream)(v_N);
  {
    const int splits = bmc_twice(ctx, bmc_ceil(v_N, 32));
    if (splits > 3) {
      BMC_LAUNCH(k1_split, 1, 256, 0,
                 ctx->stream)(v_N);
      BMC_LAUNCH(k2_sum, 1, 256, 0, ctx->stream)(v_N);
    } else if ((long long)bmc_ceil(v_N, 128) >= ctx->sm_count) {
      BMC_LAUNCH(k3_big, 1, 256, 0, ctx->stream)(v_N);
    } else {
      BMC_LAUNCH(k4_small, 1, 256, 0, ctx->stream)(v_N);
    }
  }
  const int parts = (long long)(v_N) * 32 >= 4096 ? 4 : 1;
  if (parts > 1) {
    BMC_LAUNCH(k5_parts, 1, 256, 0, ctx->stream)(v_N);
  }
  for (int step = 0; step < v_T; ++step) {
    BMC_CUDA(cudaMemcpyAsync(a, b, 4, cudaMemcpyDeviceToDevice, ctx->stream), "scan: a copy");
    BMC_LAUNCH(k0_a, 1, 256, 0, ctx->stream)(v_N);
    BMC_CHECK_LAUNCH(1);
  }
  return 0;
}
"""


def test_the_counter_takes_the_branch_each_call_takes():
    small = launches.count(HOST, "f", [64, 10], sm_count=4)  # twice(2) = 4 splits: the split-K pair
    assert (small.kernels, small.copies, small.exact) == (3 + 10, 10, True)
    assert small.names == {"k0_a", "k1_split", "k2_sum"}
    assert [vars(s) for s in small.scans] == [{"steps": 10, "kernels": 1, "copies": 1}]
    big = launches.count(HOST, "f", [1024, 3], sm_count=4)  # twice(32): 1 split; 8 tiles >= 4 SMs; 4 parts
    assert (big.kernels, big.copies) == (3 + 3, 3) and "k3_big" in big.names and "k5_parts" in big.names
    # on 132 SMs, twice(32) = 64 splits: the pair again
    assert launches.count(HOST, "f", [1024, 3], sm_count=132).names == {"k0_a", "k1_split", "k2_sum", "k5_parts"}
    assert launches.count(HOST, "f", [64, 0], sm_count=1).names == {"k0_a", "k3_big"}  # twice(2) = 1; 1 >= 1 SM


def test_unknown_sizes_count_the_largest_branch_and_leave_scans_out():
    unknown = launches.count(HOST, "f", [None, None], sm_count=4)
    assert not unknown.exact and unknown.kernels == 4 and unknown.copies == 0  # k0, the split pair, k5
    assert [vars(s) for s in unknown.scans] == [{"steps": None, "kernels": 1, "copies": 1}]
    text = launches.describe(launches.report(HOST, [{"name": "f", "symbols": ["N", "T"]}], {}, 4))
    assert "f  at most 4 kernels (scans: 1 kernels + 1 copies per scan step (its length unknown" in text
    text = launches.describe(launches.report(HOST, [{"name": "f", "symbols": ["N", "T"]}], {"N": 64, "T": 10}, 4))
    assert "f  13 kernels + 10 copies (scans: 1 kernels + 1 copies per scan step x 10 steps)" in text


def test_every_example_counts_exactly_at_its_build_batch():
    """Every helper the generated host code calls is read from model.cu, so no branch is unknown (the full-batch
    linear regression has no batch size at build time)."""
    for path in EXAMPLES:
        model = bmc.compile(path)
        prog = cuda_build.program(model)
        counts = cuda_build.launch_report(model, prog)
        assert counts["distinct_kernels"] == prog.source.count('extern "C" __global__ ')
        for name, f in counts["functions"].items():
            assert f["kernels"] >= 1, (path.stem, name)
            if model.compiled.config.batch is not None:
                assert f["exact"], (path.stem, name)
                assert all(s["steps"] is not None for s in f["scans"]), (path.stem, name)


def test_a_build_prints_and_records_its_launches(tmp_path, monkeypatch):
    monkeypatch.setattr(nvcc, "find_nvcc", lambda: None)
    said = []
    out = cuda_build.build(bmc.compile(ROOT / "examples/mlp.bm"), tmp_path / "mlp", require_library=False,
                           log=said.append)
    import json

    recorded = json.loads((out / "manifest.json").read_text())["cuda"]["launches"]
    assert recorded["at"] == {"N": 64} and recorded["graph_launches_per_call"] == 1
    assert set(recorded["functions"]) == {"forward", "train_step", "evaluate", "gradients", "apply"}
    assert said == [launches.describe(recorded)]
    assert "train_step" in said[0] and "distinct kernels" in said[0]


def test_hyper_inputs_are_read_from_device_words():
    """lr and the dropout key reach the kernels as pointers into ctx->hyper, so a replayed graph reads each call's
    values; the host writes them there before the steps run."""
    source = cuda_build.program(bmc.compile(ROOT / "examples/cnn.bm")).source
    steps = source[source.index("static int steps_train_step("):source.index("static int run_train_step(")]
    assert "const int64_t* v_rng = (const int64_t*)(ctx->hyper + 0);" in steps
    assert "const float* v_lr = (const float*)(ctx->hyper + 8);" in steps
    run = source[source.index("static int run_train_step("):]
    assert 'bmc_hyper(ctx, 0, hyper[0], 8, "rng")' in run and "bmc_steps(ctx, 1, graph, steps_train_step" in run
    assert "const int64_t* __restrict__ v_rng" in source and "v_rng[0]" in source


# ---- graphs in the emulator ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["mlp", "cnn", "lstm"])
def compiled(request):
    """(model, train graph, library): forward, train_step and evaluate of the example at test sizes in one model.cu
    for the emulator (the CNN trained with momentum SGD, as the other emulator tests compare it)."""
    if emulate.compiler() is None:
        pytest.skip("no g++ for the CUDA emulator")
    model = small_model(ROOT / f"examples/{request.param}.bm", request.param)
    c = model.compiled
    train = optimize(train_graph(c.model, split_config(model)))
    prog = cuda.generate(c.name, f"{c.name}.bm", "", {"forward": c.inference(), "train_step": train,
                                                      "evaluate": c.evaluation()})
    library = Library(emulate.build(prog.source), prog.manifest)
    library.source = prog.source
    return model, train, library


def _batch(model) -> int:
    return 37 if model.compiled.name == "mlp" else 6


def _feeds(graph, rng, batch: int) -> dict:
    """feeds_for's inputs (made at its batch of 5) repeated along the batch axis to `batch` rows."""
    return {k: np.resize(v, (batch, *v.shape[1:])) for k, v in feeds_for(graph, rng, 5).items()}


def _hyper(graph, step: int, lr: float) -> dict:
    """A new value every step: the dropout key, and lr (decaying, as a schedule would change it)."""
    return {v.name: np.asarray(step + 11 if v.type.dtype == "i64" else lr / (1 + step), NUMPY[v.type.dtype])
            for v in graph.inputs_with_role("hyper")}


def _session(model, library, graphs: bool = True):
    s = library.session()
    s.graphs = graphs
    params, _ = model.init_params(0)
    state = {t["name"]: np.zeros(t["shape"], NUMPY[t["dtype"]]) for t in library.manifest["tensors"]
             if t["role"] == "state"}
    s.load(params, state)
    return s, params, state


def _steps(model, train, s, batches, lr) -> list[dict]:
    return [s.run("train_step", feeds, _hyper(train, step, lr)) for step, feeds in enumerate(batches)]


@pytest.mark.slow
@emulator
def test_replayed_train_steps_match_numpy(compiled):
    model, train, library = compiled
    lr = split_config(model).optimizer.lr
    s, params, state = _session(model, library)
    reference = compile_function(train)
    rng = np.random.default_rng(3)
    steps = 5
    for step in range(steps):
        feeds = _feeds(train, rng, _batch(model))
        hyper = _hyper(train, step, lr)
        want = reference({**feeds, **params, **state, **hyper})
        got = s.run("train_step", feeds, hyper)
        assert abs(float(got["loss"]) - float(want["loss"])) <= 1e-5 * max(1.0, abs(float(want["loss"]))), step
        for key in got:
            assert_close(got[key], want[key], f"{key} at step {step}")
        take_updates(want, params, state)
    for tensor, value in {**params, **state}.items():
        assert rel_norm(s.read(tensor), value, floor=1e-2) < 1e-4, tensor
    stats = s.launch_stats("train_step")
    assert (stats["direct"], stats["captured"], stats["replayed"]) == (1, 1, steps - 1)
    assert stats["graph_kernels"] == stats["direct_kernels"] > 0


@pytest.mark.slow
@emulator
def test_replay_equals_direct_launches_bit_for_bit(compiled):
    model, train, library = compiled
    lr = split_config(model).optimizer.lr
    rng = np.random.default_rng(4)
    batches = [_feeds(train, rng, _batch(model)) for _ in range(4)]
    replayed, _, _ = _session(model, library, graphs=True)
    direct, _, _ = _session(model, library, graphs=False)
    for got, want in zip(_steps(model, train, replayed, batches, lr), _steps(model, train, direct, batches, lr),
                         strict=True):
        assert all(np.array_equal(got[k], want[k]) for k in want)
    for name in library.tensors:
        assert np.array_equal(replayed.read(name), direct.read(name)), name
    for fname in ("forward", "evaluate"):
        graph = {"forward": model.compiled.inference(), "evaluate": model.compiled.evaluation()}[fname]
        feeds = _feeds(graph, rng, _batch(model))
        for _ in range(3):
            got, want = replayed.run(fname, feeds), direct.run(fname, feeds)
            assert all(np.array_equal(got[k], want[k]) for k in want), fname
        assert replayed.launch_stats(fname)["replayed"] == 2 and direct.launch_stats(fname)["replayed"] == 0
    assert direct.launch_stats("train_step")["captured"] == 0


@pytest.mark.slow
@emulator
def test_launch_counts_are_what_the_calls_launch(compiled):
    """launches.py's static count at the emulator's 4 SMs: the kernels of a direct call, and the nodes (kernels and
    copies) of the graph captured from the same call."""
    model, train, library = compiled
    s, _, _ = _session(model, library)
    rng = np.random.default_rng(5)
    graphs = {"forward": model.compiled.inference(), "train_step": train, "evaluate": model.compiled.evaluation()}
    for batch in (_batch(model), 64):
        for fname, graph in graphs.items():
            feeds = _feeds(graph, rng, batch)
            for step in range(2):  # direct, then captured
                s.run(fname, feeds, _hyper(graph, step, 1e-3))
            stats = s.launch_stats(fname)
            dims = [batch if sym == "N" else 3 for sym in library.functions[fname][1]["symbols"]]
            counted = launches.count(library.source, fname, dims, sm_count=EMULATED_SMS)
            assert counted.exact
            assert counted.kernels == stats["direct_kernels"] == stats["graph_kernels"], (fname, batch)
            assert counted.kernels + counted.copies == stats["graph_nodes"], (fname, batch)


@pytest.fixture(scope="module")
def mlp():
    return emulated_mlp()


@pytest.mark.slow
@emulator
def test_a_batch_size_change_is_captured_anew(mlp):
    """Graphs are kept per batch size (the last 4), and each is replayed only with the arena it was captured with:
    after a larger batch grows the arena, a smaller batch's graph is captured again."""
    model, library = mlp
    s = library.session()
    params, state = model.init_params(0)
    s.load(params, state)
    module = compile_function(model.compiled.train_step())
    rng = np.random.default_rng(6)
    sizes = [37, 37, 37, 64, 64, 64, 37, 37, 37, 64]
    for step, n in enumerate(sizes):
        feeds = {"image": rng.random((n, 100), dtype=np.float32), "label": rng.integers(0, 10, n)}
        lr = np.float32(1e-2 / (1 + step))
        want = module({**feeds, **params, **state, "lr": lr})
        got = s.run("train_step", feeds, {"lr": lr})
        assert abs(float(got["loss"]) - float(want["loss"])) < 1e-5 * abs(float(want["loss"])), step
        assert_close(got["probs"], want["probs"], f"probs at step {step} (batch {n})")
        take_updates(want, params, state)
    stats = s.launch_stats("train_step")
    assert stats["captured"] >= 2 and stats["direct"] >= 2
    assert stats["direct"] + stats["replayed"] == len(sizes)
    for name, value in {**params, **state}.items():
        assert rel_norm(s.read(name), value) < 1e-4, name


class DeviceArray:
    """A host array posing as a device array: in the emulator, device memory is host memory."""

    def __init__(self, a: np.ndarray):
        self.a = np.ascontiguousarray(a)
        self.__cuda_array_interface__ = {"shape": self.a.shape, "typestr": self.a.dtype.str,
                                         "data": (self.a.ctypes.data, False), "version": 3, "strides": None}


@pytest.mark.slow
@emulator
def test_device_inputs_are_copied_into_the_graphs_slots(mlp):
    model, library = mlp
    rng = np.random.default_rng(7)
    batches = [{"image": rng.random((37, 100), dtype=np.float32), "label": rng.integers(0, 10, 37)}
               for _ in range(4)]
    sessions = []
    for graphs in (True, False):
        s = library.session()
        s.graphs = graphs
        params, state = model.init_params(0)
        s.load(params, state)
        sessions.append(s)
    on_device, on_host = sessions
    for step, feeds in enumerate(batches):
        got = on_device.run("train_step", {k: DeviceArray(v) for k, v in feeds.items()}, {"lr": 1e-2})
        want = on_host.run("train_step", feeds, {"lr": 1e-2})
        assert all(np.array_equal(got[k], want[k]) for k in want), step
    assert on_device.launch_stats("train_step")["replayed"] == 3


@pytest.mark.slow
@emulator
def test_synchronizing_after_each_kernel_launches_directly(mlp, monkeypatch):
    model, library = mlp
    monkeypatch.setenv("BMC_CUDA_SYNC", "1")
    s = library.session()
    params, state = model.init_params(0)
    s.load(params, state)
    for _ in range(3):
        s.run("train_step", {"image": np.ones((8, 100), np.float32), "label": np.zeros(8, np.int64)}, {"lr": 1e-2})
    assert s.launch_stats("train_step")["replayed"] == 0


# ---- the emulator's graph API on its own ---------------------------------------------------------------------------

PROGRAM = r"""
#include <cuda_runtime.h>
#include <stdio.h>

__global__ void add(int* x, int v) { x[threadIdx.x] += v; }
__global__ void twice(int* x) { x[threadIdx.x] *= 2; }

extern "C" int run(int* out) {
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  int *x, *y;
  cudaMalloc((void**)&x, 4 * sizeof(int));
  cudaMalloc((void**)&y, 4 * sizeof(int));
  cudaMemsetAsync(x, 0, 4 * sizeof(int), s);
  cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
  BMC_LAUNCH(add, 1, 4, 0, s)(x, 3);                                 // recorded, not run
  BMC_LAUNCH(twice, 1, 4, 0, s)(x);
  cudaMemcpyAsync(y, x, 4 * sizeof(int), cudaMemcpyDeviceToDevice, s);
  cudaStreamCaptureStatus status;
  cudaStreamIsCapturing(s, &status);
  out[0] = status == cudaStreamCaptureStatusActive;
  int host = 0;
  out[1] = cudaMemcpyAsync(&host, x, sizeof(int), cudaMemcpyDeviceToHost, s);  // refused, and invalidates
  cudaGraph_t g;
  out[2] = cudaStreamEndCapture(s, &g);
  out[3] = g == NULL;
  cudaGetLastError();
  cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
  BMC_LAUNCH(add, 1, 4, 0, s)(x, 3);
  BMC_LAUNCH(twice, 1, 4, 0, s)(x);
  cudaMemcpyAsync(y, x, 4 * sizeof(int), cudaMemcpyDeviceToDevice, s);
  cudaStreamEndCapture(s, &g);
  size_t nodes = 0;
  cudaGraphGetNodes(g, NULL, &nodes);
  out[4] = (int)nodes;
  cudaMemcpy(&out[5], x, sizeof(int), cudaMemcpyDeviceToHost);       // 0: nothing ran during the capture
  cudaGraphExec_t exec;
  cudaGraphInstantiate(&exec, g, 0);
  cudaGraphDestroy(g);
  cudaGraphLaunch(exec, s);                                          // (0 + 3) * 2
  cudaGraphLaunch(exec, s);                                          // (6 + 3) * 2
  cudaStreamSynchronize(s);
  cudaMemcpy(&out[6], y, sizeof(int), cudaMemcpyDeviceToHost);
  cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
  out[7] = cudaStreamSynchronize(s);                                 // refused during a capture
  void* more = NULL;
  out[8] = cudaMalloc(&more, 4);
  out[9] = cudaStreamEndCapture(s, &g);
  cudaGraphExecDestroy(exec);
  cudaStreamDestroy(s);
  return 0;
}
"""


@pytest.mark.slow
@emulator
def test_the_emulator_records_a_capture_and_replays_it_in_order(tmp_path):
    source, lib = tmp_path / "graphs.cu", tmp_path / "graphs.so"
    source.write_text(PROGRAM)
    subprocess.run([os.environ.get("CXX", "g++"), *emulate.FLAGS, "-I", str(emulate.HERE), "-x", "c++", str(source),
                    "-o", str(lib)], check=True, capture_output=True)
    out = (ctypes.c_int * 10)()
    assert ctypes.CDLL(str(lib)).run(out) == 0
    unsupported, invalidated = 900, 901
    assert list(out) == [1, unsupported, invalidated, 1, 3, 0, 18, unsupported, unsupported, invalidated]
