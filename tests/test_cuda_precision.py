"""`--precision fp32|tf32|bf16` for the CUDA target: the matrix products (matmul, dense, convolutions) on the tensor
cores through WMMA with FP32 accumulation, the inputs rounded to TF32 or BF16; fp32 stays the default and exact.

The same generated source runs in the CPU emulator (tests/cuda_emulator implements nvcuda::wmma with the precision's
rounding) against the NumPy backend: a product with its inputs rounded as the tensor cores round them agrees to
FP32 accumulation error, and whole models (MLP, CNN) agree to the precision's tolerance. The option reaches the
build through `bmc build --target cuda --precision` and `bmc train --backend cuda --precision`, is recorded in the
manifest, and is a clear error with another target; the tensor-core kernels compile for sm_90 without spills.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
from bmc.backends import cuda
from bmc.backends.cuda import build as cuda_build
from bmc.backends.cuda import nvcc
from bmc.backends.cuda.runtime import Library
from bmc.backends.numpy import compile_function

import bmc
from bmc import ops
from bmc.cli import main
from bmc.diagnostics import UsageError
from bmc.ir.parse import parse_graph
from bmc.passes.pipeline import optimize
from bmc.runtime import load_source
from bmc.train.config import OptimizerConfig
from bmc.train.step import gradient_graph, train_graph
from tests.cuda_emulator import emulate
from tests.test_cuda_emulator import NUMPY, assert_close, feeds_for, rel_norm
from tests.test_model_gradients import small_model

ROOT = Path(__file__).resolve().parent.parent
needs_gxx = pytest.mark.skipif(emulate.compiler() is None, reason="no g++ for the CUDA emulator")

# Relative to a tensor's scale, for values one or two products deep (a model's outputs, its gradients, a few train
# steps): TF32 keeps 10 mantissa bits (a relative rounding of 2^-11 per input), BF16 7 (2^-8).
TOLERANCE = {"fp32": 1e-4, "tf32": 5e-3, "bf16": 4e-2}


def tf32(x: np.ndarray) -> np.ndarray:
    """To nearest TF32, ties away from zero (cvt.rna.tf32.f32; __float_to_tf32), for finite values."""
    u = np.asarray(x, np.float32).view(np.uint32)
    return ((u + np.uint32(0x1000)) & np.uint32(0xFFFFE000)).view(np.float32)


def bf16(x: np.ndarray) -> np.ndarray:
    """To nearest BF16, ties to even (__float2bfloat16_rn), for finite values."""
    u = np.asarray(x, np.float32).view(np.uint32)
    return ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)).view(np.float32)


ROUND = {"tf32": tf32, "bf16": bf16}


# the same roundings as NumPy expression text, for a reference module whose matrix products round their inputs
ROUND_TEXT = {
    "tf32": "((np.asarray({x}, np.float32).view(np.uint32) + np.uint32(0x1000)) & np.uint32(0xFFFFE000))"
            ".view(np.float32)",
    "bf16": "(lambda u: ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000))"
            ".view(np.float32))(np.asarray({x}, np.float32).view(np.uint32))",
}
ROUNDED_INPUTS = {ops.MatMul: (0, 1), ops.Dense: (0, 1), ops.Conv2d: (0, 1), ops.Conv2dGradInput: (0, 1),
                  ops.Conv2dGradWeight: (0, 1)}  # not a bias: the epilogue adds it in FP32


@contextlib.contextmanager
def rounded_reference(precision: str):
    """The NumPy backend with the GEMMs' inputs rounded as the tensor cores read them (everything else FP32)."""
    from bmc.reference import rules

    def rounding(rule):
        def rounded(node, a, ctx):
            a = [ROUND_TEXT[precision].format(x=x) if k in ROUNDED_INPUTS[type(node.op)] else x
                 for k, x in enumerate(a)]
            return rule(node, a, ctx)
        return rounded

    with contextlib.ExitStack() as stack:
        for op in ROUNDED_INPUTS:
            stack.enter_context(rules.RULES.replaced(op, rounding(rules.RULES[op])))
        saved = rules._matmul  # what lower_into (a product written into a planned buffer) calls
        rules._matmul = rounding(saved)
        try:
            yield
        finally:
            rules._matmul = saved


def session(functions: dict, name: str, precision: str):
    prog = cuda.generate(name, f"{name}.bm", "", functions, precision=precision)
    s = Library(emulate.build(prog.source), prog.manifest).session()
    s.source = prog.source
    return s


def test_roundings_are_the_hardwares():
    x = np.array([1.0, 1 + 2**-11, 1 + 2**-12, 1 + 3 * 2**-12, -(1 + 2**-11), 3.0e38, 2**-130], np.float32)
    assert tf32(x).tolist() == np.array([1.0, 1 + 2**-10, 1.0, 1 + 2**-10, -(1 + 2**-10), tf32(x)[5], 2**-130],
                                        np.float32).tolist()
    y = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-9, -(1 + 2**-7)], np.float32)
    assert bf16(y).tolist() == [1.0, 1 + 2**-6, 1.0, -(1 + 2**-7)]  # ties to even, below half down, exact stays


# ---- the option, its plumbing and its errors (no compiler needed) ------------------------------------------------


def mm_graph(m: int, k: int, n: int):
    return parse_graph(f"""graph mm(input %a: f32[{m}, {k}], input %b: f32[{k}, {n}], input %at: f32[{k}, {m}],
                                    input %bt: f32[{n}, {k}]) {{
      %c: f32[{m}, {n}] = matmul(%a, %b, transpose_a=false, transpose_b=false)
      %d: f32[{m}, {n}] = matmul(%at, %b, transpose_a=true, transpose_b=false)
      %e: f32[{m}, {n}] = matmul(%a, %bt, transpose_a=false, transpose_b=true)
      %f: f32[{m}, {n}] = matmul(%at, %bt, transpose_a=true, transpose_b=true)
      return c = %c, d = %d, e = %e, f = %f
    }}""")


def test_fp32_is_the_default_and_uses_no_tensor_cores():
    functions = {"run": mm_graph(37, 70, 53)}
    default = cuda.generate("mm", "mm.bm", "", functions)
    assert default.source == cuda.generate("mm", "mm.bm", "", functions, precision="fp32").source
    assert default.manifest["precision"] == "fp32"
    assert "wmma" not in default.source and "bmc_gemm_tile<float" in default.source


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_tensor_core_builds_say_so(precision):
    prog = cuda.generate("mm", "mm.bm", "", {"run": mm_graph(37, 70, 53)}, precision=precision)
    assert prog.manifest["precision"] == precision
    assert "bmc_gemm_tile<" not in prog.source.split("// ==== kernels")[1]
    staged = "float" if precision == "tf32" else "__nv_bfloat16"
    assert f"bmc_wmma_tile<{staged}, " in prog.source and f"--precision {precision}" in prog.source
    with cuda.precision(precision):  # the scope `bmc build` and `bmc train` set
        assert cuda.generate("mm", "mm.bm", "", {"run": mm_graph(37, 70, 53)}).source == prog.source


def test_bad_precisions_are_usage_errors():
    with pytest.raises(UsageError, match="precision 'fp16' is not one of fp32, tf32, bf16"):
        cuda.generate("mm", "mm.bm", "", {"run": mm_graph(5, 5, 5)}, precision="fp16")
    with pytest.raises(UsageError, match="for f32 builds"):
        cuda.generate("mm", "mm.bm", "", {"run": mm_graph(5, 5, 5)}, dtype="f64", precision="tf32")


@pytest.mark.parametrize("argv", [
    ["build", "examples/mlp.bm", "--target", "numpy", "--precision", "tf32", "-o", "OUT"],
    ["build", "examples/mlp.bm", "--target", "onnx", "--precision", "bf16", "-o", "OUT"],
    ["train", "examples/mlp.bm", "--data", "digits", "--steps", "1", "--precision", "bf16"],
])
def test_precision_with_another_target_is_a_clear_error(argv, tmp_path, capsys):
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "--precision" in err and "is for the cuda target's matrix products" in err
    assert not (tmp_path / "out").exists()


def test_train_with_the_cuda_backend_generates_at_the_precision(monkeypatch, capsys):
    """`bmc train --backend cuda --precision bf16`: the module the run would load is generated at bf16 (the device
    itself is replaced by an error that names what it was given)."""
    def module(model, outputs=True):
        raise UsageError(f"generated at {cuda_build.program(model).manifest['precision']}")

    monkeypatch.setattr(cuda_build, "module", module)
    argv = ["train", "examples/mlp.bm", "--data", "digits", "--steps", "1", "--backend", "cuda", "--precision", "bf16",
            "-D", "hidden=16"]
    assert main(argv) != 0
    assert "generated at bf16" in capsys.readouterr().err


# ---- emulator parity ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_gxx
@pytest.mark.parametrize("precision", ["tf32", "bf16"])
@pytest.mark.parametrize(("m", "k", "n"), [(37, 70, 53), (130, 36, 200), (20, 3000, 24)])  # ragged; 4 SMs: big tiles
def test_products_round_their_inputs_as_the_tensor_cores(precision, m, k, n):
    """Against the product of the rounded inputs (float64): FP32 accumulation error only; against the exact product,
    the precision's rounding (so the tensor-core path did run). (20, 3000, 24) is split along k."""
    s = session({"run": mm_graph(m, k, n)}, "mm", precision)
    rng = np.random.default_rng(m)
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    got = s.run("run", {"a": a, "b": b, "at": np.ascontiguousarray(a.T), "bt": np.ascontiguousarray(b.T)})
    rounded = ROUND[precision](a).astype(np.float64) @ ROUND[precision](b).astype(np.float64)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    for key in "cdef":
        assert_close(got[key], rounded, f"{precision} {key} against the rounded inputs", rtol=2e-6 * np.sqrt(k))
        err = float(np.abs(got[key] - exact).max()) / float(np.abs(exact).max())
        assert 1e-6 < err < TOLERANCE[precision], f"{precision} {key}: {err:.2e} from the exact product"
    if k == 3000:
        assert "_split_t" in s.source


@pytest.fixture(scope="module", params=["tf32", "bf16"])
def mlp(request):
    model = bmc.compile(ROOT / "examples/mlp.bm", defines={"features": 100, "hidden": 48})
    c = model.compiled
    functions = {"forward": c.inference(), "train_step": c.train_step()}
    return model, request.param, session(functions, "mlp", request.param)


@pytest.mark.slow
@needs_gxx
@pytest.mark.parametrize("batch", [64, 37])
def test_mlp_train_steps_match_numpy_to_the_precision(mlp, batch):
    """BF16 (and TF32) training keeps FP32 master weights: the parameters and Adam's moments are FP32 on the device,
    only the products' inputs are rounded, and the steps follow the FP32 NumPy module's to the precision."""
    model, precision, s = mlp
    tol = TOLERANCE[precision]
    params, state = model.init_params(0)
    s.load(params, state)
    module = load_source(model.generate("numpy", train=True))
    rng = np.random.default_rng(batch)
    for step in range(4):
        x = rng.random((batch, 100), dtype=np.float32)
        y = rng.integers(0, 10, batch)
        want = module.train_step(params, state, {"image": x, "label": y}, np.float32(1e-3))
        got = s.run("train_step", {"image": x, "label": y}, {"lr": 1e-3})
        assert abs(float(got["loss"]) - float(want["loss"])) < tol * abs(float(want["loss"]))
        assert_close(got["probs"], want["probs"], f"{precision} probs at step {step}", rtol=tol)
    for name, value in {**params, **state}.items():
        assert s.read(name).dtype == np.float32
        if name.startswith("adam.") or name.endswith(".b"):  # Adam's moments, biases: from gradients near zero
            continue
        assert rel_norm(s.read(name), value) < tol, name
    x = rng.random((batch, 100), dtype=np.float32)
    assert_close(s.run("forward", {"image": x})["probs"], module.forward(params, x)["probs"], "forward", rtol=tol)


@pytest.mark.slow
@needs_gxx
@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_cnn_matches_numpy_with_the_products_rounded_alike(precision):
    """The CNN's forward outputs, gradients and a train step against a NumPy reference whose matrix products
    round their inputs as the tensor cores do: FP32 accumulation differences only (tightly: max-pool and ReLU
    choices and batch norm's cancellations would turn a different rounding into large differences, which is why
    the exact FP32 reference is compared only on the loss and the outputs)."""
    model = small_model(ROOT / "examples/cnn.bm", "cnn")
    c = model.compiled
    config = c.config.override(optimizer="sgd", lr=0.05)  # as test_cuda_emulator.py: no Adam on noise gradients
    config.optimizer = OptimizerConfig("sgd", {**config.optimizer.args, "momentum": 0.9})
    functions = {"forward": c.inference(), "gradients": optimize(gradient_graph(c.model)),
                 "train_step": optimize(train_graph(c.model, config))}
    s = session(functions, "cnn", precision)
    with rounded_reference(precision):
        reference = {name: compile_function(graph) for name, graph in functions.items()}
    exact = {name: compile_function(graph) for name, graph in functions.items()}
    params, _ = model.init_params(0)
    state = {v.name: np.zeros(v.type.shape, NUMPY[v.type.dtype])
             for v in functions["train_step"].inputs_with_role("state")}
    s.load(params, state)
    rng = np.random.default_rng(1)
    for fname in ("forward", "gradients"):
        graph = functions[fname]
        feeds = feeds_for(graph, rng, 5)
        hyper = {v.name: np.asarray(7 if v.type.dtype == "i64" else 1e-3, NUMPY[v.type.dtype])
                 for v in graph.inputs_with_role("hyper")}
        got = s.run(fname, feeds, hyper)
        want = reference[fname]({**feeds, **params, **hyper})
        plain = exact[fname]({**feeds, **params, **hyper})
        for key in got:
            assert_close(got[key], want[key], f"{precision} {fname} {key}", rtol=1e-3)
        for key in ("probs", "loss"):
            if key in got:
                assert_close(got[key], plain[key], f"{precision} {fname} {key} (exact)", rtol=TOLERANCE[precision])
    # one step: this SGD run at lr 0.05 is chaotic (its loss grows tenfold by the third step even in FP32), so the
    # rounding-boundary differences of later steps' inputs would grow beyond any tolerance that means something
    graph = functions["train_step"]
    feeds = feeds_for(graph, rng, 5)
    hyper = {v.name: np.asarray(11 if v.type.dtype == "i64" else 0.05, NUMPY[v.type.dtype])
             for v in graph.inputs_with_role("hyper")}
    want = reference["train_step"]({**feeds, **params, **state, **hyper})
    got = s.run("train_step", feeds, hyper)
    assert abs(float(got["loss"]) - float(want["loss"])) <= 1e-5 * max(1.0, abs(float(want["loss"])))
    for key, value in want.items():
        kind, _, tensor = key.partition("/")
        if kind in ("params", "state"):
            assert rel_norm(s.read(tensor), value, floor=1e-2) < 2e-3, tensor


# ---- nvcc: the tensor-core kernels at sm_90, and the build's manifest --------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(nvcc.find_nvcc() is None, reason="nvcc (the CUDA toolkit) is not installed")
@pytest.mark.parametrize(("precision", "example"), [("tf32", "mlp"), ("bf16", "mlp"), ("tf32", "cnn"),
                                                    ("bf16", "cnn")])
def test_tensor_core_kernels_compile_for_sm90_without_spills(precision, example, tmp_path):
    """`bmc build --target cuda --precision P`: the library, and the precision in the manifest."""
    out = tmp_path / example
    assert main(["build", f"examples/{example}.bm", "--target", "cuda", "--precision", precision, "-o", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    cuda_part = manifest["cuda"]
    assert cuda_part["precision"] == precision
    gemms = {k: v for k, v in cuda_part["ptxas"].items() if f"_{precision}" in k}
    assert gemms and all(v["registers"] <= 255 for v in gemms.values())
    spills = {k: v for k, v in cuda_part["ptxas"].items() if v.get("spill_stores") or v.get("spill_loads")}
    assert spills == {}
    assert "bmc_wmma_tile" in (out / cuda_build.SOURCE).read_text()
