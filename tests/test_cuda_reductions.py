"""Two-pass reductions and the sorted embedding gradient of the CUDA backend, in the CPU emulator against NumPy.

Bias gradients (column sums) of wide and tall shapes, row reductions with few long rows, batch norm's statistics and
gradient sums with few channels (split into partial sums per block, then added in part order) and many (one block
per channel), the embedding gradient (scatter-add by a stable radix sort of the token ids) with repeated ids and a
vocabulary much larger than the tokens, and train steps of the examples that use them; each run twice, bit for bit
equal. The split heuristic itself is checked without a compiler (the block counts on a 132-SM GPU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bmc.backends import cuda
from bmc.backends.cuda import norm, nvcc, reduce
from bmc.backends.numpy import compile_function

import bmc
from bmc.ir.parse import parse_graph
from bmc.passes.pipeline import optimize
from bmc.train.config import OptimizerConfig
from bmc.train.step import gradient_graph, train_graph
from tests.cuda_emulator import emulate

ROOT = Path(__file__).resolve().parent.parent
NUMPY = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}
needs_gxx = pytest.mark.skipif(emulate.compiler() is None, reason="no g++ for the CUDA emulator")


def session(functions: dict, name: str):
    from tests.test_cuda_emulator import session as emulator_session

    return emulator_session(functions, name)


def assert_close(got, want, what: str, rtol: float = 1e-4) -> None:
    from tests.test_cuda_emulator import assert_close as close

    close(np.asarray(got), np.asarray(want), what, rtol)


def run_twice(s, function: str, feeds: dict, hyper: dict | None = None) -> dict:
    """Run twice from the same device state; the results must be equal bit for bit."""
    first = s.run(function, feeds, hyper or {})
    second = s.run(function, feeds, hyper or {})
    for key in first:
        assert np.array_equal(first[key], second[key], equal_nan=True), f"{function} {key} differs between runs"
    return first


# ---- the heuristic: blocks per reduction on a 132-SM GPU (no compiler needed) ------------------------------------


def test_split_heuristic_fills_the_sms_and_keeps_one_pass_where_it_has_parallelism():
    # the MLP's bias gradients at batch 64: [64, 128] and [64, 10] are 4 and 1 column blocks of 2,048 and 640
    # elements, too little work to pay for a second launch: one pass
    assert reduce.split_parts(4, 64, 32) == 1 and reduce.split_parts(1, 64, 32) == 1
    # at batch 4,096 they are split into 64 parts (256 blocks) and 64 parts (64 blocks), 2,048 elements a block
    assert reduce.split_parts(4, 4096, 32) == 64 and reduce.split_parts(1, 4096, 32) == 64
    # the CNN's first batch norm at batch 64: 32 channels of 64 * 26 * 26 = 43,264: 9 parts, 288 blocks
    assert reduce.split_parts(32, 64 * 26 * 26) == 9
    # its second (64 channels of 64 * 11 * 11 = 7,744 each): a one-pass block is already short
    assert reduce.split_parts(64, 64 * 11 * 11) == 1
    # enough blocks already (at least one per SM): one pass, however long the rows
    assert reduce.split_parts(132, 10**7) == 1
    # one long row: as many parts as fill two waves, capped
    assert reduce.split_parts(1, 10**7) == reduce.MOST_PARTS
    # a symbolic length: the most parts; the host divides the length at run time
    assert reduce.split_parts(32, "N*676") == 9


def test_sort_passes_cover_every_id_and_the_out_of_range_key():
    assert norm.sort_passes(96) == 1 and norm.sort_passes(255) == 1  # keys 0..255
    assert norm.sort_passes(256) == 2 and norm.sort_passes(65535) == 2 and norm.sort_passes(65536) == 3


# ---- column and row reductions ----------------------------------------------------------------------------------


REDUCTIONS = """graph r(input %t: f32[N, 10], input %w: f32[N, 3000], input %l: f32[3, M]) {
      %tall: f32[10] = sum(%t, axes=[0], keepdims=false)
      %tmean: f32[10] = mean(%t, axes=[0], keepdims=false)
      %tmax: f32[10] = max(%t, axes=[0], keepdims=false)
      %wide: f32[3000] = sum(%w, axes=[0], keepdims=false)
      %rows: f32[3] = sum(%l, axes=[1], keepdims=false)
      %rmax: f32[3] = max(%l, axes=[1], keepdims=false)
      %all: f32[] = sum(%t, axes=none, keepdims=false)
      return tall = %tall, tmean = %tmean, tmax = %tmax, wide = %wide, rows = %rows, rmax = %rmax, all = %all
    }"""


@pytest.fixture(scope="module")
def reductions():
    graph = parse_graph(REDUCTIONS)
    return graph, session({"run": graph}, "r")


@pytest.mark.parametrize(("n", "m"), [(7, 100), (5000, 50000), (3000, 40000)])
@needs_gxx
@pytest.mark.slow
def test_column_and_row_reductions_match_numpy(reductions, n, m):
    _, s = reductions
    assert "sum_parts" in s.source and "sum_of_parts" in s.source and "max_of_parts" in s.source
    rng = np.random.default_rng(n)
    feeds = {"t": rng.standard_normal((n, 10)).astype(np.float32) + 3,
             "w": rng.standard_normal((n, 3000)).astype(np.float32),
             "l": rng.standard_normal((3, m)).astype(np.float32)}
    got = run_twice(s, "run", feeds)
    t, w, ll = (feeds[k].astype(np.float64) for k in "twl")
    want = {"tall": t.sum(0), "tmean": t.mean(0), "tmax": t.max(0), "wide": w.sum(0), "rows": ll.sum(1),
            "rmax": ll.max(1), "all": t.sum()}
    for key, value in want.items():
        assert_close(got[key], value, f"{key} at N={n}, M={m}", rtol=1e-5)


# ---- batch norm with few and many channels ------------------------------------------------------------------------

BATCH_NORM = """
model bn(few = 4, many = 160) {
    input  x: f32[N, few, 12, 12]
    input  z: f32[N, many, 2, 2]
    target y: f32[N, few, 12, 12]
    target v: f32[N, many, 2, 2]
    loss = mse(batch_norm(x), y) + mse(batch_norm(z), v)
}
"""


def batch_norm_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("bn") / "bn.bm"
    path.write_text(BATCH_NORM, encoding="utf-8")
    model = bmc.compile(path)
    return model, optimize(gradient_graph(model.compiled.model))


@pytest.fixture(scope="module")
def batch_norm(tmp_path_factory):
    model, graph = batch_norm_model(tmp_path_factory)
    return model, graph, session({"gradients": graph}, "bn")


@pytest.mark.parametrize("n", [3, 300])  # 432 and 43,200 values per channel of the few: one pass, then 21 parts
@needs_gxx
@pytest.mark.slow
def test_batch_norm_train_and_gradient_match_numpy(batch_norm, n):
    model, graph, s = batch_norm
    assert "batch_norm_stats_parts" in s.source and "batch_norm_grad_of_parts" in s.source
    params, _ = model.init_params(0)
    s.load(params)
    rng = np.random.default_rng(n)
    feeds = {"x": (rng.standard_normal((n, 4, 12, 12)) * 0.5 + 40).astype(np.float32),  # a large mean
             "z": rng.standard_normal((n, 160, 2, 2)).astype(np.float32),
             "y": (rng.standard_normal((n, 4, 12, 12)) + 1.5).astype(np.float32),  # off center: dbeta is not
             "v": (rng.standard_normal((n, 160, 2, 2)) + 1.5).astype(np.float32)}  # a cancellation to noise
    got = run_twice(s, "gradients", feeds)
    want = compile_function(graph)({**feeds, **params})
    assert set(got) == set(want)
    for key in got:
        assert_close(got[key], want[key], f"{key} at N={n}")


# ---- the embedding gradient: scatter-add by sorted ids ---------------------------------------------------------


SCATTER = """graph s(input %ids: i64[N, T], input %u: f32[N, T, 24]) {
      %big: f32[70000, 24] = scatter_add(%ids, %u, rows=70000)
      %small: f32[96, 24] = scatter_add(%ids, %u, rows=96)
      return big = %big, small = %small
    }"""


@pytest.fixture(scope="module")
def scatter():
    graph = parse_graph(SCATTER)
    return graph, session({"run": graph}, "s")


@pytest.mark.parametrize(("n", "t"), [(3, 17), (40, 50), (1, 1)])
@needs_gxx
@pytest.mark.slow
def test_embedding_gradient_sums_each_ids_rows_in_token_order(scatter, n, t):
    """Vocabularies of 70,000 (three radix passes) and 96 (one), far larger than the tokens; repeated ids, ids on
    the digit boundaries, and ids out of range (which add to no row). Token order is NumPy's: equal bit for bit."""
    _, s = scatter
    assert s.source.count("scatter_add_place") >= 4
    rng = np.random.default_rng(t)
    pool = np.array([0, 1, 5, 95, 255, 256, 4095, 65535, 65536, 69999, -3, 70000, 96])
    ids = rng.choice(pool, size=(n, t)).astype(np.int64)
    u = rng.standard_normal((n, t, 24)).astype(np.float32)
    got = run_twice(s, "run", {"ids": ids, "u": u})
    for key, rows in (("big", 70000), ("small", 96)):
        want = np.zeros((rows, 24), np.float32)
        keep = (ids >= 0) & (ids < rows)
        np.add.at(want, ids[keep], u[keep])
        assert np.array_equal(got[key], want), key


# ---- the examples that use them: train steps ----------------------------------------------------------------------

EXAMPLES = {  # sizes at which their bias gradients, batch norms and embedding sorts take the two-pass paths
    "char_lm": ({"vocab": 300, "context": 64, "width": 16, "heads": 4, "blocks": 1}, {"N": 20, "T": 64}),
    "cnn": ({}, {"N": 50}),
    "vit": ({"width": 16, "heads": 4, "blocks": 1}, {"N": 48}),
}


def example_feeds(graph, model, sizes: dict, rng) -> dict:
    out = {}
    for v in graph.inputs_with_role("input", "target"):
        shape = tuple(sizes[d] if isinstance(d, str) else d for d in v.type.shape)
        if v.type.is_float:
            out[v.name] = rng.standard_normal(shape).astype(NUMPY[v.type.dtype])
        else:
            high = model.compiled.model.constants.get("vocab", model.compiled.model.constants.get("classes", 10))
            out[v.name] = rng.integers(0, min(high, 40), shape).astype(NUMPY[v.type.dtype])  # many repeats
    return out


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@needs_gxx
@pytest.mark.slow
def test_example_train_steps_match_numpy_and_repeat_bit_for_bit(name):
    defines, sizes = EXAMPLES[name]
    model = bmc.compile(ROOT / "examples" / f"{name}.bm", defines=defines)
    config = model.compiled.config.override(optimizer="sgd", lr=0.05)  # noise-level gradients stay noise (see
    config.optimizer = OptimizerConfig("sgd", {**config.optimizer.args, "momentum": 0.9})  # test_cuda_emulator)
    graph = optimize(train_graph(model.compiled.model, config))
    s = session({"train_step": graph}, name)
    assert "_parts" in s.source
    params, _ = model.init_params(0)
    state = {v.name: np.zeros(v.type.shape, NUMPY[v.type.dtype]) for v in graph.inputs_with_role("state")}
    reference = compile_function(graph)
    feeds = example_feeds(graph, model, sizes, np.random.default_rng(4))
    hyper = {v.name: np.asarray(11 if v.type.dtype == "i64" else 0.05, NUMPY[v.type.dtype])
             for v in graph.inputs_with_role("hyper")}
    results = []
    for _ in range(2):  # the same step from the same state, twice
        s.load(params, state)
        got = s.run("train_step", feeds, hyper)
        results.append(({k: s.read(k) for k in {**params, **state}}, got))
    want = reference({**feeds, **params, **state, **hyper})
    assert abs(float(results[0][1]["loss"]) - float(want["loss"])) <= 1e-5 * max(1.0, abs(float(want["loss"])))
    for key, value in want.items():
        kind, _, tensor = key.partition("/")
        if kind in ("params", "state"):
            assert_close(results[0][0][tensor], value, f"{name} {key}")
    for tensor, value in results[0][0].items():
        assert np.array_equal(value, results[1][0][tensor]), f"{name} {tensor} differs between runs"


# ---- ptxas: the new kernels compile for sm_90 without spills ------------------------------------------------------


F64 = """graph d(input %d: f64[N, 10], input %l: f64[3, M]) {
  %cols: f64[10] = sum(%d, axes=[0], keepdims=false)
  %rows: f64[3] = max(%l, axes=[1], keepdims=false)
  return cols = %cols, rows = %rows
}"""


@pytest.mark.skipif(nvcc.find_nvcc() is None, reason="nvcc (the CUDA toolkit) is not installed")
@pytest.mark.slow
def test_split_reductions_and_the_sort_compile_for_sm90_without_spills(tmp_path_factory):
    sources = [cuda.generate("bn", "bn.bm", "", {"gradients": batch_norm_model(tmp_path_factory)[1]}).source]
    sources += [cuda.generate(name, f"{name}.bm", "", {"run": parse_graph(text)}).source
                for name, text in (("r", REDUCTIONS), ("s", SCATTER), ("d", F64))]
    for source in sources:
        result = nvcc.compile_library(source)
        assert any("parts" in k or "scatter_add" in k for k in result.kernels), "no split or sort kernels"
        assert result.spills() == {}, f"ptxas reports spills in {sorted(result.spills())}"
