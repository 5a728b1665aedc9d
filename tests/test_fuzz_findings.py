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
