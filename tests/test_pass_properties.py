"""Every pass and backend clean-up preserves what a graph computes, on random graphs (tests/ir_strategies.py).

A property draws a graph and feeds, evaluates the graph on the reference interpreter (`run_graph`), transforms it,
runs the verifier, evaluates again and compares every output: integers and bools exactly, floats to the dtype's
tolerance scaled by the magnitudes the output is computed from. The other tests check bmc against itself; these
check each transformation against the semantics it must keep: fold, simplify, cse, dce, decompose, precision, the
optimize pipeline, autodiff (against finite differences), the NumPy backend's generated code and memory planner
(outputs, and the arrays it was given left alone), and the ONNX export (with and without its clean-ups, and against
the interpreter).

Budgets: the `ci` hypothesis profile (tests/conftest.py) runs a few dozen examples per property from a fixed seed;
`BMC_FUZZ_EXAMPLES=5000 pytest -s tests/test_pass_properties.py` runs that many from random seeds and prints the
largest error each property saw. A failure prints the shrunk graph as IR text (and the transformed graph as a note).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hypothesis", reason="the property tests need hypothesis (the dev extra)")

from bmc.backends import onnx as onnx_backend
from bmc.backends.numpy import compile_function, generate
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from bmc import ops
from bmc.frontend.preprocess import Preprocess, prologue
from bmc.ir.graph import Builder, Graph
from bmc.ir.printer import print_graph
from bmc.ir.types import NUMPY_NAMES, TensorType
from bmc.ir.verifier import verify
from bmc.ops import emit as E
from bmc.passes import autodiff, cse, dce, decompose, fold, precision, simplify
from bmc.passes.pipeline import optimize
from bmc.runtime import load_source
from tests.conftest import FUZZ_EXAMPLES
from tests.ir_strategies import MAKERS, GraphCase, Spec, assert_close, graphs, output_scales, reference
from tests.test_gradients import check_vjp

ANY = Spec()
CONTINUOUS = Spec(continuous=True)


LARGEST_ERRORS: dict[str, float] = {}  # property -> the largest error seen (relative to the outputs' scale)


def record(name: str, error: float) -> None:
    LARGEST_ERRORS[name] = max(LARGEST_ERRORS.get(name, 0.0), error)


@pytest.fixture(scope="module", autouse=True)
def _report_errors():
    """In the long mode, the largest errors each property saw (shown with `pytest -s`)."""
    yield
    if FUZZ_EXAMPLES:
        print("\nlargest errors, relative to each output's scale:")
        for name, error in sorted(LARGEST_ERRORS.items()):
            print(f"  {name}: {error:.3g}")


def budget(examples: int):
    """`examples` per property in CI; BMC_FUZZ_EXAMPLES in the long mode."""
    return settings(max_examples=FUZZ_EXAMPLES or examples)


def check_transform(case: GraphCase, name: str, transform, tol: float | None = None) -> Graph:
    """reference(transform(graph)) == reference(graph) on the case's feeds, and the result verifies."""
    want = reference(case.graph, case.copy_feeds())
    scales = output_scales(case.graph, case.copy_feeds())
    result = transform(case.graph)
    note(f"after {name}:\n{print_graph(result, locations=False)}")
    verify(result, name)
    record(name, assert_close(reference(result, case.copy_feeds()), want, scales, tol))
    return result


# ---- the passes ------------------------------------------------------------------------------------------------


@budget(100)
@given(graphs(ANY))
def test_fold_preserves_semantics(case):
    check_transform(case, "fold", fold.run)


@budget(100)
@given(graphs(ANY))
def test_simplify_preserves_semantics(case):
    check_transform(case, "simplify", simplify.run)


@budget(100)
@given(graphs(ANY))
def test_cse_preserves_semantics(case):
    check_transform(case, "cse", cse.run)


@budget(60)
@given(graphs(ANY))
def test_dce_preserves_semantics(case):
    check_transform(case, "dce", dce.run)


@budget(60)
@given(graphs(CONTINUOUS))
def test_decomposing_every_composite_op_preserves_semantics(case):
    result = check_transform(case, "decompose", lambda g: decompose.run(g, lambda op: not op.has_decomposition()))
    assert not [n.op.name for n in result.nodes if n.op.has_decomposition()]


@budget(60)
@given(graphs(Spec(floats=("f32",), continuous=True)))
def test_precision_f32_to_f64_agrees_to_f32_tolerance(case):
    want = reference(case.graph, case.copy_feeds())
    scales = output_scales(case.graph, case.copy_feeds())
    result = precision.run(case.graph, "f64")
    note(f"after precision:\n{print_graph(result, locations=False)}")
    verify(result, "precision")
    assert not [v for v in result.inputs if v.type.dtype == "f32"]
    assert not [o for n in result.nodes for o in n.outputs if o.type.dtype == "f32"]
    feeds = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in case.copy_feeds().items()}
    record("precision", assert_close(reference(result, feeds), want, scales, tol=1e-4, same_dtype=False))


@budget(100)
@given(graphs(ANY))
def test_optimize_pipeline_preserves_semantics(case):
    check_transform(case, "optimize", optimize)


# ---- autodiff ------------------------------------------------------------------------------------------------------


def with_gradients(case: GraphCase, seed: int) -> tuple[Graph, dict[str, np.ndarray], list[str]]:
    """loss = sum over the float outputs of sum(out * w), w fixed random weights; the graph returns the loss and
    `grad/<name>` for every float input (as tests/test_gradients.py builds its cases)."""
    g, feeds = case.graph, case.copy_feeds()
    outs = [v for v in dict.fromkeys(g.outputs.values()) if v.type.is_float]
    wrt = [v for v in g.inputs if v.type.is_float]
    assume(outs and wrt)
    shapes = {k: np.shape(v) for k, v in reference(g, feeds).items()}
    by_value = {v: shapes[k] for k, v in g.outputs.items()}
    rng = np.random.default_rng(seed)
    b = Builder(g)
    loss = None
    for i, out in enumerate(outs):
        w = g.add_input(out.type, f"loss_weight{i}", "input")
        feeds[w.name] = rng.standard_normal(by_value[out]).astype(NUMPY_NAMES[out.type.dtype])
        term = E.sum_(b, E.mul(b, out, w))
        loss = term if loss is None else E.add(b, loss, term)
    grads = autodiff.gradients(b, loss, wrt)
    g.outputs = {"loss": loss, **{f"grad/{x.name}": grads[x] for x in wrt}}
    return g, feeds, [x.name for x in wrt]


@budget(60)
@given(graphs(Spec(floats=("f64",), smooth=True)), st.integers(0, 2**32 - 1))
def test_autodiff_gradient_matches_finite_differences(case, seed):
    graph, feeds, wrt = with_gradients(case, seed)
    note(f"with gradients:\n{print_graph(graph, locations=False)}")
    verify(graph, "autodiff")
    error = check_vjp(lambda f: reference(graph, f), feeds, wrt, seed, loss_ulps=64)
    record("autodiff (vs finite differences)", error)


# ---- the NumPy backend: generated code and its memory planner ----------------------------------------------------


def unchanged(given_arrays: dict[str, np.ndarray], before: dict[str, np.ndarray], names) -> None:
    for k in names:
        np.testing.assert_array_equal(given_arrays[k], before[k], err_msg=f"the function wrote into input {k}")


@budget(100)
@given(graphs(ANY))
def test_generated_numpy_code_matches_the_interpreter(case):
    """compile_function's module (decomposition, the memory planner's in-place writes, the code generator) computes
    what the interpreter does, and never writes into the arrays it is given."""
    want = reference(case.graph, case.copy_feeds())
    scales = output_scales(case.graph, case.copy_feeds())
    fn = compile_function(case.graph)
    note(fn.source)
    feeds = case.copy_feeds()
    arrays = dict(feeds)
    got = fn(feeds)
    unchanged(arrays, case.feeds, arrays)
    record("numpy codegen", assert_close(got, want, scales))


@budget(100)
@given(graphs(ANY), st.data())
def test_train_step_writes_only_into_what_it_updates(case, data):
    """The generated module's train_step (backends/numpy `generate`) updates some parameters and state: it may
    reuse their buffers and stores their new values into the `params` and `state` dicts. Every other array it is
    given (parameters it does not update, such as a fixed sinusoid table, the batch, hyperparameters) stays
    untouched. Updates come first, so updated inputs usually die early and their buffers are free for the rest."""
    g = case.graph
    updatable = [v for v in g.inputs if g.roles[v] in ("param", "state")]
    updated = data.draw(st.sets(st.sampled_from(updatable))) if updatable else ()
    step = g.copy_frame(f"{g.name}_train_step")
    b = Builder(step)
    updates = {}
    for v in (v for v in g.inputs if v in updated):
        change = E.const(b, 0.5 if v.type.is_float else 2, v.type.dtype) if v.type.dtype != "bool" else None
        updates[f"{'params' if g.roles[v] == 'param' else 'state'}/{v.name}"] = (
            b.emit(ops.Mul(), v, change) if change is not None else b.emit(ops.Cast("bool"), v))
    step.nodes += g.nodes
    step.outputs = {**g.outputs, **updates}

    forward = Graph("forward")
    x = forward.add_input(TensorType("f32", (2,)), "x", "input")
    forward.outputs = {"y": Builder(forward).emit(ops.Neg(), x)}
    source = generate("random", "", "", forward, step)
    note(source[source.index("def train_step"):source.index("def load_params")])
    module = load_source(source, "<train step>")
    feeds = case.copy_feeds()
    groups = {r: {v.name: feeds[v.name] for v in g.inputs_with_role(*roles)}
              for r, roles in (("params", ("param",)), ("state", ("state",)), ("batch", ("input", "target")))}
    given_arrays = {k: a for group in groups.values() for k, a in group.items()}
    hyper = [feeds[v.name] for v in step.inputs_with_role("hyper")]
    given_arrays.update({v.name: a for v, a in zip(step.inputs_with_role("hyper"), hyper, strict=True)})
    got = module.train_step(groups["params"], groups["state"], groups["batch"], *hyper)
    unchanged(given_arrays, case.feeds, [v.name for v in g.inputs if v not in updated])
    got.update({k: groups[k.split("/")[0]][k.split("/", 1)[1]] for k in updates})
    want = reference(step, case.copy_feeds())
    record("numpy train step", assert_close(got, want, output_scales(step, case.copy_feeds())))


# ---- the ONNX backend's clean-ups ------------------------------------------------------------------------------------


def run_onnx(proto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    predictor = onnx_backend.Predictor(proto, ["CPUExecutionProvider"])
    return predictor(**{k: v for k, v in feeds.items() if k in predictor.inputs})


@budget(60)
@given(graphs(Spec(floats=("f32",), continuous=True)), st.data())
def test_onnx_clean_ups_preserve_semantics(case, data):
    """The export with its clean-ups (CSE, Gemm fusion, transpose merging; with parameters as initializers, batch
    norm folded into a convolution and an input standardization into the first layer) computes what the plainly
    lowered model computes, in onnxruntime."""
    g = case.graph
    static_params = all(v.type.is_static for v in g.params)
    params = {v.name: case.feeds[v.name] for v in g.params} if static_params and data.draw(
        st.booleans()) else None
    raw = [v for v in g.inputs_with_role("input") if v.type.dtype == "f32"]
    preprocess = None
    if raw and data.draw(st.booleans()):  # a preprocessing prologue, which the clean-ups fold into the first layer
        x = data.draw(st.sampled_from(raw))
        preprocess = Preprocess(x.name, scale=0.5, mean=0.25, std=2.0)
        g = prologue(g, x, preprocess)[0]
    scales = output_scales(g, case.copy_feeds())
    plain = onnx_backend.graph_to_model(g, params=params, clean_up=False)
    cleaned = onnx_backend.graph_to_model(g, params=params)
    note(f"params as initializers: {params is not None}; preprocess: {preprocess}")
    note(f"cleaned: {[n.op_type for n in cleaned.graph.node]}")
    onnx_backend.check(cleaned)
    want = run_onnx(plain, case.copy_feeds())
    got = run_onnx(cleaned, case.copy_feeds())
    record("onnx clean-ups", assert_close(got, want, scales))


@budget(60)
@given(graphs(Spec(floats=("f32",), continuous=True)))
def test_onnx_export_matches_the_interpreter(case):
    """The exported model (rules, decompositions and clean-ups) in onnxruntime computes what the interpreter does,
    to f32 tolerance (onnxruntime's kernels round differently)."""
    want = reference(case.graph, case.copy_feeds())
    scales = output_scales(case.graph, case.copy_feeds())
    proto = onnx_backend.graph_to_model(case.graph)
    note(f"exported: {[n.op_type for n in proto.graph.node]}")
    record("onnx export", assert_close(run_onnx(proto, case.copy_feeds()), want, scales, tol=1e-4))


# ---- the generator itself ------------------------------------------------------------------------------------------


EXPECTED_OPS = {
    "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "gelu", "neg", "abs", "sign", "add", "sub", "mul", "div", "pow",
    "maximum", "minimum", "compare", "where", "cast", "const", "sum", "mean", "max", "reshape", "transpose",
    "broadcast_to", "concat", "slice", "split", "pad_end", "matmul", "dense", "softmax", "log_softmax",
    "cross_entropy", "binary_cross_entropy", "mse", "one_hot", "gather", "scatter_add", "size_of", "layer_norm",
    "batch_norm", "batch_norm_train", "conv2d", "max_pool2d", "avg_pool2d", "causal_mask", "gelu_grad",
    "random_uniform_like", "rnn", "lstm", "gru"}


def test_each_op_maker_of_the_generator_emits_its_ops():
    """Each op maker alone, over a few graphs, emits the ops it is meant to (so the properties cannot silently stop
    covering one), and the transpose maker keeps the type of square tensors while moving their data."""
    seen: set[str] = set()
    square_transposes = 0
    for maker in [m.__name__ for m, _, _ in MAKERS]:
        @settings(max_examples=20, derandomize=True, database=None)
        @given(graphs(Spec(makers=(maker,), max_steps=4, backward=False)))
        def collect(case):
            nonlocal square_transposes
            for n in case.graph.nodes:
                seen.add(n.op.name)
                square_transposes += isinstance(n.op, ops.Transpose) and n.op.perm != tuple(range(len(n.op.perm))) \
                    and n.outputs[0].type == n.inputs[0].type

        collect()
    assert EXPECTED_OPS - seen == set()
    assert square_transposes >= 10


def test_a_graph_case_prints_as_ir():
    g = Graph("g")
    x = g.add_input(TensorType("f32", ("N", 8, 8)), "x", "input")
    g.outputs = {"y": Builder(g).emit(ops.Transpose((0, 2, 1)), x, name="y")}
    case = GraphCase(g, {"x": np.zeros((2, 8, 8), np.float32)}, {"N": 2})
    assert "%y: f32[N, 8, 8] = transpose(%x, perm=[0, 2, 1])" in repr(case)
    assert "sizes {'N': 2}; feeds x: float32[2, 8, 8]" in repr(case)

