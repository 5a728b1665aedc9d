"""The CUDA backend's train step in two halves (`gradients`, then `apply`: what data-parallel training runs, combining
the workers' gradients between the two), in the CPU emulator (tests/cuda_emulator) and under nvcc.

* `CudaModule.gradients` returns what the NumPy module's `gradients` returns (loss, outputs, 'grad/<name>') and
  updates the running statistics, on the device and in `params`, as the NumPy module does;
* `gradients` then `apply` over a few steps gives what the CUDA and the NumPy `train_step` give;
* the gradient buffers are the host's: two workers' gradients and running statistics combined on the host and
  applied give what two NumPy workers give, and the same parameters on both workers;
* the halves reuse train_step's kernels, and the generated source compiles for sm_90 without spills.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from bmc.backends import cuda
from bmc.backends.cuda import build as cuda_build
from bmc.backends.cuda import nvcc
from bmc.backends.cuda.runtime import CudaError, Library
from bmc.backends.numpy import compile_function

import bmc
from bmc.passes.pipeline import optimize
from bmc.runtime import load_source
from bmc.train.config import OptimizerConfig
from bmc.train.step import apply_graph, gradients_graph, train_graph
from tests.cuda_emulator import emulate
from tests.test_cuda_emulator import NUMPY, assert_close, feeds_for, rel_norm, take_updates
from tests.test_model_gradients import small_model

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["mlp", "cnn", "lstm"]
emulator = pytest.mark.skipif(emulate.compiler() is None, reason="no g++ for the CUDA emulator")


def split_config(model: bmc.Model):
    """The model's train block; the CNN with momentum SGD, as test_cuda_emulator.py compares it (its convolutions'
    biases before batch norm have a gradient that is rounding noise, which Adam would turn into steps of size lr)."""
    config = model.compiled.config
    if model.compiled.name == "cnn":
        config = config.override(optimizer="sgd", lr=0.05)
        config.optimizer = OptimizerConfig("sgd", {**config.optimizer.args, "momentum": 0.9})
    return config


@pytest.fixture(scope="module", params=MODELS)
def split(request):
    """(model, library, graphs): the model at test sizes; forward, train_step and its two halves in one model.cu
    for the emulator (`build.program`'s, where the train block is used as it is); the graphs of those functions."""
    if emulate.compiler() is None:
        pytest.skip("no g++ for the CUDA emulator")
    model = small_model(ROOT / f"examples/{request.param}.bm", request.param)
    c = model.compiled
    config = split_config(model)
    if config is c.config:
        prog = cuda_build.program(model)
        graphs = {"train_step": c.train_step(), "gradients": c.gradients(), "apply": c.apply()}
    else:
        graphs = {"train_step": optimize(train_graph(c.model, config)),
                  "gradients": optimize(gradients_graph(c.model, config)),
                  "apply": optimize(apply_graph(c.model, config))}
        prog = cuda.generate(c.name, f"{c.name}.bm", "", {"forward": c.inference(), **graphs})
    return model, Library(emulate.build(prog.source), prog.manifest), graphs


def hyper_values(graph, step: int, lr: float) -> list:
    """Each hyper input of a graph in order: the dropout seed (the same for every function of a step), or lr."""
    return [np.asarray(step + 11 if v.type.dtype == "i64" else lr, NUMPY[v.type.dtype])
            for v in graph.inputs_with_role("hyper")]


def batches(model, graph, steps: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [feeds_for(graph, rng, 5 if model.compiled.name != "mlp" else 37) for _ in range(steps)]


@pytest.mark.slow
@emulator
def test_gradients_match_the_numpy_module(split):
    model, library, graphs = split
    module = cuda_build.CudaModule(library)
    reference = load_source(model.generate("numpy", train=True))
    params, _ = model.init_params(0)
    host = {k: v.copy() for k, v in params.items()}  # the NumPy module updates running statistics in place
    for step, batch in enumerate(batches(model, graphs["gradients"], 2, 1)):
        hyper = hyper_values(graphs["gradients"], step, 0.0)
        got = module.gradients(params, batch, *hyper)
        want = reference.gradients(host, batch, *hyper)
        assert set(got) == set(want) and any(k.startswith("grad/") for k in got)
        assert abs(got["loss"] - float(want["loss"])) <= 1e-5 * max(1.0, abs(float(want["loss"])))
        for key in want:
            assert_close(np.asarray(got[key]), want[key], f"{key} at step {step}")
    for name, value in host.items():  # the running statistics: updated on the device, and in params as in NumPy
        assert rel_norm(module.session.read(name), value, floor=1e-2) < 1e-4, name
        assert rel_norm(params[name], value, floor=1e-2) < 1e-4, name


@pytest.mark.slow
@emulator
def test_gradients_then_apply_match_train_step_on_cuda_and_numpy(split):
    model, library, graphs = split
    config = split_config(model)
    lr = config.optimizer.lr
    whole, halves = cuda_build.CudaModule(library), cuda_build.CudaModule(library)
    train = compile_function(graphs["train_step"])
    params, _ = model.init_params(0)
    state = {v.name: np.zeros(v.type.shape, NUMPY[v.type.dtype])
             for v in graphs["train_step"].inputs_with_role("state")}
    p_whole, s_whole = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in state.items()}
    p_half, s_half = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in state.items()}
    for step, batch in enumerate(batches(model, graphs["train_step"], 3, 2)):
        want = train({**batch, **params, **state,
                      **dict(zip(whole.HYPER, hyper_values(graphs["train_step"], step, lr), strict=True))})
        take_updates(want, params, state)
        got = whole.train_step(p_whole, s_whole, batch, *hyper_values(graphs["train_step"], step, lr))
        grads = halves.gradients(p_half, batch, *hyper_values(graphs["gradients"], step, lr))
        assert halves.apply(p_half, s_half, grads, *hyper_values(graphs["apply"], step, lr)) == {}
        loss = float(want["loss"])
        for what, value in (("train_step", got["loss"]), ("gradients", grads["loss"])):
            assert abs(value - loss) <= 1e-5 * max(1.0, abs(loss)), f"{what} loss at step {step}"
        for key in (k for k in want if "/" not in k and k != "loss"):
            assert_close(grads[key], got[key], f"{key} at step {step}")
    for name, value in {**params, **state}.items():
        split_value, whole_value = halves.session.read(name), whole.session.read(name)
        assert rel_norm(split_value, whole_value, floor=1e-2) < 1e-4, f"{name}: halves against train_step"
        assert rel_norm(split_value, value, floor=1e-2) < 1e-4, f"{name}: halves against NumPy"


def numpy_halves(graphs: dict):
    """gradients() and apply() for the given graphs with the NumPy module's convention (the reference of a train
    block other than the model's own)."""
    gradients, update = compile_function(graphs["gradients"]), compile_function(graphs["apply"])
    hyper_of = {k: [v.name for v in graphs[k].inputs_with_role("hyper")] for k in ("gradients", "apply")}

    def write_back(out: dict, params: dict, state: dict) -> dict:
        take_updates(out, params, state)
        return {k: v for k, v in out.items() if not k.startswith(("params/", "state/"))}

    def run_gradients(params, batch, *hyper):
        return write_back(gradients({**params, **batch, **dict(zip(hyper_of["gradients"], hyper, strict=True))}),
                          params, {})

    def run_apply(params, state, grads, *hyper):
        return write_back(update({**params, **state, **grads, **dict(zip(hyper_of["apply"], hyper, strict=True))}),
                          params, state)

    return run_gradients, run_apply


def data_parallel_step(workers: list[tuple], shards: list[dict], stats: list[str], hyper) -> None:
    """One step of data-parallel training, as bmc/train/replicas.py takes it: each worker (gradients, apply,
    params, state) on its shard; gradients and running statistics weighted by the shard's rows and summed on the
    host (the all-reduce); the sums written back into every worker's params and applied."""
    rows = [len(next(iter(shard.values()))) for shard in shards]
    weights = [np.float32(n / sum(rows)) for n in rows]
    outs = [gradients(params, shard, *hyper("gradients", r))
            for r, ((gradients, _, params, _), shard) in enumerate(zip(workers, shards, strict=True))]
    grads = {k: sum(w * out[k] for w, out in zip(weights, outs, strict=True)) for k in outs[0] if k.startswith("grad/")}
    for name in stats:
        combined = sum(w * worker[2][name] for w, worker in zip(weights, workers, strict=True))
        for worker in workers:
            worker[2][name] = combined.astype(worker[2][name].dtype)
    for _, update, params, state in workers:
        update(params, state, grads, *hyper("apply", 0))


@pytest.mark.slow
@emulator
def test_two_workers_combining_on_the_host(split):
    """Two workers (two sessions on one library) against the same two workers in NumPy; both CUDA workers end
    with the same parameters, bit for bit."""
    model, library, graphs = split
    lr = split_config(model).optimizer.lr
    params, _ = model.init_params(0)
    state = {v.name: np.zeros(v.type.shape, NUMPY[v.type.dtype]) for v in graphs["apply"].inputs_with_role("state")}

    def copies() -> tuple[dict, dict]:
        return {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in state.items()}

    modules = [cuda_build.CudaModule(library) for _ in range(2)]
    on_cuda = [(m.gradients, m.apply, *copies()) for m in modules]
    on_numpy = [(*numpy_halves(graphs), *copies()) for _ in range(2)]
    stats = modules[0].functions["gradients"]["updates"]
    for step, batch in enumerate(batches(model, graphs["gradients"], 2, 3)):
        n = len(next(iter(batch.values())))
        shards = [{k: v[:n // 2] for k, v in batch.items()}, {k: v[n // 2:] for k, v in batch.items()}]

        def hyper(function: str, rank: int, step: int = step) -> list:
            return hyper_values(graphs[function], step * 2 + rank, lr)  # each worker its own dropout key

        for workers in (on_cuda, on_numpy):
            data_parallel_step(workers, shards, stats, hyper)
    want_params, want_state = on_numpy[0][2], on_numpy[0][3]
    for name in {**params, **state}:
        first, second = (m.session.read(name) for m in modules)
        assert np.array_equal(first, second), f"{name}: the workers differ"
        want = want_params[name] if name in want_params else want_state[name]
        assert rel_norm(first, want, floor=1e-2) < 1e-4, name


def emulated_mlp() -> tuple:
    """The MLP (features 100, hidden 48) and its CUDA library built for the emulator; skips without g++."""
    if emulate.compiler() is None:
        pytest.skip("no g++ for the CUDA emulator")
    model = bmc.compile(ROOT / "examples/mlp.bm", defines={"features": 100, "hidden": 48})
    prog = cuda_build.program(model)
    return model, Library(emulate.build(prog.source), prog.manifest)


@pytest.fixture(scope="module")
def mlp():
    return emulated_mlp()


@pytest.mark.slow
@emulator
def test_gradient_buffers_are_the_hosts(mlp):
    """What gradients() returns is what the device's buffers hold, and apply() takes what the host writes."""
    model, library = mlp
    module, other = cuda_build.CudaModule(library), cuda_build.CudaModule(library)
    params, state = model.init_params(0)
    p2, s2 = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in state.items()}
    rng = np.random.default_rng(5)
    batch = {"image": rng.random((16, 100), dtype=np.float32), "label": rng.integers(0, 10, 16)}
    grads = module.gradients(params, batch)
    for name in module.GRADS:
        assert np.array_equal(module.session.read(name), grads[name]), name
    doubled = {k: 2 * grads[k] for k in module.GRADS}
    module.apply(params, state, doubled, np.float32(1e-2))  # Adam's step is scale-free, except through eps
    other.gradients(p2, {k: np.concatenate([v, v]) for k, v in batch.items()})  # the same mean gradient
    other.apply(p2, s2, {k: 2 * other.session.read(k) for k in other.GRADS}, np.float32(1e-2))
    for name in (*module.PARAMS, *module.STATE):
        assert rel_norm(module.session.read(name), other.session.read(name)) < 1e-5, name


@pytest.mark.slow
@emulator
def test_gradients_without_outputs_and_a_missing_gradient(mlp):
    model, library = mlp
    module = cuda_build.CudaModule(library, outputs=False)
    params, state = model.init_params(1)
    batch = {"image": np.ones((5, 100), np.float32), "label": np.arange(5)}
    grads = module.gradients(params, batch)
    assert sorted(grads) == sorted(["loss", *module.GRADS]) and isinstance(grads["loss"], float)
    with pytest.raises(CudaError, match=r"apply needs the gradients grad/h\.W"):
        module.apply(params, state, {k: v for k, v in grads.items() if k != "grad/h.W"}, np.float32(1e-3))


# ---- the generated source: what the halves add, and nvcc ---------------------------------------------------------


def launched(source: str, function: str) -> set[str]:
    body = source[source.index(f"static int run_{function}("):]
    return set(re.findall(r"BMC_LAUNCH\((\w+),", body[:body.index("return bmc_finish")]))


def test_halves_are_in_the_manifest_and_reuse_train_steps_kernels():
    prog = cuda_build.program(bmc.compile(ROOT / "examples/mlp.bm"))
    functions = {f["name"]: f for f in prog.manifest["functions"]}
    assert [o["name"] for o in functions["gradients"]["outputs"]] == [
        "loss", "probs", "grad/h.W", "grad/h.b", "grad/logits.W", "grad/logits.b"]
    assert functions["gradients"]["hyper"] == [] and [h["name"] for h in functions["apply"]["hyper"]] == ["lr"]
    assert functions["apply"]["inputs"] == [] and functions["apply"]["outputs"] == []
    grads = {t["name"]: t for t in prog.manifest["tensors"] if t["role"] == "grad"}
    assert grads["grad/h.W"]["shape"] == [784, 128] and len(grads) == 4
    train, gradients, update = (launched(prog.source, f) for f in ("train_step", "gradients", "apply"))
    assert update <= train  # the optimizer's kernels are train_step's
    new = {k for k in gradients - train if "cross_entropy_rows" not in k}  # that one names its own launch in errors
    assert not new, new


@pytest.mark.parametrize("name", MODELS)
def test_gradients_are_computed_in_the_buffers_apply_reads(name):
    """No gradient is copied into its buffer at the end (a weight's gradient that is a reshape, as the LSTM's
    stacked gate weights' is, is computed there too)."""
    source = cuda_build.program(bmc.compile(ROOT / f"examples/{name}.bm")).source
    run = source[source.index("static int run_gradients("):]
    assert "cudaMemcpyAsync(ctx->tensors" not in run[:run.index("return bmc_finish")]


@pytest.mark.slow
@pytest.mark.skipif(nvcc.find_nvcc() is None, reason="nvcc (the CUDA toolkit) is not installed")
@pytest.mark.parametrize("name", MODELS)
def test_halves_compile_for_sm90_without_spills(name):
    """The same source as test_cuda_nvcc.py compiles (so the compile is usually cached)."""
    result = nvcc.compile_library(cuda_build.program(bmc.compile(ROOT / f"examples/{name}.bm")).source)
    assert result.path.exists() and result.kernels
    assert all(stats.get("registers", 0) <= 255 for stats in result.kernels.values())
    assert result.spills() == {}, f"ptxas reports spills in {sorted(result.spills())}"
