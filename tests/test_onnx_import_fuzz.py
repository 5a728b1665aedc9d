"""Random ONNX graphs (tests/onnx_import_fuzz.py) imported by `bmc import` agree with onnxruntime: no wrong values,
no tracebacks, no written text that bmc rejects, no graph onnxruntime rejects (refusals are allowed). The runs avoid
the features of known importer bugs (onnx_import_fuzz.KNOWN_BUGS, empty when there are none); each bug the fuzzer
found has its minimal reproduction below, which must import exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import helper as h
from onnx import numpy_helper as nh

from tests import onnx_import_fuzz as fuzz

BAD = (fuzz.WRONG, fuzz.TRACEBACK, fuzz.COMPILE, fuzz.INVALID)


def run(seed: int, graphs: int, tmp_path: Path) -> list[fuzz.Outcome]:
    outcomes = [fuzz.run_seed(s, tmp_path, fuzz.KNOWN_BUGS) for s in range(seed, seed + graphs)]
    bad = [f"seed {o.seed}: {o.status}: {o.reason}" for o in outcomes if o.status in BAD]
    assert not bad, "\n".join(bad) + "\n(replay: python -m tests.onnx_import_fuzz --seed S --graphs 1)"
    return outcomes


def test_sixty_random_graphs(tmp_path):
    outcomes = run(20240, 60, tmp_path)
    assert sum(o.status == fuzz.PASS for o in outcomes) >= 45  # the generator makes mostly importable graphs


@pytest.mark.slow
def test_four_hundred_random_graphs(tmp_path):
    run(90000, 400, tmp_path)


def test_generation_is_reproducible():
    a, b = fuzz.generate(7), fuzz.generate(7)
    assert a.model.SerializeToString() == b.model.SerializeToString()
    assert all(np.array_equal(a.feeds[k], b.feeds[k]) for k in a.feeds)


# ---- the bugs the fuzzer found, as minimal graphs ----------------------------------------------------------------


def model(nodes, inputs, outputs, inits, opset=17):
    graph = h.make_graph(nodes, "g", inputs, outputs, inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], ir_version=8)


def vi(name, shape):
    return h.make_tensor_value_info(name, 1, shape)


def outcome(m, feeds, tmp_path) -> fuzz.Outcome:
    return fuzz.check(m, feeds, tmp_path)


def test_one_value_constant_keeps_its_rank(tmp_path):
    """Add(x[3], c[1, 1]) is [1, 3]; the import writes `x + 0.5`, a [3] (seeds 1131, 1681, 1748, 1781)."""
    m = model([h.make_node("Add", ["x", "c"], ["y"])], [vi("x", [3])], [vi("y", [1, 3])],
              [nh.from_array(np.array([[0.5]], np.float32), "c")])
    o = outcome(m, {"x": np.arange(3, dtype=np.float32)}, tmp_path)
    assert o.status == fuzz.PASS, o.reason


def test_one_value_constant_in_concat(tmp_path):
    """Concat([c[1], x[6]]): the import writes `concat([-0.93, x])`, which bmc rejects (seeds 11, 3131)."""
    m = model([h.make_node("Concat", ["c", "x"], ["y"], axis=0)], [vi("x", [6])], [vi("y", [7])],
              [nh.from_array(np.array([-0.93], np.float32), "c")])
    o = outcome(m, {"x": np.arange(6, dtype=np.float32)}, tmp_path)
    assert o.status == fuzz.PASS, o.reason


def test_max_of_constants_first(tmp_path):
    """Max(c[1, 1], c(), x): the import writes `maximum(maximum(1.09, 0.22), x)`, which bmc rejects (seed 1171)."""
    inits = [nh.from_array(np.array([[1.0960712]], np.float32), "a"),
             nh.from_array(np.array(0.2220206, np.float32), "b")]
    m = model([h.make_node("Max", ["a", "b", "x"], ["y"])], [vi("x", [2, 3])], [vi("y", [2, 3])], inits)
    o = outcome(m, {"x": np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)}, tmp_path)
    assert o.status == fuzz.PASS, o.reason


def test_global_average_pool_of_rank_3(tmp_path):
    """GlobalAveragePool([3, 5, 7]) -> [3, 5, 1], Squeeze(axes 2) -> [3, 5]; the import writes
    `global_avg_pool(x)`, which takes NCHW images only (seeds 1063, 3996)."""
    nodes = [h.make_node("GlobalAveragePool", ["x"], ["p"]), h.make_node("Squeeze", ["p", "k"], ["y"])]
    m = model(nodes, [vi("x", [3, 5, 7])], [vi("y", [3, 5])], [nh.from_array(np.array([2], np.int64), "k")], 16)
    o = outcome(m, {"x": np.linspace(-2, 2, 105, dtype=np.float32).reshape(3, 5, 7)}, tmp_path)
    assert o.status == fuzz.PASS, o.reason


def test_gather_of_one_index(tmp_path):
    """Gather(x[2, 4], [2], axis=1) is x[:, 2:3]; the import refuses it (most of the fuzzer's refusals)."""
    m = model([h.make_node("Gather", ["x", "i"], ["y"], axis=1)], [vi("x", [2, 4])], [vi("y", [2, 1])],
              [nh.from_array(np.array([2], np.int64), "i")])
    o = outcome(m, {"x": np.arange(8, dtype=np.float32).reshape(2, 4)}, tmp_path)
    assert o.status == fuzz.PASS, o.reason
