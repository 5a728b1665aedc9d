"""The CUDA backend's generated source (kernels and host code) run on the CPU through the emulator in
tests/cuda_emulator, against the NumPy backend: forward outputs, gradients and whole train steps.

Each model's model.cu is compiled once per test module with g++ -O1 (and cached by content hash), at tiny sizes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from bmc.backends import cuda
from bmc.backends.cuda import build as cuda_build
from bmc.backends.cuda.runtime import CudaError, CudaUnavailableError, Library
from bmc.backends.numpy import compile_function

import bmc
from bmc.ir import dims
from bmc.passes.pipeline import optimize
from bmc.runtime import load_source
from bmc.train.config import OptimizerConfig
from bmc.train.step import gradient_graph, train_graph
from tests.cuda_emulator import emulate
from tests.test_model_gradients import random_data, small_model

pytestmark = [pytest.mark.skipif(emulate.compiler() is None, reason="no g++ for the CUDA emulator"),
              pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.bm"))
NUMPY = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}


def session(functions: dict, name: str = "model"):
    prog = cuda.generate(name, f"{name}.bm", "", functions)
    s = Library(emulate.build(prog.source), prog.manifest).session()
    s.source = prog.source
    return s


def feeds_for(graph, rng, batch: int) -> dict:
    """Inputs their consumers accept (class indices in range, ...), with N = batch and other symbols 3."""
    out = {}
    for v in graph.inputs_with_role("input", "target"):
        shape = tuple(static * math.prod(batch if s == "N" else 3 for s in syms)
                      for static, syms in map(dims.factors, v.type.shape))
        a = np.asarray(random_data(graph, v, rng))
        a = a.reshape(shape) if a.size == math.prod(shape) else a
        out[v.name] = a.astype(NUMPY[v.type.dtype])
    return out


def assert_close(got: np.ndarray, want: np.ndarray, what: str, rtol: float = 1e-4) -> None:
    """Relative to the tensor's scale: a gradient that is exactly zero in theory (a bias before batch norm) is
    rounding noise in both backends."""
    want = np.asarray(want, dtype=np.float64)
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-2)
    err = float(np.abs(got.astype(np.float64) - want).max(initial=0.0)) / scale
    assert err < rtol, f"{what}: relative error {err:.2e}"


def rel_norm(a: np.ndarray, b: np.ndarray, floor: float = 1e-12) -> float:
    """||a - b|| / ||b||, with ||b|| at least floor * sqrt(size) (a parameter that stays at noise level)."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), floor * math.sqrt(max(np.size(b), 1))))


def take_updates(step: dict, params: dict, state: dict) -> None:
    """A train step's `params/<name>` and `state/<name>` results into the parameter and state dicts (the reference's
    next step starts from them)."""
    for key, value in step.items():
        kind, _, tensor = key.partition("/")
        if kind in ("params", "state"):
            (params if kind == "params" else state)[tensor] = value


# ---- the MLP: train steps at a batch that divides the tiles and one that does not ----------------------------------


@pytest.fixture(scope="module")
def mlp():
    model = bmc.compile(ROOT / "examples/mlp.bm", defines={"features": 100, "hidden": 48})
    c = model.compiled
    s = session({"forward": c.inference(), "train_step": c.train_step(), "evaluate": c.evaluation()}, "mlp")
    return model, s


@pytest.mark.parametrize("batch", [64, 37])
def test_mlp_train_steps_match_numpy(mlp, batch):
    model, s = mlp
    params, state = model.init_params(0)
    s.load(params, state)
    module = load_source(model.generate("numpy", train=True))
    rng = np.random.default_rng(batch)
    for step in range(4):
        x = rng.random((batch, 100), dtype=np.float32)
        y = rng.integers(0, 10, batch)
        want = module.train_step(params, state, {"image": x, "label": y}, np.float32(1e-2))
        got = s.run("train_step", {"image": x, "label": y}, {"lr": 1e-2})
        assert abs(float(got["loss"]) - float(want["loss"])) < 1e-5 * abs(float(want["loss"]))
        assert_close(got["probs"], want["probs"], f"probs at step {step}")
    for name, value in {**params, **state}.items():
        assert rel_norm(s.read(name), value) < 1e-4, name
    x = rng.random((batch, 100), dtype=np.float32)
    assert_close(s.run("forward", {"image": x})["probs"], module.forward(params, x)["probs"], "forward after training")


def test_mlp_loss_only_and_device_resident_params(mlp):
    """Asking for the loss alone returns just it; the parameters stay on the device between calls."""
    model, s = mlp
    params, state = model.init_params(1)
    s.load(params, state)
    x, y = np.ones((5, 100), np.float32), np.arange(5)
    first = s.run("train_step", {"image": x, "label": y}, {"lr": 1e-3}, outputs=["loss"])
    second = s.run("train_step", {"image": x, "label": y}, {"lr": 1e-3}, outputs=["loss"])
    assert list(first) == ["loss"] and first["loss"].shape == ()
    assert float(second["loss"]) < float(first["loss"])
    assert float(s.read("adam.t")) == 2.0


def test_cuda_module_drives_the_training_loop(mlp):
    """CudaModule (the NumPy module's interface) in bmc's own fit loop, against the NumPy module in the same loop."""
    from bmc.train.loop import ArrayTask, Run, fit

    model, s = mlp
    lib = s.library
    rng = np.random.default_rng(3)
    train = {"image": rng.random((40, 100), dtype=np.float32), "label": rng.integers(0, 10, 40)}
    test = {"image": rng.random((9, 100), dtype=np.float32), "label": rng.integers(0, 10, 9)}
    config = model.config.override(epochs=2, batch=16)
    results = []
    for mod in (cuda_build.CudaModule(lib), load_source(model.generate("numpy", train=True))):
        params, state = model.init_params(0)
        task = ArrayTask(train, {}, test, "probs", 10, ("accuracy",), 16)
        history = fit(mod, config, params, state, task, log=lambda _: None, progress=False,
                      run=Run(test_every_epoch=True))
        if isinstance(mod, cuda_build.CudaModule):
            mod.download(params, state)
        results.append((history, params))
    (h_cuda, p_cuda), (h_np, p_np) = results
    assert abs(h_cuda.final.loss - h_np.final.loss) < 1e-5
    assert h_cuda.final.test == h_np.final.test and h_np.final.test
    for name in p_np:
        assert rel_norm(p_cuda[name], p_np[name]) < 1e-4, name


# ---- every example: forward outputs and gradients -------------------------------------------------------------------


def example_params():
    from bmc.syntax import parse

    return [pytest.param(p, name, id=f"{p.stem}.{name}") for p in EXAMPLES
            for name in parse(p.read_text(encoding="utf-8"), str(p)).models]


@pytest.mark.parametrize(("path", "name"), example_params())
def test_example_forward_and_gradients_match_numpy(path, name):
    model = small_model(path, name)
    c = model.compiled
    functions = {"forward": c.inference()}
    if c.model.loss is not None:
        functions["gradients"] = optimize(gradient_graph(c.model))
    s = session(functions, c.name)
    params, _ = model.init_params(0)
    s.load(params)
    rng = np.random.default_rng(1)
    for fname, graph in functions.items():
        for batch in (5, 2):
            feeds = feeds_for(graph, rng, batch)
            hyper = {v.name: np.asarray(7 if v.type.dtype == "i64" else 1e-3, NUMPY[v.type.dtype])
                     for v in graph.inputs_with_role("hyper")}
            got = s.run(fname, feeds, hyper)
            want = compile_function(graph)({**feeds, **params, **hyper})
            assert set(got) == set(want)
            for key in got:
                assert_close(got[key], want[key], f"{fname} {key} (batch {batch})")


# ---- every example: train steps ------------------------------------------------------------------------------------

# Parameters whose gradient is exactly zero in theory (a convolution's bias before batch norm, attention's key bias)
# get rounding noise as gradient, which Adam normalizes into steps of size lr: the models that have them are
# compared with momentum SGD, which keeps noise at noise size.
SGD = {"cnn", "vit", "char_lm"}


@pytest.mark.parametrize(("path", "name"), example_params())
def test_example_train_steps_match_numpy(path, name):
    model = small_model(path, name)
    c = model.compiled
    if c.model.loss is None:
        pytest.skip("no loss")
    config = c.config
    if path.stem in SGD:
        config = config.override(optimizer="sgd", lr=0.05)
        config.optimizer = OptimizerConfig("sgd", {**config.optimizer.args, "momentum": 0.9})
    graph = optimize(train_graph(c.model, config))
    s = session({"train_step": graph}, c.name)
    params, state = model.init_params(0)
    state = {v.name: np.zeros(v.type.shape, NUMPY[v.type.dtype]) for v in graph.inputs_with_role("state")}
    s.load(params, state)
    reference = compile_function(graph)
    rng = np.random.default_rng(2)
    feeds = feeds_for(graph, rng, 5)
    for step in range(3):
        hyper = {v.name: np.asarray(step + 11 if v.type.dtype == "i64" else config.optimizer.lr, NUMPY[v.type.dtype])
                 for v in graph.inputs_with_role("hyper")}
        want = reference({**feeds, **params, **state, **hyper})
        got = s.run("train_step", feeds, hyper)
        assert abs(float(got["loss"]) - float(want["loss"])) <= 1e-5 * max(1.0, abs(float(want["loss"])))
        take_updates(want, params, state)
    for tensor, value in {**params, **state}.items():
        assert rel_norm(s.read(tensor), value, floor=1e-2) < 1e-4, tensor


# ---- single ops at ragged and tile-sized shapes ---------------------------------------------------------------


def op_session(text: str):
    from bmc.ir.parse import parse_graph

    graph = parse_graph(text)
    return graph, session({"run": graph}, graph.name)


@pytest.mark.parametrize(("m", "k", "n", "ta", "tb"), [
    (300, 70, 260, False, False),  # 9 tiles of 128: the big-tile kernel (the emulator reports 4 SMs)
    (37, 19, 53, True, False),
    (37, 19, 53, False, True),
    (5, 3, 130, True, True),
    (1, 1, 1, False, False),
])
def test_matmul_any_shape_and_transpose(m, k, n, ta, tb):
    a_shape = f"[{k}, M]" if ta else f"[M, {k}]"
    b_shape = f"[{n}, {k}]" if tb else f"[{k}, {n}]"
    _, s = op_session(f"""graph mm(input %a: f32{a_shape}, input %b: f32{b_shape}) {{
      %c: f32[M, {n}] = matmul(%a, %b, transpose_a={str(ta).lower()}, transpose_b={str(tb).lower()})
      return c = %c
    }}""")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    want = (a.T if ta else a) @ (b.T if tb else b)
    assert_close(s.run("run", {"a": a, "b": b})["c"], want, "matmul")


def test_batched_matmul_broadcasts_batch_axes():
    _, s = op_session("""graph bmm(input %a: f32[N, 3, 7, 5], input %b: f32[3, 5, 9]) {
      %c: f32[N, 3, 7, 9] = matmul(%a, %b, transpose_a=false, transpose_b=false)
      return c = %c
    }""")
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((4, 3, 7, 5)).astype(np.float32), rng.standard_normal((3, 5, 9)).astype(np.float32)
    assert_close(s.run("run", {"a": a, "b": b})["c"], a @ b, "batched matmul")


def test_weight_gradient_split_along_the_batch_is_deterministic():
    """A small result summed over a long batch is split into partial products (split-K), added in a fixed order."""
    _, s = op_session("""graph wg(input %x: f32[N, 40], input %g: f32[N, 24]) {
      %w: f32[40, 24] = matmul(%x, %g, transpose_a=true, transpose_b=false)
      return w = %w
    }""")
    rng = np.random.default_rng(2)
    x, g = rng.standard_normal((3000, 40)).astype(np.float32), rng.standard_normal((3000, 24)).astype(np.float32)
    first = s.run("run", {"x": x, "g": g})["w"]
    assert_close(first, x.T.astype(np.float64) @ g, "split-K product")
    assert np.array_equal(first, s.run("run", {"x": x, "g": g})["w"])


@pytest.mark.parametrize(("axes", "keep"), [("[0]", "false"), ("[1]", "true"), ("[0, 2]", "false"), ("none", "false")])
def test_sums_over_any_axes(axes, keep):
    x = np.random.default_rng(3).standard_normal((6, 35, 4)).astype(np.float32)
    want = x.sum(axis=None if axes == "none" else tuple(eval(axes)), keepdims=keep == "true")
    out_type = "f32[" + ", ".join(str(d) for d in want.shape) + "]"
    _, s = op_session(f"""graph r(input %x: f32[6, 35, 4]) {{
      %y: {out_type} = sum(%x, axes={axes}, keepdims={keep})
      %m: {out_type} = max(%x, axes={axes}, keepdims={keep})
      return y = %y, m = %m
    }}""")
    got = s.run("run", {"x": x})
    assert_close(got["y"], want, "sum")
    assert_close(got["m"], x.max(axis=None if axes == "none" else tuple(eval(axes)), keepdims=keep == "true"), "max")


def test_symbols_named_like_the_generators_locals():
    """Symbolic dims called `n` and `i` (the fused kernels' count and index) have the user prefix, as every name
    from the source has, so they cannot meet the kernels' own."""
    _, s = op_session("""graph g(input %x: f32[n, i], input %y: f32[i]) {
      %z: f32[n, i] = add(%x, %y)
      %t: f32[n] = sum(%z, axes=[1], keepdims=false)
      return t = %t
    }""")
    x, y = np.random.default_rng(4).random((5, 7), np.float32), np.arange(7, dtype=np.float32)
    assert_close(s.run("run", {"x": x, "y": y})["t"], (x + y).sum(axis=1), "sum")
    assert "const int v_n = (int)dims[0];" in s.source and "const int v_i = (int)dims[1];" in s.source


# ---- errors ------------------------------------------------------------------------------------------------------


def test_a_failing_kernel_names_itself_and_its_bm_statement(mlp, monkeypatch):
    _, s = mlp
    kernels = re.findall(r"__global__ void __launch_bounds__\(\d+\) (\w+)\(", s.source)
    kernel = next(k for k in kernels if "softmax" in k)  # the first: the forward function's
    monkeypatch.setenv("BMC_EMU_FAIL_KERNEL", kernel)
    with pytest.raises(CudaError, match=rf"CUDA kernel {kernel} for .*mlp.bm:10 \(softmax\) failed: "
                                        "cudaErrorLaunchFailure"):
        s.run("forward", {"image": np.zeros((3, 100), np.float32)})


def test_a_label_out_of_range_is_an_error_not_garbage(mlp):
    _, s = mlp
    where = r"k\d+_cross_entropy_rows for .*mlp.bm:11 \(cross_entropy\)"
    with pytest.raises(CudaError, match=rf"index out of range .* {where}"):
        s.run("train_step", {"image": np.zeros((4, 100), np.float32), "label": np.array([0, 1, 10, 2])}, {"lr": 0.1})
    s.run("train_step", {"image": np.zeros((4, 100), np.float32), "label": np.array([0, 1, 9, 2])}, {"lr": 0.1})


def test_wrong_input_shapes_are_clear_errors(mlp):
    _, s = mlp
    with pytest.raises(CudaError, match=r"input 'image' must have shape \['N', 100\], got \[3, 99\]"):
        s.run("forward", {"image": np.zeros((3, 99), np.float32)})
    with pytest.raises(CudaError, match="needs the input 'label'"):
        s.run("train_step", {"image": np.zeros((3, 100), np.float32)}, {"lr": 0.1})


def test_no_device_is_a_clear_error(mlp, monkeypatch):
    monkeypatch.setenv("BMC_EMU_NO_DEVICE", "1")
    with pytest.raises(CudaUnavailableError, match=r"no CUDA driver/device: .*cudaErrorNoDevice"):
        mlp[1].library.session()


# ---- every op: the gradient cases of test_gradients.py (forward and backward graphs, f64) -------------------------


@pytest.fixture(scope="module")
def op_cases():
    """Every case's graph (loss = sum(out * w) and its gradients) as one function of one model.cu, all inputs fed."""
    from tests import test_gradients as tg

    graphs, feeds = {}, {}
    for k, c in enumerate(tg.CASES):
        graph, case_feeds, _ = tg.build(c)
        for v in graph.inputs:
            graph.roles[v] = "input"
        graphs[f"case{k}"] = graph
        feeds[c.id] = (f"case{k}", graph, case_feeds)
    return session(graphs, "op_cases"), feeds


@pytest.mark.parametrize("case_id", [c.id for c in __import__("tests.test_gradients", fromlist=["CASES"]).CASES])
def test_every_op_case_matches_numpy_in_f64(op_cases, case_id):
    s, feeds = op_cases
    function, graph, case_feeds = feeds[case_id]
    want = compile_function(graph)(case_feeds)
    got = s.run(function, case_feeds)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-9, atol=1e-12, err_msg=f"{case_id}: {key}")
