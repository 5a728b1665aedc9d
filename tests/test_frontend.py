"""Lowering `.bm` models: order-free equations, parameters and their names, layers, -D, dims."""

from __future__ import annotations

import pytest

import bmc
from bmc.diagnostics import BmcError
from bmc.ir.printer import print_graph


def lower(text: str, **defines) -> bmc.Model:
    return bmc.compile_string(text, defines=defines or None)


def test_statements_are_order_free():
    a = lower("model m { input x: f32[N, 3]  output y = relu(h)  h = x * 2.0 }")
    b = lower("model m { input x: f32[N, 3]  h = x * 2.0  output y = relu(h) }")
    assert print_graph(a.compiled.inference(), locations=False) == print_graph(b.compiled.inference(),
                                                                              locations=False)


def test_implicit_parameters_are_named_after_their_statement():
    m = lower("model m { input x: f32[N, 4]  h = relu(dense(x, 3))  two = dense(h, 2) + dense(h, 2)"
              "  output y = two }")
    assert [p.name for p in m.compiled.model.params] == ["h.W", "h.b", "two.dense.W", "two.dense.b",
                                                        "two.dense_1.W", "two.dense_1.b"]


def test_keras_default_initializers():
    m = lower("model m { input x: f32[N, 4]  output y = dense(x, 3) }")
    info = m.compiled.model.graph.param_info
    assert [str(info[p].init) for p in m.compiled.model.params] == ["glorot_uniform", "zeros"]


def test_defines_override_model_parameters():
    m = lower("model m(hidden = 8) { input x: f32[N, 4]  output y = dense(x, hidden) }", hidden=5)
    assert m.compiled.model.params[0].type.shape == (4, 5)


def test_each_layer_call_owns_its_parameters():
    text = """
    layer affine(x: f32[..., d], units: int) {
        param W: f32[d, units] ~ normal(std = 0.1)
        return x @ W
    }
    model m { input x: f32[N, 4]  a = affine(x, 3)  b = affine(a, 2)  output y = b }
    """
    m = lower(text)
    assert [(p.name, p.type.shape) for p in m.compiled.model.params] == [("a.W", (4, 3)), ("b.W", (3, 2))]


def test_compile_time_arithmetic_in_dims_and_arguments():
    m = lower("model m(h = 4) { input x: f32[N, h * 2]  output y = dense(x, h + 1) }")
    assert m.compiled.model.params[0].type.shape == (8, 5)


def test_symbolic_dims_flow_through_reshape():
    m = lower("model m { input x: f32[B, T, 4]  output y = sum(reshape(x, [-1, 4]), axis = 1) }")
    assert m.compiled.model.graph.outputs["y"].type.shape == ("B*T",)


def test_explicit_parameters_and_penalties():
    m = lower("""model m { input x: f32[N, 2] target t: f32[N, 1]
        param W: f32[2, 1] ~ xavier  param b: f32[1] = 0.5
        output p = x @ W + b  loss = mse(p, t) + 0.01 * l2(W) + 0.001 * l1(W) }""")
    info = m.compiled.model.graph.param_info
    assert [str(info[p].init) for p in m.compiled.model.params] == ["glorot_uniform", "constant(value=0.5)"]


def test_literals_take_the_tensor_dtype():
    m = lower("model m { input x: f64[N] input k: i64[N] output y = x * 2  output z = k + 1 }")
    g = m.compiled.model.graph
    assert g.outputs["y"].type.dtype == "f64" and g.outputs["z"].type.dtype == "i64"


def test_a_float_literal_cannot_silently_join_an_int_tensor():
    with pytest.raises(BmcError, match=r"cannot combine the i64 tensor with the number 0\.5"):
        lower("model m { input k: i64[N] output z = k * 0.5 }")


def test_several_models_need_a_choice():
    text = "model a { input x: f32[N] output y = x }\nmodel b { input x: f32[N] output y = -x }"
    with pytest.raises(BmcError, match="several models"):
        bmc.compile_string(text)
    assert bmc.compile_string(text, model="b").name == "b"
