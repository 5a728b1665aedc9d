"""Regression tests for the silent wrong results outsiders found (issue 8), one test per finding.

Each compares bmc with an independent computation (NumPy written from the definition, or PyTorch in float64 where
it is installed), never with bmc itself.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
from bmc.backends.numpy.memory import PlanError, plan, verify

import bmc
from bmc.diagnostics import BmcError, UsageError
from bmc.ir.parse import parse_graph
from bmc.passes import simplify
from bmc.runtime import load_source

try:
    import torch
except ImportError:  # pragma: no cover - torch is a test-only extra that .ci/run installs
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (torch==2.13.0, CPU) is not installed")


def compile_text(text: str, **kw) -> bmc.Model:
    return bmc.compile_string(textwrap.dedent(text), **kw)


def forward(model: bmc.Model, params: dict, *inputs: np.ndarray) -> dict:
    return load_source(model.generate()).forward(params, *inputs)


# ---- 1. simplify deleted transposes whose output type equals their input type ------------------------------------


def test_transpose_of_a_square_batch_is_kept():
    model = compile_text("""
        model m() {
            input x: f32[N, 8, 8]
            output y = transpose(x, [0, 2, 1])
        }
    """)
    x = np.random.default_rng(0).normal(size=(3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(forward(model, {}, x)["y"], x.transpose(0, 2, 1))
    assert "transpose" in model.ir()


def test_tied_square_weights_are_transposed():
    model = compile_text("""
        model m() {
            input x: f32[N, 4]
            param W: f32[4, 4] ~ normal(std = 1)
            output y = (x @ W) @ transpose(W)
        }
    """)
    params, _ = model.init_params(0)
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    expected = (x @ params["W"]) @ params["W"].T
    np.testing.assert_allclose(forward(model, params, x)["y"], expected, rtol=1e-5, atol=1e-5)


def test_simplify_keeps_a_non_identity_transpose_and_drops_the_identity():
    graph = parse_graph("""
        graph g(input %x: f32[N, 8, 8]) {
          %t: f32[N, 8, 8] = transpose(%x, perm=[0, 2, 1])
          %i: f32[N, 8, 8] = transpose(%t, perm=[0, 1, 2])
          return y = %i
        }
    """)
    out = simplify.run(graph)
    assert [n.op.name for n in out.nodes] == ["transpose"]
    assert out.nodes[0].op.perm == (0, 2, 1)


@needs_torch
def test_attention_with_as_many_heads_as_tokens_matches_pytorch():
    tokens, width = 4, 8
    model = compile_text(f"""
        model m() {{
            input x: f32[N, {tokens}, {width}]
            output y = attention(x, {tokens})
        }}
    """, dtype="f64")
    params, _ = model.init_params(0)
    x = np.random.default_rng(2).normal(size=(2, tokens, width))
    mha = torch.nn.MultiheadAttention(width, tokens, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        p = {k: torch.from_numpy(v) for k, v in params.items()}
        mha.in_proj_weight.copy_(torch.cat([p[f"y.{n}.W"].T for n in "qkv"]))
        mha.in_proj_bias.copy_(torch.cat([p[f"y.{n}.b"] for n in "qkv"]))
        mha.out_proj.weight.copy_(p["y.out.W"].T)
        mha.out_proj.bias.copy_(p["y.out.b"])
        t = torch.from_numpy(x)
        expected = mha(t, t, t, need_weights=False)[0].numpy()
    np.testing.assert_allclose(forward(model, params, x)["y"], expected, rtol=1e-10, atol=1e-12)


# ---- 2. the NumPy memory planner used a graph input's buffer as scratch -------------------------------------------

SINUSOID = """
    model tf(tokens = 8, width = 8, classes = 3) {
        input  rows: f32[N, tokens, width]
        target label: i64[N]
        h = sinusoidal_positions(dense(rows, width))
        logits = dense(mean(h, axis = 1), classes)
        output probs = softmax(logits)
        loss = cross_entropy(logits, label)
    }
"""


def test_train_step_never_writes_into_tables_it_does_not_update():
    model = compile_text(SINUSOID)
    module = load_source(model.generate())
    params, state = model.init_params(0)
    table = params["h.sinusoid"].copy()
    rng = np.random.default_rng(0)
    batch = {"rows": rng.normal(size=(4, 8, 8)).astype(np.float32), "label": np.array([0, 1, 2, 0])}
    before = {k: v.copy() for k, v in batch.items()}
    for _ in range(3):
        module.train_step(params, state, batch, np.float32(0.01))
    np.testing.assert_array_equal(params["h.sinusoid"], table)
    for k in batch:
        np.testing.assert_array_equal(batch[k], before[k])


def test_updated_parameters_end_holding_their_new_value_in_place():
    """The caller's arrays of updated parameters are updated in place, never left holding a temporary."""
    model = compile_text(SINUSOID)
    module = load_source(model.generate())
    params, state = model.init_params(0)
    arrays = dict(params)
    batch = {"rows": np.ones((4, 8, 8), np.float32), "label": np.array([0, 1, 2, 0])}
    module.train_step(params, state, batch, np.float32(0.01))
    for name, a in arrays.items():
        assert params[name] is a or not np.shares_memory(params[name], a), name
        if params[name] is not a:  # a parameter stored as a new array leaves the old one as it was
            assert name == "h.sinusoid" or not np.array_equal(params[name], a)


def test_plan_verifier_rejects_writing_into_a_caller_array():
    graph = parse_graph("""
        graph g(param %table: f32[4], input %x: f32[4]) {
          %a: f32[4] = add(%table, %x)
          %b: f32[4] = exp(%a)
          return b = %b
        }
    """)
    table = graph.inputs[0]
    exp_node = graph.nodes[1]
    verify(graph, plan(graph), {})  # the planner's own plan is sound
    with pytest.raises(PlanError, match="caller's array 'table'"):
        verify(graph, {graph.nodes[0]: table}, {})  # a plan that writes into the table
    assert exp_node not in plan(graph) or plan(graph)[exp_node] is not table


# ---- 3. f64 builds rounded backward-pass constants to float32 -------------------------------------------------------


def test_f64_build_keeps_constants_in_f64():
    model = compile_text("""
        model m() {
            input x: f32[N, 3]
            target y: f32[N, 1]
            param w: f32[3, 1] = 1
            loss = mse(x @ w, y) + 0.1 * l2(w)
        }
        train m { optimizer = gd(lr = 1) }
    """, dtype="f64")
    source = model.generate()
    assert "0.10000000149011612" not in source
    module = load_source(source)
    params, state = model.init_params(0)
    zeros = {"x": np.zeros((2, 3)), "y": np.zeros((2, 1))}
    module.train_step(params, state, zeros, np.float64(1.0))
    # d/dw 0.1 * sum(w^2) at w = 1 is exactly 0.2; the data term is zero
    np.testing.assert_array_equal(params["w"], np.full((3, 1), 1.0 - 0.2))


def test_an_f64_parameter_of_an_f32_loss_steps_with_an_f64_learning_rate():
    # the learning rate was an f32 input whenever the loss was f32, so an f64 parameter moved by 0.10000000149
    # (found by the differential tester: 1.4e-8 relative error against PyTorch)
    model = compile_text("""
        model m() {
            input x: f64[N, 1]
            param w: f64[] = 0
            loss = cast(mean(x * w), f32)
        }
        train m { optimizer = sgd(lr = 0.1) }
    """)
    module = load_source(model.generate())
    assert module.HYPER["lr"][0] == "f64"
    params, state = model.init_params(0)
    module.train_step(params, state, {"x": np.ones((2, 1))}, np.float64(0.1))
    assert params["w"] == -0.1  # the gradient is exactly 1


# ---- 4. fan-based initializers on recurrent layers used 4 x hidden as fan-in ----------------------------------------


@pytest.mark.parametrize(("layer", "gates"), [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_he_init_of_a_recurrent_kernel_uses_the_input_features(layer, gates):
    features, hidden = 4, 64
    model = compile_text(f"""
        model m() {{
            input x: f32[N, 10, {features}]
            output y = {layer}(x, {hidden}, init = he)
        }}
    """)
    params, _ = model.init_params(0)
    w = params["y.W"]
    assert w.shape == (gates * hidden, features)
    assert w.std() == pytest.approx(np.sqrt(2.0 / features), rel=0.1)


def test_he_uniform_init_of_a_recurrent_kernel_uses_the_input_features():
    model = compile_text("""
        model m() {
            input x: f32[N, 10, 16]
            output y = lstm(x, 32, init = he_uniform)
        }
    """)
    w = model.init_params(0)[0]["y.W"]
    assert np.abs(w).max() <= np.sqrt(6.0 / 16) and np.abs(w).max() > 0.9 * np.sqrt(6.0 / 16)


# ---- 5. parameter names depended on statement order -----------------------------------------------------------------

NAMES_A_FIRST = """
    model m() {
        input x: f32[N, 3]
        a = dense(x, 3) + dense(b, 3) + dense(x, 3)
        b = relu(x)
        output a
    }
"""


def test_parameter_names_do_not_depend_on_statement_order():
    first = compile_text(NAMES_A_FIRST)
    swapped = compile_text(NAMES_A_FIRST.replace("        b = relu(x)\n", "").replace(
        "        a = dense", "        b = relu(x)\n        a = dense"))
    names = sorted(p.name for p in first.compiled.model.params)
    assert names == sorted(p.name for p in swapped.compiled.model.params)
    assert names == ["a.dense.W", "a.dense.b", "a.dense_1.W", "a.dense_1.b", "a.dense_2.W", "a.dense_2.b"]


def test_two_sinusoidal_tables_in_one_statement_are_named_apart():
    model = compile_text("""
        model m() {
            input x: f32[N, 4, 6]
            output y = sinusoidal_positions(x) + sinusoidal_positions(x * 2.0)
        }
    """)
    assert len({p.name for p in model.compiled.model.params}) == 2


# ---- 6. out-of-range values: huge depths, fractional ids, sequences longer than the table ---------------------------


def test_one_hot_depth_beyond_any_size_is_an_error():
    with pytest.raises(BmcError, match="one_hot's depth must be a positive integer of at most 2147483647"):
        compile_text("""
            model m() {
                input ids: i64[N]
                output y = one_hot(ids, 9223372036854775807)
            }
        """)


@pytest.mark.parametrize(("shape", "call"), [
    ("[N, 5, 2]", "lstm(x, 0)"),
    ("[N, 1, 4, 4]", "conv2d(x, 0, 2)"),
    ("[N, 1, 4, 4]", "conv2d(x, 2, [3, 0])"),
    ("[N, 10]", "dense(x, -3)"),
    ("[N, 10]", "embedding(cast(x, i64), 0, 4)"),
])
def test_zero_and_negative_sizes_are_errors(shape, call):
    with pytest.raises(BmcError, match="must be a positive integer"):
        compile_text(f"""
            model m() {{
                input x: f32{shape}
                output y = {call}
            }}
        """)


def test_fractional_data_for_an_integer_input_is_an_error():
    model = compile_text("""
        model m(vocab = 20) {
            input ids: i64[N, 64]
            target y: i64[N]
            logits = dense(mean(embedding(ids, vocab, 4), axis = 1), 10)
            output probs = softmax(logits)
            loss = cross_entropy(logits, y)
        }
    """)
    from bmc.data import Dataset

    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, size=(20, 64)) / 16.0  # pixels scaled to [0, 1]: casting them would give ids 0 and 1
    data = Dataset("fractions", x, rng.integers(0, 10, 20), x, rng.integers(0, 10, 20), 10, "fractional pixels")
    with pytest.raises(BmcError, match="fractional values such as"):
        model.train(data, epochs=1, log=lambda *_: None, progress=False)


LEARNED = """
    model m(vocab = 10, width = 8) {
        input tokens: i64[N, T]
        target next: i64[N, T]
        logits = dense(learned_positions(embedding(tokens, vocab, width), 16), vocab)
        output probs = softmax(logits)
        loss = cross_entropy(logits, next)
    }
"""


def test_sequence_longer_than_learned_positions_is_a_located_error(tmp_path):
    model = compile_text(LEARNED)
    module = load_source(model.generate())
    params, _ = model.init_params(0)
    assert module.forward(params, np.zeros((2, 16), np.int64))["probs"].shape == (2, 16, 10)
    with pytest.raises(module.InputError, match=r"<string>:5: .*T = 17, but this model takes at most T = 16"):
        module.forward(params, np.zeros((2, 17), np.int64))
    build = bmc.load(model.build(tmp_path / "b"))
    with pytest.raises(UsageError, match="T = 17"):
        build.predict(np.zeros((2, 17), np.int64))


def test_training_window_longer_than_learned_positions_is_a_located_error(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("abcdefghij" * 200, encoding="utf-8")
    model = compile_text(LEARNED + "\ntrain m { sequence = 32 }\n")
    with pytest.raises(BmcError, match="training window is 32 characters, but this model takes sequences of at most "
                                       "16") as e:
        model.train(f"text:{text}", epochs=1, log=lambda *_: None, progress=False)
    assert e.value.span is not None and e.value.span.line == 5


@pytest.mark.parametrize(("ids", "what"), [([[0, 10]], "id 10"), ([[-1, 0]], "id -1")])
def test_ids_out_of_range_are_errors_not_other_rows(ids, what):
    model = compile_text(LEARNED)
    module = load_source(model.generate())
    params, _ = model.init_params(0)
    with pytest.raises(module.InputError, match=f"{what} is out of range: expected 0 to 9"):
        module.forward(params, np.asarray(ids, np.int64))


def test_class_index_out_of_range_is_an_error():
    model = compile_text(LEARNED)
    module = load_source(model.generate())
    params, state = model.init_params(0)
    batch = {"tokens": np.zeros((1, 2), np.int64), "next": np.array([[0, -1]])}
    with pytest.raises(module.InputError, match="class index -1 is out of range"):
        module.train_step(params, state, batch, np.float32(0.01))


@pytest.mark.parametrize("call", ["avg_pool(x, size = 1, padding = 1)", "max_pool(x, size = [1, 3], padding = 1)"])
def test_pooling_padding_as_large_as_the_window_is_an_error(call):
    """A window lying entirely in the padding has no maximum and a mean of 0 / 0 (and onnxruntime refuses it)."""
    with pytest.raises(BmcError, match="padding 1 must be smaller than its window"):
        compile_text(f"""
            model m() {{
                input x: f32[N, 1, 4, 4]
                output y = {call}
            }}
        """)


def test_where_with_a_zero_branch_is_zero_where_the_other_branch_is_infinite():
    # the NumPy backend wrote where(c, x, 0) as x * c: inf * 0 is nan (ONNX's Where gave 0)
    model = compile_text("""
        model m() {
            input x: f32[N, 2]
            output y = where(x > 0, 1 / x, 0)
        }
    """)
    x = np.array([[0.0, 2.0]], np.float32)
    with np.errstate(divide="ignore"):
        y = load_source(model.generate()).forward({}, x)["y"]
    np.testing.assert_array_equal(y, [[0.0, 0.5]])


def test_an_output_that_is_a_parameter_does_not_change_when_a_train_step_updates_it():
    # `output d = dropout(p, 0.5)` is p itself in inference: forward returned the parameter's array, which the next
    # train step updated in place (found by the differential tester: the held output moved by 0.55)
    model = compile_text("""
        model m() {
            input x: f32[N, 3]
            target y: f32[N, 3]
            param p: f32[3] = 1
            output d = dropout(p, 0.5)
            loss = mse(x + p, y)
        }
        train m { optimizer = sgd(lr = 0.5) }
    """)
    module = load_source(model.generate())
    params, state = model.init_params(0)
    held = module.forward(params, np.zeros((2, 3), np.float32))["d"]
    module.train_step(params, state, {"x": np.zeros((2, 3), np.float32), "y": np.zeros((2, 3), np.float32)},
                      *({"lr": np.float32(0.5), "rng": np.int64(0)}[h] for h in module.HYPER))
    assert not np.array_equal(params["p"], np.ones(3))
    np.testing.assert_array_equal(held, np.ones(3))


# ---- found by the long differential run: CUDA batch norm read a symbolic dim as raw C ----------------------------


@pytest.mark.parametrize("dim", ["n", "T"])
def test_cuda_batch_norm_over_a_symbolic_plane_uses_the_dims_value(dim):
    # the kernels wrote the plane size as the dim's own name: `T` failed in g++ (the random program), and `n`, the
    # kernel's own element count, compiled and silently put every element in channel 0
    from bmc.backends import cuda
    from bmc.backends.cuda.runtime import Library

    from tests.cuda_emulator import emulate

    graph = parse_graph(f"""graph bn(input %x: f64[N, 2, {dim}], input %g: f64[2], input %b: f64[2],
                                     input %dy: f64[N, 2, {dim}]) {{
      %y: f64[N, 2, {dim}], %m: f64[2], %v: f64[2] = batch_norm_train(%x, %g, %b, eps=1e-05)
      %dx: f64[N, 2, {dim}], %dg: f64[2], %db: f64[2] = batch_norm_train_grad(%x, %dy, %g, %m, %v, eps=1e-05)
      return y = %y, dx = %dx, dg = %dg
    }}""")
    prog = cuda.generate("bn", "bn.bm", "", {"run": graph}, "f64")
    session = Library(emulate.build(prog.source), prog.manifest).session()
    rng = np.random.default_rng(0)
    x, dy = rng.standard_normal((3, 2, 5)), rng.standard_normal((3, 2, 5))
    x[:, 1] += 4.0  # channel 1 apart from channel 0: mixing them shows
    g, b = np.array([1.5, 0.5]), np.array([0.25, -1.0])
    got = session.run("run", {"x": x, "g": g, "b": b, "dy": dy})
    # the definition: per channel over the batch and the plane, biased variance
    mean, var = x.mean(axis=(0, 2), keepdims=True), x.var(axis=(0, 2), keepdims=True)
    xhat = (x - mean) / np.sqrt(var + 1e-5)
    want_y = xhat * g[None, :, None] + b[None, :, None]
    dxhat = dy * g[None, :, None]
    want_dx = (dxhat - dxhat.mean(axis=(0, 2), keepdims=True)
               - xhat * (dxhat * xhat).mean(axis=(0, 2), keepdims=True)) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(got["y"], want_y, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["dx"], want_dx, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(got["dg"], (dy * xhat).sum(axis=(0, 2)), rtol=1e-10)


# ---- found by the long differential run: sigmoid lost its relative precision below zero ---------------------------


SIGMOID_AT = np.array([-30.0, -13.75, -5.0, -0.5, 0.0, 0.5, 5.0, 13.75, 30.0])


def _exact_sigmoid(x: np.ndarray) -> np.ndarray:
    return np.array([1.0 / (1.0 + math.exp(-v)) for v in x.astype(np.float64)])


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_sigmoid_keeps_its_relative_precision_for_very_negative_inputs(dtype):
    # (1 + tanh(x / 2)) / 2 cancelled: 3% off in float32 at x = -13.75 (a confident logit's probability, and
    # through it binary cross-entropy's gradient: a batch of one trained differently from PyTorch's float32)
    model = compile_text(f"""
        model m() {{
            input x: {dtype}[N]
            output p = sigmoid(x)
        }}""")
    got = forward(model, {}, SIGMOID_AT.astype(np.float32 if dtype == "f32" else np.float64))["p"]
    np.testing.assert_allclose(got, _exact_sigmoid(SIGMOID_AT), rtol=3e-7 if dtype == "f32" else 1e-15)


def test_cuda_sigmoid_keeps_its_relative_precision_for_very_negative_inputs():
    from bmc.backends import cuda
    from bmc.backends.cuda.runtime import Library

    from tests.cuda_emulator import emulate

    graph = parse_graph("""graph s(input %x: f64[N]) {
      %p: f64[N] = sigmoid(%x)
      return p = %p
    }""")
    prog = cuda.generate("s", "s.bm", "", {"run": graph}, "f64")
    got = Library(emulate.build(prog.source), prog.manifest).session().run("run", {"x": SIGMOID_AT})["p"]
    np.testing.assert_allclose(got, _exact_sigmoid(SIGMOID_AT), rtol=1e-15)


def test_binary_cross_entropy_gradient_of_a_confident_right_logit_is_exact_in_float32():
    # sigmoid(z) - y for z = 10.6, y = 1 cancels to a float32 error of 0.25%; the gradient is -sigmoid(-z)
    from bmc.backends.numpy import compile_function

    from bmc.passes.pipeline import optimize
    from bmc.train.step import gradient_graph

    model = compile_text("""
        model m() {
            input z: f32[N, 1]
            target y: f32[N, 1]
            param w: f32[1, 1] ~ ones
            output p = z * w
            loss = binary_cross_entropy(p, y)
        }""")
    z = np.array([[10.6], [-12.0]], np.float32)
    y = np.array([[1.0], [0.0]], np.float32)
    grad = compile_function(optimize(gradient_graph(model.compiled.model)))
    got = grad({"z": z, "y": y, "w": np.ones((1, 1), np.float32)})["grad/w"]
    zz = z.astype(np.float64)[:, 0]
    # d/dw mean(bce(z w, y)) at w = 1 is mean((sigmoid(z) - y) z), in float64 from the definition
    want = np.mean((_exact_sigmoid(zz) - y.astype(np.float64)[:, 0]) * zz)
    assert abs(float(got[0, 0]) - want) <= 3e-7 * abs(want)


# ---- found by the long differential run: batch norm's gradient scaled before it centered --------------------------


def _bn_grad_definition(x, g, gamma, eps):
    """dx of batch norm with batch statistics, in float64 from the definition."""
    x, g = x.astype(np.float64), g.astype(np.float64)
    mean, var = x.mean(axis=0), x.var(axis=0)
    xhat = (x - mean) / np.sqrt(var + eps)
    return gamma / np.sqrt(var + eps) * (g - g.mean(axis=0) - xhat * (g * xhat).mean(axis=0))


@pytest.mark.parametrize("backend", ["numpy", "cuda emulator"])
def test_batch_norm_gradient_of_a_constant_channel_is_centered_before_it_is_scaled(backend):
    # a channel that does not vary over the batch has scale gamma / sqrt(eps) = 316 gamma: dx = a g + c scaled
    # first and cancelled after, leaving 1e-3 of the gradients where the definition (and PyTorch) give 0; the
    # shift before a second batch norm then trained by noise
    graph = parse_graph("""graph bn(input %x: f32[N, 3], input %g: f32[N, 3], input %gamma: f32[3], input %mean: f32[3],
                                     input %var: f32[3]) {
      %dx: f32[N, 3], %dgamma: f32[3], %dbeta: f32[3] = batch_norm_train_grad(%x, %g, %gamma, %mean, %var, eps=1e-05)
      return dx = %dx
    }""")
    x = np.array([[1.0, 5.0, 1.0], [1.0, 4.0, 3.0]], np.float32)  # channel 0 constant
    g = np.array([[0.37, -1.3, 0.2], [-0.81, 0.6, 0.9]], np.float32)
    gamma = np.array([1.1, 0.9, 1.0], np.float32)
    feeds = {"x": x, "g": g, "gamma": gamma, "mean": x.mean(axis=0), "var": x.var(axis=0)}
    if backend == "numpy":
        from bmc.backends.numpy import compile_function

        got = compile_function(graph)(feeds)["dx"]
    else:
        from bmc.backends import cuda
        from bmc.backends.cuda.runtime import Library

        from tests.cuda_emulator import emulate

        prog = cuda.generate("bn", "bn.bm", "", {"run": graph})
        got = Library(emulate.build(prog.source), prog.manifest).session().run("run", feeds)["dx"]
    want = _bn_grad_definition(x, g, gamma.astype(np.float64), 1e-5)
    # dx sums to zero over every channel: to the rounding of g, not of g scaled by 316 gamma
    assert abs(float(got[:, 0].astype(np.float64).sum())) <= 1e-6 * float(np.abs(g).max())
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * float(np.abs(want).max()))


# ---- found by the long differential run: CUDA fused an indexed op with the value it reads ------------------------


def test_cuda_keeps_an_indexed_ops_input_out_of_its_kernel():
    # b5 = q4 * q0 merged q0's group (q0, b2 = q0 * p1) with q4 = max_pool(b2)'s: the pool then read b2, a value
    # held in registers, which has no memory (a KeyError, exit 70, for any build of this model)
    from bmc.backends import cuda
    from bmc.backends.cuda.runtime import Library

    from tests.cuda_emulator import emulate

    model = compile_text("""
        model m() {
            input x: f64[N, 1, 2, 2]
            target label: i64[N, 1, 1]
            q0 = max_pool(x, size = [1, 3], stride = 2, padding = "same")
            param p1: f64[] ~ xavier
            b2 = q0 * p1
            q4 = max_pool(b2, size = [3, 2], stride = 1, padding = "same")
            b5 = q4 * q0
            output logits6 = dense(b5, 2)
            loss = cross_entropy(logits6, label)
        }""")
    graph = model.compiled.inference()
    prog = cuda.generate("m", "m.bm", "", {"forward": graph}, "f64")
    session = Library(emulate.build(prog.source), prog.manifest).session()
    params, _ = model.init_params(0)
    x = np.random.default_rng(0).standard_normal((3, 1, 2, 2))
    session.load(params)
    got = session.run("forward", {"x": x})["logits6"]
    # the definition: 'same' pools of one element each here (a 1x1 map), so q0 = max(x[..., 0, 0:2]) over the window
    q0 = np.max(x[:, :, :1, :2], axis=(2, 3), keepdims=True)
    b5 = (q0 * params["p1"]) * q0
    want = b5.reshape(3, 1, 1, 1) @ params["logits6.W"] + params["logits6.b"]
    np.testing.assert_allclose(got, want.reshape(got.shape), rtol=1e-12)
