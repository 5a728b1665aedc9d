"""One table of op cases (as ONNX's node tests are): each op with the attributes the examples do not reach
(strides, padding, dilation, reversed recurrences, symbolic reshapes, out-of-range labels, ...), run on every
backend by tests/test_op_cases.py against the reference semantics (bmc/reference)."""

from __future__ import annotations

import numpy as np

from bmc import ops
from bmc.ir.graph import Builder, Graph
from bmc.ir.types import TensorType

N = 3  # the size of the symbolic dims N and T


def f32(*shape) -> TensorType:
    return TensorType("f32", shape)


def i64(*shape) -> TensorType:
    return TensorType("i64", shape)


CONV = {"stride": (2, 1), "padding": (1, 0, 2, 1), "dilation": (1, 2)}
POOL = {"kernel": (3, 2), "stride": (2, 1), "padding": (1, 0, 1, 1)}
# (id, op, input types, high bound of integer inputs (low: -2 when negative, else 0))
CASES = [
    ("conv2d", ops.Conv2d(**CONV), [f32("N", 2, 9, 8), f32(4, 2, 3, 2), f32(4)], 0),
    ("conv2d_grad_input", ops.Conv2dGradInput(**CONV, input_size=(9, 8)), [f32("N", 4, 5, 7), f32(4, 2, 3, 2)], 0),
    ("conv2d_grad_weight", ops.Conv2dGradWeight(**CONV, kernel=(3, 2)), [f32("N", 2, 9, 8), f32("N", 4, 5, 7)], 0),
    ("conv2d_groups", ops.Conv2d(**CONV, groups=2), [f32("N", 4, 9, 8), f32(6, 2, 3, 2), f32(6)], 0),
    ("conv2d_depthwise", ops.Conv2d(**CONV, groups=3), [f32("N", 3, 9, 8), f32(3, 1, 3, 2), f32(3)], 0),
    ("conv2d_grad_input_groups", ops.Conv2dGradInput(**CONV, input_size=(9, 8), groups=2),
     [f32("N", 6, 5, 7), f32(6, 2, 3, 2)], 0),
    ("conv_transpose2d", ops.Conv2dGradInput((2, 3), (1, 0, 0, 2), (1, 1), (8, 10), 3),
     [f32("N", 3, 4, 4), f32(3, 2, 2, 3)], 0),
    ("conv2d_grad_weight_groups", ops.Conv2dGradWeight(**CONV, kernel=(3, 2), groups=2),
     [f32("N", 4, 9, 8), f32("N", 6, 5, 7)], 0),
    ("resize_nearest", ops.Resize((8, 9), (2.0, 3.0)), [f32("N", 2, 4, 3)], 0),
    ("resize_nearest_asymmetric", ops.Resize((5, 7), (5 / 3, 1.75), "nearest", "asymmetric", "round_prefer_ceil"),
     [f32("N", 2, 3, 4)], 0),
    ("resize_linear", ops.Resize((7, 3), (1.4, 0.6), "linear"), [f32("N", 2, 5, 5)], 0),
    ("resize_linear_corners", ops.Resize((6, 1), (1.5, 0.25), "linear", "align_corners"), [f32("N", 1, 4, 4)], 0),
    ("resize_grad", ops.ResizeGrad((7, 3), (1.4, 0.6), "linear", input_size=(5, 5)), [f32("N", 2, 7, 3)], 0),
    ("resize_grad_nearest", ops.ResizeGrad((8, 9), (2.0, 3.0), input_size=(4, 3)), [f32("N", 2, 8, 9)], 0),
    ("max_pool", ops.MaxPool2d(**POOL), [f32("N", 2, 8, 7)], 0),
    ("max_pool_grad", ops.MaxPool2dGrad(**POOL), [f32("N", 2, 8, 7), f32("N", 2, 4, 7)], 0),
    ("avg_pool", ops.AvgPool2d(**POOL), [f32("N", 2, 8, 7)], 0),
    ("avg_pool_grad", ops.AvgPool2dGrad(**POOL, input_size=(8, 7)), [f32("N", 2, 4, 7)], 0),
    ("batch_norm_2d", ops.BatchNormInference(1e-3), [f32("N", 4), f32(4), f32(4), f32(4), f32(4)], 0),
    ("batch_norm_train", ops.BatchNormTrain(), [f32("N", 3, 4, 5), f32(3), f32(3)], 0),
    ("batch_norm_train_grad", ops.BatchNormTrainGrad(),
     [f32("N", 3, 4), f32("N", 3, 4), f32(3), f32(3), f32(3)], 0),
    ("layer_norm", ops.LayerNorm(1e-3), [f32("N", "T", 6), f32(6), f32(6)], 0),
    ("rnn_reverse", ops.RNN(hidden=4, reverse=True), [f32("N", "T", 5), f32(4, 5), f32(4, 4), f32(8)], 0),
    ("lstm_reverse", ops.LSTM(hidden=4, reverse=True), [f32("N", "T", 5), f32(16, 5), f32(16, 4), f32(32)], 0),
    ("gru_onnx_default", ops.GRU(hidden=4, linear_before_reset=False),
     [f32("N", "T", 5), f32(12, 5), f32(12, 4), f32(24)], 0),
    ("gru", ops.GRU(hidden=4), [f32("N", "T", 5), f32(12, 5), f32(12, 4), f32(24)], 0),
    ("dense_vector", ops.Dense(), [f32(5), f32(5, 3), f32(3)], 0),
    ("dense_sequence", ops.Dense(), [f32("N", "T", 5), f32(5, 3), f32(3)], 0),
    ("matmul_batched_transposed", ops.MatMul(True, True), [f32("N", 2, 4, 3), f32(2, 5, 4)], 0),
    ("gelu", ops.Gelu(), [f32("N", 7)], 0),
    ("gelu_grad", ops.GeluGrad(), [f32("N", 7), f32("N", 7)], 0),
    ("leaky_relu", ops.LeakyRelu(0.2), [f32("N", 7)], 0),
    ("hard_sigmoid", ops.HardSigmoid(), [f32("N", 7)], 0),
    ("hard_swish", ops.HardSwish(), [f32("N", 7)], 0),
    ("clip", ops.Clip(-0.5, 1.0), [f32("N", 7)], 0),
    ("clip_max_only", ops.Clip(max=0.25), [f32("N", 7)], 0),
    ("erf", ops.Erf(), [f32("N", 7)], 0),
    ("log_softmax", ops.LogSoftmax(axis=1), [f32("N", 4, 3)], 0),
    ("reshape_symbolic", ops.Reshape(("N", "T", 2, 3)), [f32("N*T", 6)], 0),
    ("reshape_flatten", ops.Reshape(("N*T", 6)), [f32("N", "T", 6)], 0),
    ("broadcast_symbolic", ops.BroadcastTo(("N", "T", 4)), [f32("T", 1)], 0),
    ("slice_to_symbolic", ops.Slice(0, 0, "T"), [f32(5, 2)], 0),
    ("slice", ops.Slice(1, 1, 3), [f32("N", 4)], 0),
    ("slice_step", ops.Slice(1, 1, 6, 2), [f32("N", 7)], 0),
    ("slice_reversed", ops.Slice(2, 4, -1, -1), [f32("N", 2, 5)], 0),
    ("slice_negative_step", ops.Slice(0, 5, 1, -3), [f32(6, "N")], 0),
    ("pad_end", ops.PadEnd(0, 5), [f32("T", 2)], 0),
    ("split", ops.Split(1, (1, 3, 2)), [f32("N", 6)], 0),
    ("concat", ops.Concat(-1), [f32("N", 2), f32("N", 3)], 0),
    ("size_of_axes", ops.SizeOf((0, 2), "f32"), [f32("N", 4, "T")], 0),
    ("size_of_all", ops.SizeOf(None, "f32"), [f32("N", 4, "T")], 0),
    ("mean_keepdims", ops.Mean((0, 2), True), [f32("N", 4, 5)], 0),
    ("max_all", ops.Max(), [f32("N", 4)], 0),
    ("one_hot_out_of_range", ops.OneHot(4), [i64("N", 5)], 6),
    ("gather_negative", ops.Gather(), [f32(7, 3), i64("N", "T")], 7),
    ("scatter_add_repeated", ops.ScatterAdd(4), [i64("N", 5), f32("N", 5, 2)], 4),
    ("causal_mask_static", ops.CausalMask(), [f32("N", 2, 4, 4)], 0),
    ("causal_mask_symbolic", ops.CausalMask(fill=0.0), [f32("N", "T", "T")], 0),
    ("cross_entropy_sequence", ops.CrossEntropy(), [f32("N", "T", 5), i64("N", "T")], 5),
    ("cross_entropy_probabilities", ops.CrossEntropy(), [f32("N", 5), f32("N", 5)], 0),
    ("binary_cross_entropy", ops.BinaryCrossEntropy(), [f32("N", 2), f32("N", 2)], 0),
    ("mse", ops.MeanSquaredError(), [f32("N", 2), f32("N", 2)], 0),
    ("not_equal", ops.Compare("!="), [i64("N", 4), i64(4)], 3),
    ("cast_to_bool", ops.Cast("bool"), [i64("N", 4)], 3),
    ("sign_int", ops.Sign(), [i64("N", 4)], 3),
    ("pow", ops.Pow(), [f32("N", 4), f32()], 0),
]


def _array(t: TensorType, high: int, rng: np.random.Generator) -> np.ndarray:
    shape = tuple(N * N if d == "N*T" else N if isinstance(d, str) else d for d in t.shape)
    if t.dtype == "i64":
        return rng.integers(-2 if high == 7 else 0, high, shape)
    return rng.standard_normal(shape).astype(np.float32)


def case_graph(name: str, op, types: list[TensorType]) -> Graph:
    """The op applied to one input per operand, and a `sizes` input that binds N and T where an operand has only
    N*T."""
    g = Graph(name)
    inputs = [g.add_input(t, f"x{i}", "input") for i, t in enumerate(types)]
    g.add_input(f32("N", "T"), "sizes", "input")
    outs = Builder(g).emit(op, *inputs)
    g.outputs = {f"y{i}": v for i, v in enumerate(outs if isinstance(outs, tuple) else (outs,))}
    return g


def case_feeds(graph: Graph, op, high: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(len(graph.inputs) - 1)
    feeds = {v.name: _array(v.type, high, rng) for v in graph.inputs}
    if isinstance(op, (ops.BatchNormInference, ops.BatchNormTrainGrad)):
        feeds["x4"] = np.abs(feeds["x4"]) + 0.1  # a variance
    if isinstance(op, ops.Pow):
        feeds["x0"] = np.abs(feeds["x0"])  # a real power
    if isinstance(op, (ops.HardSigmoid, ops.HardSwish, ops.Erf)):
        feeds["x0"] = 4 * feeds["x0"]  # both flat ends and the ramp (erf's tail formula beyond 4)
    return feeds
