"""Gradient checks: every differentiable op's `vjp` rule against central finite differences, in float64.

A case builds a tiny graph with the Builder and reduces its outputs to the scalar loss sum(out * w), w fixed random
weights. Autodiff appends the backward graph, and the check (JAX's `check_vjp`) compares <grad, v> with
(f(x + eps v) - f(x - eps v)) / 2 eps along a random direction v through every differentiated input at once; the
relative error is taken against the larger of the two and of sum |grad * v|, the size of the terms of <grad, v>.

Each case runs on the reference interpreter, on the generated NumPy code, on the interpreter after every composite
op of the forward and backward graph is decomposed, and, for composite ops, through autodiff of the decomposed
forward graph (the gradients of the smaller ops).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
from bmc.backends.numpy import compile_function

from bmc import ops
from bmc.frontend.builtins import UNARY
from bmc.ir.graph import Builder, Graph, Value
from bmc.ir.parse import parse_type
from bmc.ir.types import TensorType
from bmc.ops import REGISTRY
from bmc.ops import emit as E
from bmc.passes import autodiff, decompose
from bmc.reference.interpret import run_graph
from bmc.reference.rules import supports
from tests import elementwise_ops

EPS = 1e-5
RTOL = 1e-6
R = np.random.default_rng(20240601)


# ---- inputs ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arg:
    value: np.ndarray
    type: str | None = None  # "f64[N, T, 3]" where the graph should see symbolic dims
    fixed: bool = False  # data (labels, targets, conditions): fed but not differentiated


def normal(*shape: int) -> Arg:
    return Arg(R.standard_normal(shape))


def positive(*shape: int) -> Arg:
    return Arg(R.uniform(0.5, 2.0, shape))


def away_from_zero(*shape: int) -> Arg:
    """Values at least 0.2 from 0, so |x| and relu have no kink within eps."""
    return Arg(R.choice([-1.0, 1.0], shape) * R.uniform(0.2, 2.0, shape))


def distinct(*shape: int) -> Arg:
    """Values at least 0.4 apart: max has no ties."""
    n = int(np.prod(shape))
    return Arg(R.permutation(n).reshape(shape) * 0.5 + R.uniform(0.0, 0.1, shape) - n / 4)


def apart(y: Arg, *shape: int) -> tuple[Arg, Arg]:
    """x and y at least 0.2 apart everywhere (after broadcasting): maximum/minimum have no ties."""
    return Arg(y.value + away_from_zero(*shape).value), y


def fixed(value: np.ndarray | Arg) -> Arg:
    return Arg(value.value if isinstance(value, Arg) else np.asarray(value), fixed=True)


def labels(classes: int, *shape: int) -> Arg:
    return fixed(R.integers(0, classes, shape))


def probabilities(*shape: int) -> np.ndarray:
    e = np.exp(R.standard_normal(shape))
    return e / e.sum(axis=-1, keepdims=True)


# ---- cases -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    op: ops.Op  # the op under test, emitted on all args unless `build` is given
    args: tuple[Arg, ...]
    note: str = ""
    build: Callable[..., Value | tuple[Value, ...]] | None = None
    outputs: tuple[int, ...] | None = None  # the outputs of a multi-output op that the loss reads (None: all)
    bug: str = ""  # a known wrong gradient of the op's own vjp rule: the case is expected to fail
    id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", self.op.name + (f"[{self.note}]" if self.note else ""))

    def forward(self, b: Builder, *xs: Value) -> tuple[Value, ...]:
        outs = self.build(b, *xs) if self.build else b.emit(self.op, *xs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        return outs if self.outputs is None else tuple(outs[i] for i in self.outputs)


DOMAIN: dict[str, Callable[..., Arg]] = {
    "real": normal, "wide": lambda *shape: Arg(3 * normal(*shape).value), "positive": positive,
    "nonzero": away_from_zero}


def case(op: ops.Op, *args: Arg, note: str = "", build=None, outputs=None, bug: str = "") -> Case:
    return Case(op, args, note, build, outputs, bug)


def const(b: Builder, value: float) -> Value:
    return E.const(b, value, "f64")


def tanh_cell() -> Graph:
    """A scan body: h' = tanh(h W + x_t); y_t = h' * x_t (carry h [2, 3], sequence step x_t [2, 3], constant W)."""
    body = Graph("cell")
    h, x, w = (body.add_input(TensorType("f64", shape), name, "input")
               for name, shape in (("h", (2, 3)), ("x", (2, 3)), ("W", (3, 3))))
    b = Builder(body)
    h_next = b.emit(ops.Tanh(), E.add(b, E.matmul(b, h, w), x))
    body.outputs = {"h_next": h_next, "y": E.mul(b, h_next, x)}
    return body


CASES = [
    # elementwise unary
    case(ops.Neg(), normal(2, 3)),
    *(case(r.instance(), DOMAIN[r.domain](2, 3), note=r.note) for r in elementwise_ops.ROWS
      if r.op.differentiable),
    case(ops.LeakyRelu(), away_from_zero(2, 3), note="default alpha"),
    case(ops.HardSigmoid(1 / 6, 0.5), Arg(3 * normal(2, 3).value), note="PyTorch's alpha 1/6"),
    case(ops.Clip(min=0.0), normal(2, 3), note="min only"),
    case(ops.Clip(max=0.3), normal(2, 3), note="max only"),
    # elementwise binary, with broadcasting
    case(ops.Add(), normal(2, 3), normal(2, 3)),
    case(ops.Add(), normal(2, 3), normal(3), note="row broadcast"),
    case(ops.Add(), normal(2, 1), normal(1, 3), note="both broadcast"),
    case(ops.Add(), normal(), normal(2, 3), note="scalar"),
    case(ops.Add(), normal(2, 3), note="x + x", build=lambda b, x: E.add(b, x, x)),
    case(ops.Sub(), normal(2, 3), normal(3), note="row broadcast"),
    case(ops.Sub(), normal(3, 1), normal(1, 2), note="both broadcast"),
    case(ops.Mul(), normal(2, 3), normal(2, 1), note="column broadcast"),
    case(ops.Mul(), normal(), normal(3), note="scalar"),
    case(ops.Mul(), normal(2, 3), note="by a constant", build=lambda b, x: E.mul(b, x, const(b, 2.5))),
    case(ops.Div(), normal(2, 3), positive(3), note="row broadcast"),
    case(ops.Div(), normal(3), away_from_zero(2, 1), note="both broadcast"),
    case(ops.Pow(), positive(2, 3), normal(2, 3), note="tensor exponent"),
    case(ops.Pow(), positive(2, 3), normal(3), note="broadcast exponent"),
    case(ops.Pow(), normal(2, 3), note="constant exponent", build=lambda b, x: b.emit(ops.Pow(), x, const(b, 3.0))),
    case(ops.Maximum(), *apart(normal(2, 3), 2, 3)),
    case(ops.Maximum(), *apart(normal(3), 2, 3), note="broadcast"),
    case(ops.Minimum(), *apart(normal(2, 3), 2, 3)),
    case(ops.Minimum(), *apart(normal(3), 2, 3), note="broadcast"),
    case(ops.Where(), fixed(R.random((2, 3)) < 0.5), normal(2, 3), normal(3), note="broadcast y"),
    case(ops.Where(), fixed(R.random(3) < 0.5), normal(2, 3), normal(2, 1), note="broadcast condition"),
    case(ops.Cast("f64"), normal(2, 3), note="f64 to f64"),
    case(ops.Cast("f64"), normal(2, 3), fixed(R.integers(-3, 4, (2, 3))), note="int operand",
         build=lambda b, x, k: E.mul(b, x, b.emit(ops.Cast("f64"), k))),
    # matrix products
    case(ops.MatMul(), normal(3, 4), normal(4, 2)),
    case(ops.MatMul(True, False), normal(4, 3), normal(4, 2), note="a^T b"),
    case(ops.MatMul(False, True), normal(3, 4), normal(2, 4), note="a b^T"),
    case(ops.MatMul(True, True), normal(4, 3), normal(2, 4), note="a^T b^T"),
    case(ops.MatMul(), normal(2, 3, 4), normal(4, 5), note="batched a"),
    case(ops.MatMul(), normal(3, 4), normal(2, 4, 5), note="batched b"),
    case(ops.MatMul(), normal(2, 1, 3, 4), normal(3, 4, 2), note="broadcast batch dims"),
    case(ops.MatMul(True, True), normal(2, 4, 3), normal(1, 2, 4), note="batched a^T b^T"),
    case(ops.Dense(), normal(3, 4), normal(4, 2), normal(2)),
    case(ops.Dense(), normal(2, 3, 4), normal(4, 2), normal(2), note="rank-3 input"),
    case(ops.Dense(), normal(4), normal(4, 2), normal(2), note="vector input"),
    # neural-network composites and losses
    case(ops.Softmax(-1), normal(2, 3)),
    case(ops.Softmax(0), normal(3, 2), note="axis 0"),
    case(ops.Softmax(1), normal(2, 3, 2), note="middle axis"),
    case(ops.LogSoftmax(-1), normal(2, 3)),
    case(ops.LogSoftmax(0), normal(3, 2), note="axis 0"),
    case(ops.CrossEntropy(), normal(4, 3), labels(3, 4), note="int labels"),
    case(ops.CrossEntropy(), normal(2, 3, 4), labels(4, 2, 3), note="rank-3 logits"),
    case(ops.CrossEntropy(), normal(4, 3), fixed(probabilities(4, 3)), note="probability targets"),
    case(ops.CrossEntropy(), normal(4, 3), Arg(probabilities(4, 3)), note="w.r.t. probability targets"),
    case(ops.BinaryCrossEntropy(), Arg(3 * normal(2, 3).value), fixed(R.integers(0, 2, (2, 3)).astype(float))),
    case(ops.BinaryCrossEntropy(), normal(4, 1), labels(2, 4, 1), note="int targets"),
    case(ops.BinaryCrossEntropy(), normal(2, 3), Arg(R.random((2, 3))), note="w.r.t. float targets"),
    case(ops.MeanSquaredError(), normal(2, 3), normal(2, 3)),
    # reductions
    case(ops.Sum(), normal(2, 3), note="all axes"),
    case(ops.Sum((1,), True), normal(2, 3), note="keepdims"),
    case(ops.Sum((0, 2)), normal(2, 3, 2), note="two axes"),
    case(ops.Sum((-1,)), normal(2, 3), note="negative axis"),
    case(ops.Mean(), normal(2, 3), note="all axes"),
    case(ops.Mean((0,), True), normal(2, 3), note="keepdims"),
    case(ops.Mean((-1,)), normal(2, 3, 2), note="negative axis"),
    case(ops.Max(), distinct(2, 3), note="all axes"),
    case(ops.Max((1,), True), distinct(2, 3), note="keepdims"),
    case(ops.Max((0,)), distinct(3, 2, 2), note="axis 0"),
    # data movement
    case(ops.Reshape((3, 2)), normal(2, 3)),
    case(ops.Reshape((-1, 3)), Arg(R.standard_normal((2, 2, 3)), "f64[N, T, 3]"), note="to N*T"),
    case(ops.Transpose((2, 0, 1)), normal(2, 3, 4)),
    case(ops.BroadcastTo((2, 3)), normal(3), note="new axis"),
    case(ops.BroadcastTo((2, 3)), normal(2, 1), note="stretched axis"),
    case(ops.Concat(0), normal(2, 3), normal(1, 3)),
    case(ops.Concat(-1), normal(2, 1), normal(2, 3), normal(2, 2), note="three on the last axis"),
    case(ops.Slice(0, 1, 3), normal(4, 3), note="middle"),
    case(ops.Slice(-1, 0, 2), normal(2, 3), note="head, negative axis"),
    case(ops.Slice(1, 2, 3), normal(2, 3), note="tail"),
    case(ops.Slice(0, 0, 2), normal(2, 3), note="everything"),
    case(ops.Slice(1, 1, 7, 2), normal(2, 8), note="step 2"),
    case(ops.Slice(0, 0, 5, 3), normal(5, 2), note="step 3 to the end"),
    case(ops.Slice(1, 3, -1, -1), normal(2, 4), note="reversed"),
    case(ops.Slice(-1, 4, 0, -2), normal(2, 6), note="negative step 2"),
    case(ops.PadEnd(0, 5), normal(3, 2), note="zeros appended"),
    case(ops.Split(1, (1, 3, 2)), normal(2, 6), note="three pieces"),
    case(ops.Split(0, (2, 2)), normal(4, 3), outputs=(1,), note="one piece read"),
    case(ops.PadEnd(-1, 4), normal(2, 3), note="last axis"),
    # images [N, C, H, W]
    case(ops.Conv2d(), normal(2, 2, 5, 5), normal(3, 2, 3, 3), normal(3)),
    case(ops.Conv2d((2, 2), (1, 1, 1, 1)), normal(2, 2, 5, 5), normal(3, 2, 3, 3), normal(3), note="stride, padding"),
    case(ops.Conv2d((1, 2), (0, 1, 2, 0), (2, 1)), normal(1, 2, 6, 5), normal(2, 2, 2, 3), normal(2),
         note="uneven stride, padding and dilation"),
    case(ops.Conv2d((1, 1), (1, 0, 0, 1), (1, 1), 2), normal(2, 4, 5, 4), normal(6, 2, 3, 2), normal(6),
         note="two groups"),
    case(ops.Conv2d((2, 1), (1, 1, 1, 1), (1, 2), 3), normal(1, 3, 6, 6), normal(3, 1, 3, 3), normal(3),
         note="depthwise"),
    case(ops.Conv2dGradInput((2, 2), (1, 0, 1, 1), (1, 1), (8, 7)), normal(2, 3, 4, 4), normal(3, 2, 3, 2),
         note="transposed convolution, output padding"),
    case(ops.Conv2dGradInput((2, 1), (0, 1, 0, 0), (2, 1), (8, 4), 2), normal(1, 4, 3, 4), normal(4, 3, 2, 2),
         note="transposed, two groups, dilation"),
    case(ops.Resize((6, 8), (2.0, 2.0)), normal(2, 2, 3, 4), note="nearest"),
    case(ops.Resize((5, 3), (5 / 3, 0.75), "linear"), normal(1, 2, 3, 4), note="linear, half pixel"),
    case(ops.Resize((7, 2), (1.75, 0.5), "linear", "align_corners"), normal(1, 1, 4, 4), note="linear, corners"),
    case(ops.Resize((5, 7), (1.5, 2.5), "nearest", "asymmetric", "ceil"), normal(1, 2, 3, 3), note="ceil"),
    case(ops.ResizeGrad((6, 5), (2.0, 1.25), "linear", "pytorch_half_pixel", input_size=(3, 4)), normal(1, 2, 6, 5),
         note="transposed linear"),
    case(ops.MaxPool2d((2, 2), (2, 2)), distinct(2, 2, 4, 4)),
    case(ops.MaxPool2d((3, 3), (2, 2), (1, 1, 1, 1)), distinct(1, 2, 5, 5), note="overlapping, padded"),
    case(ops.AvgPool2d((2, 2), (2, 2)), normal(2, 2, 4, 4)),
    case(ops.AvgPool2d((3, 3), (1, 1), (1, 1, 1, 1)), normal(1, 2, 4, 4), note="padding not counted"),
    # lookups, attention, normalization
    case(ops.Gather(), normal(5, 3), fixed(np.array([[0, 2, 2, 4], [1, 0, 2, 2]])), note="repeated ids"),
    case(ops.CausalMask(), normal(2, 3, 3), note="then softmax",
         build=lambda b, s: b.emit(ops.Softmax(-1), b.emit(ops.CausalMask(), s))),
    case(ops.CausalMask(0.0), normal(3, 3), note="fill 0"),
    case(ops.LayerNorm(), normal(2, 4), normal(4), normal(4)),
    case(ops.LayerNorm(1e-3), normal(2, 3, 4), normal(4), normal(4), note="rank 3"),
    case(ops.BatchNormInference(), normal(2, 3, 2, 2), normal(3), normal(3), normal(3), positive(3)),
    case(ops.BatchNormInference(), normal(4, 3), normal(3), normal(3), normal(3), positive(3), note="[N, C]"),
    case(ops.BatchNormTrain(), normal(3, 2, 2, 2), normal(2), normal(2), outputs=(0,), note="batch statistics"),
    case(ops.BatchNormTrain(1e-3), normal(5, 3), normal(3), normal(3), note="[N, C], statistics read too"),
    # recurrences: x [N, T, F], W [gates*H, F], R [gates*H, H], B [2*gates*H]
    case(ops.Scan(tanh_cell()), normal(2, 3), normal(2, 4, 3), normal(3, 3), outputs=(0, 1), note="last carry and ys"),
    case(ops.Scan(tanh_cell(), reverse=True), normal(2, 3), normal(2, 4, 3), normal(3, 3), outputs=(1,),
         note="reverse"),
    case(ops.Scan(tanh_cell()), normal(2, 3), normal(2, 4, 3), normal(3, 3), outputs=(2,), note="history"),
    case(ops.RNN(3), normal(2, 4, 2), normal(3, 2), normal(3, 3), normal(6)),
    case(ops.RNN(3, reverse=True), normal(2, 4, 2), normal(3, 2), normal(3, 3), normal(6), note="reverse"),
    case(ops.LSTM(2), normal(2, 3, 2), normal(8, 2), normal(8, 2), normal(16)),
    case(ops.GRU(2), normal(2, 3, 2), normal(6, 2), normal(6, 2), normal(12), note="linear before reset"),
    case(ops.GRU(2, linear_before_reset=False), normal(2, 3, 2), normal(6, 2), normal(6, 2), normal(12), note="ONNX"),
]


# ---- building and checking -------------------------------------------------------------------------------------

NUMPY_TO_DTYPE = {"float64": "f64", "int64": "i64", "int32": "i32", "bool": "bool"}


def is_primitive(op: ops.Op) -> bool:
    return not op.has_decomposition()


def input_type(arg: Arg) -> TensorType:
    return parse_type(arg.type) if arg.type else TensorType(NUMPY_TO_DTYPE[arg.value.dtype.name], arg.value.shape)


def build(c: Case, decompose_forward: bool = False) -> tuple[Graph, dict[str, np.ndarray], list[str]]:
    """The graph of loss = sum(out * w) over the op's outputs and its gradients `grad/<input>`; the feeds; the
    differentiated inputs."""
    g = Graph(c.op.name)
    xs = [g.add_input(input_type(a), f"x{i}", "input" if a.fixed else "param") for i, a in enumerate(c.args)]
    feeds = {x.name: a.value for x, a in zip(xs, c.args, strict=True)}
    g.outputs = {f"out{i}": out for i, out in enumerate(c.forward(Builder(g), *xs))}
    assert any(type(n.op) is type(c.op) for n in g.nodes), f"case {c.id} does not use {c.op.name}"
    if decompose_forward:
        g = decompose.run(g, is_primitive)
    rng = np.random.default_rng(zlib.crc32(c.id.encode()))
    shapes = {k: np.shape(v) for k, v in interpreted(g)(feeds).items()}
    b = Builder(g)
    loss = None
    for key, out in g.outputs.items():
        w = g.add_input(out.type, key.replace("out", "w"), "input")
        feeds[w.name] = rng.standard_normal(shapes[key])
        term = E.sum_(b, E.mul(b, out, w))
        loss = term if loss is None else E.add(b, loss, term)
    wrt = g.params
    grads = autodiff.gradients(b, loss, wrt)
    g.outputs = {"loss": loss, **{f"grad/{x.name}": grads[x] for x in wrt}}
    return g, feeds, [x.name for x in wrt]


def check_vjp(run: Callable[[dict], dict], feeds: dict[str, np.ndarray], wrt: list[str], seed: int,
              loss_ulps: float = 0.0) -> float:
    """The relative error of <grad, v> against finite differences (asserted below RTOL). With `loss_ulps`, the
    finite difference may be off by that many units in the last place of the loss (divided by 2 EPS) on top: it
    cannot resolve a directional derivative below the loss's rounding error / EPS (random graphs whose tanh
    saturates have such)."""
    rng = np.random.default_rng(seed)
    out = run(feeds)
    v = {n: rng.standard_normal(np.shape(feeds[n])) for n in wrt}
    analytic = sum(float(np.vdot(out[f"grad/{n}"], v[n])) for n in wrt)
    magnitude = sum(float(np.abs(out[f"grad/{n}"] * v[n]).sum()) for n in wrt)  # terms cancel in unlucky directions

    def loss_at(step: float) -> float:
        return float(run({**feeds, **{n: feeds[n] + step * v[n] for n in wrt}})["loss"])

    above, below = loss_at(EPS), loss_at(-EPS)
    numeric = (above - below) / (2 * EPS)
    rounding = loss_ulps * np.finfo(np.float64).eps * max(abs(above), abs(below)) / (2 * EPS)
    error = max(abs(analytic - numeric) - rounding, 0.0) / max(abs(analytic), abs(numeric), magnitude, 1e-12)
    assert error < RTOL, f"<grad, v> = {analytic!r}, finite differences give {numeric!r} (relative error {error:.2e})"
    return error


def interpreted(graph: Graph) -> Callable[[dict], dict]:
    """The reference interpreter (after decomposing the ops that have no NumPy rule, as code generation does)."""
    graph = decompose.run(graph, supports)
    return lambda feeds: run_graph(graph, feeds)


def decomposed(graph: Graph) -> Callable[[dict], dict]:
    """The interpreter on the graph with every composite op, forward and backward, in smaller ops."""
    return interpreted(decompose.run(graph, is_primitive))


EVALUATORS: dict[str, Callable[[Graph], Callable[[dict], dict]]] = {
    "interpret": interpreted,
    "codegen": compile_function,
    "decomposed": decomposed,
}


def params(cases: list[Case], bug_marks: bool = True) -> list:
    return [pytest.param(c, id=c.id, marks=pytest.mark.xfail(strict=True, reason=c.bug) if c.bug and bug_marks else ())
            for c in cases]


@pytest.mark.parametrize("evaluator", EVALUATORS)
@pytest.mark.parametrize("c", params(CASES))
def test_gradient_matches_finite_differences(c: Case, evaluator: str):
    graph, feeds, wrt = build(c)
    check_vjp(EVALUATORS[evaluator](graph), feeds, wrt, seed=zlib.crc32(c.id.encode()))


@pytest.mark.parametrize(("op", "inputs", "expected"), [
    (ops.Max((1,)), [[[1.0, 3.0, 3.0]]], [[[0.0, 0.5, 0.5]]]),  # tied maxima share the gradient evenly
    (ops.Maximum(), [2.0, 2.0], [1.0, 0.0]),  # a tie sends the gradient to the first argument
    (ops.Minimum(), [2.0, 2.0], [1.0, 0.0]),
    # PyTorch's choices at the ends of a piece: torch.clamp passes the gradient at a bound (even min == max)
    (ops.Clip(-1.0, 1.0), [[-1.0, 1.0, 2.0, -2.0, np.nan]], [[1.0, 1.0, 0.0, 0.0, 0.0]]),
    (ops.Clip(1.0, 1.0), [[1.0, 0.0]], [[1.0, 0.0]]),
    (ops.HardSigmoid(1 / 6, 0.5), [[-3.0, 3.0, 0.0]], [[0.0, 0.0, 1 / 6]]),  # only strictly inside the ramp
    (ops.HardSwish(), [[-3.0, 3.0, 0.0]], [[0.0, 1.0, 0.5]]),
    (ops.LeakyRelu(0.1), [[0.0]], [[0.1]]),
], ids=["max", "maximum", "minimum", "clip", "clip_point", "hard_sigmoid", "hard_swish", "leaky_relu"])
def test_gradient_at_ties(op, inputs, expected):
    """Where finite differences cannot decide, the documented subgradient."""
    graph, feeds, wrt = build(case(op, *(Arg(np.array(x)) for x in inputs)))
    feeds["w0"] = np.ones_like(feeds["w0"])
    out = interpreted(graph)(feeds)
    assert [out[f"grad/{n}"].tolist() for n in wrt] == expected


@pytest.mark.filterwarnings("ignore:divide by zero", "ignore:invalid value")
def test_pow_exponent_gradient_at_a_zero_base_is_zero():
    """d/dy 0^y = 0 for y > 0 (relu(x) ** p with a trainable p hits this)."""
    graph, feeds, _ = build(case(ops.Pow(), Arg(np.array([0.0, 1.5])), Arg(np.array([2.0, 2.0]))))
    feeds["w0"] = np.ones(2)
    assert run_graph(graph, feeds)["grad/x1"][0] == 0.0


def test_every_bm_function_has_a_row_in_the_elementwise_table():
    assert set(UNARY.values()) == {r.op for r in elementwise_ops.ROWS}


def test_every_differentiable_op_has_a_gradient_case():
    differentiable = {name for name, op in REGISTRY.items() if op.differentiable and name != "const"}
    assert differentiable - {c.op.name for c in CASES} == set()


# ---- decompositions --------------------------------------------------------------------------------------------

COMPOSITE_CASES = [c for c in CASES if c.op.has_decomposition()]


@pytest.mark.parametrize("c", params(COMPOSITE_CASES, bug_marks=False))
def test_decomposition_matches_the_numpy_rule(c: Case):
    """Forward and backward values of the graph agree before and after decomposing every composite op (an op with
    no NumPy rule is decomposed on both sides: for it, the gradient checks are the ones that count)."""
    graph, feeds, _ = build(c)
    direct = interpreted(graph)(feeds)
    expanded = decomposed(graph)(feeds)
    for key, value in direct.items():
        np.testing.assert_allclose(expanded[key], value, rtol=1e-12, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("c", params(COMPOSITE_CASES, bug_marks=False))
def test_gradient_of_the_decomposed_forward_graph(c: Case):
    """Autodiff through the smaller ops of a decomposition (the bug cases pass here: they are the vjp rule's)."""
    graph, feeds, wrt = build(c, decompose_forward=True)
    assert not any(n.op.has_decomposition() for n in graph.nodes)
    check_vjp(interpreted(graph), feeds, wrt, seed=zlib.crc32(c.id.encode()))


def test_every_composite_op_is_checked_against_its_decomposition():
    """Composite ops appear in the graphs of COMPOSITE_CASES: as the op under test, or in a backward graph
    (gelu's gradient is GeluGrad)."""
    seen = {type(n.op) for c in COMPOSITE_CASES for n in build(c)[0].nodes}
    composites = {op for op in REGISTRY.values() if op.has_decomposition()}
    assert composites - seen == set()
