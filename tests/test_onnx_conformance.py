"""`bmc import` against onnx's backend node tests (tests/onnx_conformance.py runs them; `python -m
tests.onnx_conformance` prints the table). No case may give wrong values. A case that does not pass must be refused
for a reason listed below: a limit of the language (EXPECTED_LIMITS) or a reported importer bug (IMPORTER_BUGS), so
a new unexplained refusal fails here, and a listed reason no case gives any more must be deleted."""

from __future__ import annotations

import functools

import pytest

pytest.importorskip("onnx", reason="the ONNX importer needs the onnx package")

import numpy as np
import onnx
from onnx import helper

from tests import onnx_conformance as C

ANY = "*"  # a reason any op may give

# (op type, substring of the reason, why this is a limit and not a bug)
EXPECTED_LIMITS = [
    (ANY, "bmc imports tensors of float32, float64, int64, int32, bool",
     "a dtype outside the language's f32, f64, i64, i32, bool (int8, unsigned, float16, ...)"),
    ("Cast", "which the language lacks", "a cast to a dtype outside the language (float16, float8, int4, ...)"),
    (ANY, "(1-D and 3-D convolutions are not in the language)", "conv and pooling are 2-D (NCHW) only"),
    ("AveragePool", "count_include_pad=1 with pads", "avg_pool averages the real pixels of a window only"),
    (ANY, "it pools with dilations", "max_pool and avg_pool have no dilation"),
    ("BatchNormalization", "it is in training mode", "batch statistics as outputs: an inference import only"),
    ("Dropout", "its training_mode is true", "random drops at inference; their values are onnx's own random draw"),
    (ANY, "the output is a constant: nothing computes it",
     "a constant output (of Shape, Size, Constant): a model's outputs are computed"),
    ("ConstantOfShape", "its shape is computed by the model",
     "a shape computed by the model: the language's tensors have shapes known at compile time"),
    ("ConvTranspose", "its output_shape or auto_pad is not supported; give pads", "conv_transpose2d takes pads"),
    ("Div", "integer division of computed tensors is not in the language", "`/` is float division"),
    (ANY, "on its own; the language broadcasts only inside arithmetic", "no broadcast_to function"),
    (ANY, "it gathers computed data at irregular constant indices", "subscripts take ranges, not index lists"),
    ("Gemm", "is not one value per unit", "dense's bias is a vector; a [M, N] bias is a separate add"),
    ("LSTM", "its final cell state Y_c is used", "lstm gives the hidden states only"),
    (ANY, "its sequence_lens input is given", "the recurrent layers run whole sequences from zero states"),
    ("LayerNormalization", "together; the language's layer_norm normalizes the last axis",
     "layer_norm normalizes one (the last) axis"),
    ("MatMul", "it multiplies a vector", "@ takes matrices"),
    ("Resize", "is not nearest or linear", "resize has no cubic mode"),
    ("Resize", "it uses antialias, exclude_outside or a keep_aspect_ratio_policy", "resize has none of these"),
    ("Resize", "it resizes selected axes", "resize scales H and W of an NCHW tensor"),
    (ANY, "it makes an empty slice", "the language has no zero-size tensors"),
    (ANY, "has a dim of size 0; the language's tensors are not empty", "the language has no zero-size tensors"),
    ("Pow", "it raises integers to a power", "`**` takes a float base (integer powers are rare in models)"),
    ("Resize", "is not one of half_pixel, pytorch_half_pixel, align_corners, asymmetric",
     "resize has the coordinate modes exporters of the seed's architectures emit"),
    ("Resize", "do not give whole sizes", "ONNX maps coordinates with a fractional scale, resize with whole sizes"),
    (ANY, "the import does not compute this output",
     "an output the layers do not give (MaxPool's indices, LayerNormalization's statistics)"),
    (ANY, "the language takes constant tensors only as float parameters",
     "a known integer operand (an exponent) becomes a number or a float parameter, never an integer tensor"),
]

# (op type, substring of the reason, the importer bug it is): each was reported to the importer's authors; delete an
# entry when its bug is fixed (test_every_listed_reason_still_occurs says when). Wrong values are never listed.
IMPORTER_BUGS: list[tuple[str, str, str]] = [
]

FUNCTIONS = "(functions of other ops)"  # expanded cases of ops with no rule, written in ops that have one


def _groups() -> list[str]:
    return [*sorted(C.supported_ops()), FUNCTIONS]


@functools.cache
def outcomes(group: str) -> tuple[C.Outcome, ...]:
    ops = C.supported_ops()
    cases = [c for c in C.supported_cases() if c.op == group or (group == FUNCTIONS and c.op not in ops)]
    return tuple(C.run_case(c) for c in cases)


def _listed(o: C.Outcome, table) -> tuple | None:
    return next((e for e in table if e[0] in (ANY, o.op) and e[1] in o.reason), None)


def _show(outcomes_) -> str:
    return "\n".join(f"  {o.case} [{o.op}, {o.mode}]: {o.status}: {o.reason}" for o in outcomes_)


@pytest.mark.parametrize("op", _groups())
def test_no_case_gives_wrong_values(op):
    found = outcomes(op)
    if not found:
        pytest.skip(f"onnx has no node test case of {op} that uses only import-supported ops")
    wrong = [o for o in found if o.status == C.WRONG]
    if wrong:
        pytest.fail(f"WRONG VALUES: the import of these cases computes something else:\n{_show(wrong)}")


@pytest.mark.parametrize("op", _groups())
def test_every_refusal_is_a_listed_reason(op):
    found = outcomes(op)
    if not found:
        pytest.skip(f"onnx has no node test case of {op} that uses only import-supported ops")
    unexplained = [o for o in found if o.status not in (C.PASS, C.WRONG)
                   and not (o.status == C.NOT_IMPORTABLE and _listed(o, EXPECTED_LIMITS))
                   and not _listed(o, IMPORTER_BUGS)]
    if unexplained:
        pytest.fail("cases refused for a reason neither EXPECTED_LIMITS nor IMPORTER_BUGS lists (a new bug, or a limit "
                    f"to list with its justification):\n{_show(unexplained)}")


def test_every_listed_reason_still_occurs():
    every = [o for g in _groups() for o in outcomes(g) if o.status not in (C.PASS, C.WRONG)]
    stale = [e for e in [*EXPECTED_LIMITS, *IMPORTER_BUGS]
             if not any(e[0] in (ANY, o.op) and e[1] in o.reason for o in every)]
    assert not stale, f"no case gives these listed reasons any more; delete them: {stale}"


# ---- the harness itself ------------------------------------------------------------------------------------------


def test_known_inputs_become_initializers():
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 3, 3])
    w = helper.make_tensor_value_info("w", onnx.TensorProto.FLOAT, [1, 1, 2, 2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Mul", ["c", "x2"], ["y"])]
    x2 = helper.make_tensor_value_info("x2", onnx.TensorProto.FLOAT, [1, 1, 2, 2])
    model = helper.make_model(helper.make_graph(nodes, "g", [x, w, x2], [y]))
    arrays = [np.zeros((1, 1, 3, 3), np.float32), np.ones((1, 1, 2, 2), np.float32), np.ones((1, 1, 2, 2), np.float32)]
    promoted, feeds = C.promote(model, arrays)
    assert [i.name for i in promoted.graph.initializer] == ["w", "x2"]
    assert [i.name for i in promoted.graph.input] == ["x"] and len(feeds) == 1


def test_a_computed_first_operand_stays_an_input():
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph([helper.make_node("Mul", ["x", "x"], ["y"])], "g", [x], [y]))
    assert not C._promotable(model)


def test_comparison_checks_shape_values_and_nan():
    a = np.array([1.0, np.nan], np.float32)
    assert C.compare([a], [a.copy()], 1e-3, 1e-7) == ""
    assert "shape" in C.compare([a], [a.reshape(1, 2)], 1e-3, 1e-7)
    assert "differ" in C.compare([a + 1], [a], 1e-3, 1e-7)
    assert "dtype" in C.compare([np.ones(2, np.float32)], [np.ones(2, bool)], 1e-3, 1e-7)
