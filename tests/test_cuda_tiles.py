"""Shape-aware GEMM tiles (backends/cuda/gemm.py): the candidates fit the product's extents (a 32-channel convolution
gets 32-row tiles, a 10-class layer 16-column ones), the host takes the largest whose blocks fill the SMs, and a
skinny product (the MLP's 64x784x128) is split along k so that it uses more than a few of 132 SMs.

Every tile shape, on the CUDA cores and on the tensor cores, runs in the emulator against NumPy on ragged shapes in
all four transposed forms, with aligned leading dimensions (vector loads) and unaligned ones (the scalar fallback),
and split along k. Under nvcc, both ways of filling shared memory (cp.async on sm_80 and newer, registers with
BMC_NO_CP_ASYNC, as in the emulator) compile for sm_90 without spills, and the PTX has the cp.async copies and the
float4 loads.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from bmc.backends import cuda
from bmc.backends.cuda import build as cuda_build
from bmc.backends.cuda import gemm, nvcc
from bmc.backends.cuda.runtime import Library

import bmc
from bmc.ir.parse import parse_graph
from tests.cuda_emulator import emulate
from tests.test_cuda_emulator import assert_close
from tests.test_cuda_precision import ROUND

ROOT = Path(__file__).resolve().parent.parent
needs_gxx = pytest.mark.skipif(emulate.compiler() is None, reason="no g++ for the CUDA emulator")
needs_nvcc = pytest.mark.skipif(nvcc.find_nvcc() is None, reason="nvcc (the CUDA toolkit) is not installed")


def gemms(model: bmc.Model, function: str = "train_step") -> dict[str, gemm.Gemm]:
    """The model's products in a function, by kernel hint and position: {"dense 0": Gemm, ...}."""
    from bmc.backends.cuda.codegen import prepare

    graph = prepare(getattr(model.compiled, function)())
    builders = {"MatMul": gemm.matmul_gemm, "Dense": gemm.dense_gemm, "Conv2d": gemm.conv2d_gemm,
                "Conv2dGradInput": gemm.conv2d_grad_input_gemm, "Conv2dGradWeight": gemm.conv2d_grad_weight_gemm}
    out = {}
    for node in graph.nodes:
        build = builders.get(type(node.op).__name__)
        if build:
            g = build(node)
            out[f"{g.hint} {sum(k.startswith(g.hint + ' ') for k in out)}"] = g
    return out


# ---- the heuristic ----------------------------------------------------------------------------------------------


def test_the_mlps_skinny_product_uses_many_sms():
    """64x784x128 (the first dense layer at batch 64): 8 tiles of 32x32, split 13 ways over k: 104 blocks (the old
    choice, 64x64 tiles and no split, launched 2)."""
    first = gemms(bmc.compile(ROOT / "examples/mlp.bm"), "inference")["dense 0"]
    assert first.shapes == [(128, 128), (64, 64), (32, 32)]
    assert gemm.choose(first, 64, 128, 784) == ((32, 32), 13, 104)
    assert gemm.choose(first, 4096, 128, 784) == ((32, 32), 1, 512)  # a bigger batch fills the SMs unsplit
    assert gemm.choose(first, 8192, 128, 784) == ((64, 64), 1, 256)
    assert gemm.choose(first, 32768, 128, 784) == ((128, 128), 1, 256)
    # the workspace does not grow with the batch: room for two waves of 32x32 partial tiles
    assert first.split_capacity == 2 * 132 * 32 * 32


def test_tiles_fit_the_channel_counts():
    model = bmc.compile(ROOT / "examples/cnn.bm")
    products = gemms(model)
    conv1, conv2 = products["conv2d 0"], products["conv2d 1"]
    assert conv1.m == 32 and conv1.shapes == [(32, 128), (32, 64), (32, 32)]  # 32 filters: no 64- or 128-row tiles
    assert conv2.m == 64 and conv2.shapes == [(64, 128), (64, 64), (32, 32)]
    assert gemm.choose(conv1, 32, 26 * 26, 9, batch=64) == ((32, 128), 1, 6 * 64)
    logits = next(g for g in products.values() if g.hint == "dense" and g.n == 10)
    assert logits.shapes == [(128, 16), (64, 16), (32, 16)]  # 10 classes: 16-column tiles
    for g in products.values():  # every candidate wastes less than half of a tile's rows or columns
        for bm, bn in g.shapes:
            for extent, side in ((g.m, bm), (g.n, bn)):
                assert not isinstance(extent, int) or extent >= side or 2 * extent > side


def test_tensor_core_tiles_give_every_warp_whole_fragments():
    for bm in gemm.EXTENTS:
        for bn in gemm.EXTENTS:
            for precision in ("tf32", "bf16"):
                tile = gemm.Tile(bm, bn, precision)
                wm, wn = tile.warps
                assert wm * wn == min(8, bm // 16 * (bn // 16)) and bm % (16 * wm) == 0 and bn % (16 * wn) == 0
                assert tile.threads == 32 * wm * wn
            fp32 = gemm.Tile(bm, bn)
            assert fp32.threads == 256 and bm * fp32.bk % 256 == 0 and bn * fp32.bk % 256 == 0
    assert gemm.Tile(128, 128, "tf32").warps == (2, 4) and gemm.Tile(32, 128, "tf32").warps == (1, 8)


def test_the_host_picks_tiles_in_a_readable_chain():
    source = cuda.generate("mlp", "mlp.bm", "", {"forward": bmc.compile(ROOT / "examples/mlp.bm").compiled
                                                 .inference()}).source
    assert ("// tiles by shape: the first of 128x128, 64x64, 32x32 whose blocks fill the SMs, else the last; split "
            "along k when") in source
    assert "if (splits > 1) {" in source and "} else if ((long long)bmc_ceil(v_N, 128) * bmc_ceil(128, 128) >= " \
        "ctx->sm_count) {" in source


# ---- every tile in the emulator ----------------------------------------------------------------------------------

# (m, k, n): leading dimensions that are multiples of 4 (float4 loads) and ones that are not (the scalar fallback)
SHAPES = [(37, 72, 52), (37, 70, 53)]


def products_graph(shapes):
    inputs, lines, outputs = [], [], []
    for i, (m, k, n) in enumerate(shapes):
        inputs += [f"input %a{i}: f32[{m}, {k}]", f"input %b{i}: f32[{k}, {n}]", f"input %at{i}: f32[{k}, {m}]",
                   f"input %bt{i}: f32[{n}, {k}]"]
        for name, (x, y, ta, tb) in {"c": ("a", "b", "false", "false"), "d": ("at", "b", "true", "false"),
                                     "e": ("a", "bt", "false", "true"), "f": ("at", "bt", "true", "true")}.items():
            lines.append(f"%{name}{i}: f32[{m}, {n}] = matmul(%{x}{i}, %{y}{i}, transpose_a={ta}, transpose_b={tb})")
            outputs.append(f"{name}{i} = %{name}{i}")
    return parse_graph(f"graph products({', '.join(inputs)}) {{\n" + "\n".join(lines) +
                       f"\nreturn {', '.join(outputs)}\n}}")


def run_products(precision: str, shapes) -> None:
    graph = products_graph(shapes)
    prog = cuda.generate("products", "products.bm", "", {"run": graph}, precision=precision)
    s = Library(emulate.build(prog.source), prog.manifest).session()
    rng = np.random.default_rng(0)
    feeds, want = {}, {}
    round_inputs = ROUND.get(precision, lambda x: x)
    for i, (m, k, n) in enumerate(shapes):
        a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
        feeds.update({f"a{i}": a, f"b{i}": b, f"at{i}": np.ascontiguousarray(a.T), f"bt{i}": np.ascontiguousarray(b.T)})
        want[i] = round_inputs(a).astype(np.float64) @ round_inputs(b).astype(np.float64)
    got = s.run("run", feeds)
    for i, (m, k, n) in enumerate(shapes):
        for name in "cdef":
            assert_close(got[f"{name}{i}"], want[i], f"{precision} {name}{i} {m}x{k}x{n}", rtol=2e-6 * np.sqrt(k))


TILES = [(16, 16), (16, 128), (128, 16), (32, 64), (64, 32), (128, 128)]


@pytest.mark.slow
@needs_gxx
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
@pytest.mark.parametrize("tile", TILES, ids=[f"{m}x{n}" for m, n in TILES])
def test_every_tile_matches_numpy(tile, precision, monkeypatch):
    """One tile shape at a time (the candidates replaced by it), in all four transposed forms; a product of a long
    reduction is split along k on tiles of 32 and more (16 x 16 tiles fill the emulator's 4 SMs unsplit)."""
    monkeypatch.setattr(gemm.Gemm, "shapes", property(lambda self: [tile]))
    run_products(precision, SHAPES + ([(20, 1000, 24)] if min(tile) >= 32 else []))


# ---- nvcc: cp.async and register staging, vector loads ------------------------------------------------------------


def ptx(source: str, tmp_path: Path, name: str) -> str:
    cu, out = tmp_path / f"{name}.cu", tmp_path / f"{name}.ptx"
    cu.write_text(source, encoding="utf-8")
    subprocess.run([nvcc.find_nvcc(), "-std=c++17", "-ptx", "-arch=sm_90", str(cu), "-o", str(out)], check=True,
                   capture_output=True, timeout=600)
    return out.read_text()


@pytest.mark.slow
@needs_nvcc
@pytest.mark.parametrize("precision", ["fp32", "tf32"])
def test_cp_async_and_vector_loads_are_in_the_ptx(precision, tmp_path):
    """128-row tiles read 4 floats at a time (each thread's share of a slab is 4 elements), 64-row FP32 ones 2."""
    graph = products_graph([(130, 72, 200), *SHAPES])
    source = cuda.generate("products", "products.bm", "", {"run": graph}, precision=precision).source
    text = ptx(source, tmp_path, "async")
    assert "cp.async.ca.shared.global" in text and "cp.async.wait_all" in text
    registers = ptx("#define BMC_NO_CP_ASYNC 1\n" + source, tmp_path, "registers")
    assert "cp.async" not in registers
    assert re.search(r"ld\.global(\.nc)?\.v4\.f32", registers)
    if precision == "fp32":
        assert re.search(r"ld\.global(\.nc)?\.v2\.f32", registers)
    if precision == "tf32":
        assert "wmma.mma.sync.aligned" in text and "m16n16k8.f32.tf32.tf32.f32" in text and "cvt.rna.tf32.f32" in text


@pytest.mark.slow
@needs_nvcc
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
@pytest.mark.parametrize("example", ["mlp", "cnn"])
def test_register_staging_compiles_for_sm90_without_spills(example, precision):
    """The path the emulator takes (BMC_NO_CP_ASYNC), compiled for sm_90 too."""
    with cuda.precision(precision):
        source = cuda_build.program(bmc.compile(ROOT / f"examples/{example}.bm")).source
    compiled = nvcc.compile_library("#define BMC_NO_CP_ASYNC 1\n" + source)
    assert compiled.spills() == {}
    assert all(stats.get("registers", 0) <= 255 for stats in compiled.kernels.values())
