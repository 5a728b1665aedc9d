"""Regression tests for what the fuzzer (tests/fuzz) found outside the areas other issue-9 branches own, one test
per finding."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import bmc
from bmc.diagnostics import BmcError
from bmc.runtime import load_source


def test_an_infinite_constant_is_a_valid_literal_in_the_generated_module():
    # the exponent `1e999` (today a located error as a literal; an infinite `-D` value still reaches the code) and
    # the gradient's `1e999 - 1` were written as `np.float32(inf)`, a NameError when the train step ran
    model = bmc.compile_string(textwrap.dedent("""
        model m(k = 2.0) {
            input  x: f32[N, 2]
            target y: f32[N, 2]
            output p = dense(x, 2)
            loss = mean((p - y) ** k)
        }
    """), defines={"k": float("inf")})
    module = load_source(model.generate())
    params, state = model.init_params(0)
    with np.errstate(all="ignore"):
        result = module.train_step(params, state, {"x": np.full((2, 2), 2, np.float32),
                                                   "y": np.zeros((2, 2), np.float32)}, np.float32(1e-3))
    assert result["loss"] == np.inf


def test_return_used_as_a_value_in_a_layer_is_an_undefined_name():
    # a layer's `return` statement was indexed under the name "return", so `causal = return` lowered the return
    # statement as if it defined a value (AttributeError, exit 70)
    text = textwrap.dedent("""
        layer block(x: f32[N, T, D]) {
            a = attention(x, 2, causal = return)
            return a
        }
        model m() {
            input x: f32[N, 4, 8]
            output y = block(x)
        }
    """)
    with pytest.raises(BmcError, match="undefined name 'return'") as info:
        bmc.compile_string(text)
    assert (info.value.span.line, info.value.span.text()) == (3, "return")


def test_the_memory_check_counts_a_convolutions_unfolded_input():
    # the long fuzz run's memory blow-up: 65536 input channels passed the check (205 MB an image), and the
    # forward pass then asked NumPy for 2.97 GiB to unfold two images for the matrix product (9 x the input)
    text = textwrap.dedent("""
        model m() {
            input  image: f32[N, 65536, 28, 28]
            target label: i64[N]
            logits = dense(flatten(conv2d(image, 2, 3)), 3)
            loss = cross_entropy(logits, label)
        }""")
    with pytest.raises(BmcError) as e:
        bmc.compile_string(text, filename="m.bm", memory_limit="1G")
    assert e.value.span.line == 5 and "f32[N, 589824, 676]" in str(e.value.render())
    bmc.compile_string(text, filename="m.bm", memory_limit="4G")  # one image and its unfolding fit in 4G


def test_an_address_space_limit_leaves_out_what_the_process_maps_already(monkeypatch):
    import resource

    from bmc import memory

    monkeypatch.setattr(resource, "getrlimit", lambda what: (2**32, 2**32))
    monkeypatch.setattr(memory, "_mapped", lambda: 2**30)
    assert memory.machine_memory() <= 3 * 2**30


def test_a_source_file_over_the_limit_is_refused_before_it_is_read(tmp_path):
    # the long fuzz run's hang: a long line inside deep nesting made a 955 MiB file, which took minutes to read
    from bmc.compiler import MAX_SOURCE_BYTES

    path = tmp_path / "big.bm"
    path.write_bytes(b"model m() {\n" + b" " * MAX_SOURCE_BYTES + b"}\n")
    with pytest.raises(BmcError) as e:
        bmc.compile(path)
    assert e.value.span.line == 1 and "at most 16 MiB" in e.value.message
    with pytest.raises(BmcError):
        bmc.compile_string("model m() {\n" + " " * MAX_SOURCE_BYTES + "}\n")


def test_a_gemm_fused_with_a_bias_computed_after_the_product_stays_in_order(tmp_path):
    # the long fuzz run's internal error: in x @ w + b ** 1 the Gemm took the MatMul's place, before the Pow that
    # computes its bias, and onnx.checker refused the graph (exit 70)
    import onnx
    import onnxruntime as ort

    text = textwrap.dedent("""
        model m() {
            input x: f32[N, 3]
            param w: f32[3, 1] ~ normal(1.0)
            param b: f32[1] = 0.5
            output prediction = x @ w + b ** 1 ** 1
        }""")
    model = bmc.compile_string(text, filename="m.bm")
    model.build(tmp_path / "b", target="onnx", seed=0)
    proto = onnx.load(tmp_path / "b" / "model.onnx")
    assert [n.op_type for n in proto.graph.node][-1] == "Gemm"
    params, _ = model.init_params(0)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    got = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, x @ params["w"] + params["b"], rtol=1e-6)
