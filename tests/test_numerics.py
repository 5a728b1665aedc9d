"""Non-finite numbers in training (issue 9, item 12): a NaN loss stops training and says how to find its cause;
`--check-numerics` names the op, its `.bm` statement and the step; non-finite outputs and a diverging loss warn;
non-finite parameters are never saved."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import bmc
import bmc.cli
from bmc.data import Dataset
from bmc.diagnostics import BmcError


def compile_text(text: str) -> bmc.Model:
    return bmc.compile_string(textwrap.dedent(text), filename="numerics.bm")


def regression_data(n: int = 48, nan_at: int | None = None) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = x.sum(axis=1).astype(np.float32)
    if nan_at is not None:
        x[nan_at, 2] = np.nan
    return Dataset("toy", x, y, x[:8], y[:8], None, "toy regression data")


def train(model: bmc.Model, data=None, **kw):
    warnings = []
    kw.setdefault("steps", 3)
    build = model.train(data or regression_data(), log=lambda _: None, progress=False, warn=warnings.append,
                        batch=16, **kw)
    return build, warnings


LOG_OF_NEGATIVE = """
    model m() {
        input  x: f32[N, 4]
        target y: f32[N]
        h = dense(x, 3)
        z = log(h)
        output pred = reshape(dense(z, 1), [N])
        loss = mse(pred, y)
    }
"""


def test_a_nan_loss_stops_training_and_points_to_check_numerics():
    with pytest.raises(BmcError, match=r"the loss became nan at epoch 1, step 1") as e:
        train(compile_text(LOG_OF_NEGATIVE))
    assert "--check-numerics names the op" in e.value.render()


def test_check_numerics_names_the_log_of_a_negative_value_at_its_statement():
    with pytest.raises(BmcError) as e:
        train(compile_text(LOG_OF_NEGATIVE), check_numerics=True)
    err = e.value
    assert (err.span.line, err.span.column, err.span.text()) == (6, 9, "log(h)")
    assert err.message.startswith("step 1 (epoch 1): log gave nan")
    text = err.render()
    assert text.startswith("numerics.bm:6:9: error: ")
    assert "log of a negative number is nan" in text
    assert "it made the loss, output 'pred'" in text


def test_nan_outputs_with_a_finite_loss_warn_and_check_numerics_names_the_op():
    model = compile_text("""
        model m() {
            input  x: f32[N, 4]
            target y: f32[N]
            output pred = reshape(dense(x, 1), [N])
            output spread = sqrt(x - 10)
            loss = mse(pred, y)
        }
    """)
    build, warnings = train(model)
    assert [w.message for w in warnings] == [
        "output 'spread' became nan (64 of 64 values) at step 1 (epoch 1), with a finite loss"]
    assert warnings[0].span.line == 6
    assert np.isfinite(build.history.final.loss)
    with pytest.raises(BmcError, match=r"step 1 \(epoch 1\): sqrt gave nan") as e:
        train(model, check_numerics=True)
    assert e.value.span.text() == "sqrt(x - 10)"
    assert "it made output 'spread' non-finite" in e.value.render()


def test_an_exploding_learning_rate_warns_that_training_diverged():
    seen = []
    build = bmc.compile("examples/mlp.bm").train("digits", epochs=2, lr=1e6, log=lambda _: None, progress=False,
                                                 warn=seen.append)
    (warning,) = [w for w in seen if "diverged" in w.message]
    last = build.history.final.loss
    assert np.isfinite(last) and last > 10 * np.log(10), last  # ten times an untrained 10-class cross-entropy
    assert warning.message.startswith("training diverged: the loss rose from ")
    assert "try a smaller learning rate than 1e+06" in warning.render()


def test_a_decreasing_loss_does_not_warn():
    model = bmc.compile("examples/logistic_regression.bm")
    seen = []
    model.train("breast_cancer", epochs=2, log=lambda _: None, progress=False, warn=seen.append)
    assert not [w for w in seen if "diverged" in w.message or "non-finite" in w.message]


WEIGHT_DECAY_OVERFLOW = """
    model m() {
        input  x: f32[N, 4]
        target y: f32[N]
        param scale: f32[4, 1] ~ ones
        param bias: f32[1] = 0
        output pred = reshape(x @ scale, [N])
        loss = mean((bias - y) ** 2)
    }
    train m {
        optimizer = adamw(lr = 1e15, weight_decay = 0.1)
    }
"""  # the loss never sees `scale`, which weight decay blows up to inf: a finite loss, non-finite parameters


def test_non_finite_parameters_are_never_saved(tmp_path):
    build, warnings = train(compile_text(WEIGHT_DECAY_OVERFLOW), steps=4)
    messages = [w.message for w in warnings]
    assert "after training, parameter 'scale' holds inf (4 of 4 values)" in messages
    with pytest.raises(BmcError, match=r"parameter 'scale' holds inf \(4 of 4 values\): bmc does not save") as e:
        build.save(tmp_path / "out")
    assert e.value.span.line == 5  # the parameter's declaration
    assert not (tmp_path / "out").exists()


def test_check_numerics_names_the_optimizer_update_that_overflowed():
    with pytest.raises(BmcError, match=r"step 3 \(epoch 1\): mul gave -inf") as e:
        train(compile_text(WEIGHT_DECAY_OVERFLOW), steps=4, check_numerics=True)
    text = e.value.render()
    assert e.value.span.text().startswith("optimizer = adamw")
    assert "in the optimizer's update of the parameters" in text
    assert "it made parameter 'scale' non-finite" in text


def test_check_numerics_names_non_finite_data():
    model = compile_text("""
        model m() {
            input  x: f32[N, 4]
            target y: f32[N]
            output pred = reshape(dense(x, 1), [N])
            loss = mse(pred, y)
        }
    """)
    with pytest.raises(BmcError, match=r"the input 'x' \(the data\) holds nan \(1 of 64 values\) before the step"):
        train(model, regression_data(nan_at=3), steps=1, check_numerics=True)


def test_a_causal_masks_minus_infinity_is_not_blamed(tmp_path):
    model = compile_text("""
        model m(vocab = 5) {
            input  ids: i64[N, T]
            target next: i64[N, T]
            h = attention(embedding(ids, vocab, 4), 2, causal = true)
            logits = dense(log(h), vocab)
            loss = cross_entropy(logits, next)
        }
        train m { sequence = 6 }
    """)
    text = tmp_path / "text.txt"
    text.write_text("abcde" * 40)
    with pytest.raises(BmcError) as e:
        model.train(f"text:{text}", steps=1, batch=4, log=lambda _: None, progress=False, check_numerics=True)
    assert e.value.message.startswith("step 1 (epoch 1): log gave nan"), e.value.render()
    assert e.value.span.text() == "log(h)"


def test_check_numerics_leaves_a_finite_run_unchanged():
    model = bmc.compile("examples/linear_regression.bm")
    runs = [model.train("diabetes", steps=5, log=lambda _: None, progress=False, check_numerics=flag)
            for flag in (False, True)]
    for name, value in runs[0].params.items():
        np.testing.assert_array_equal(value, runs[1].params[name])


def test_the_command_line_flag(tmp_path, capsys):
    path = tmp_path / "bad.bm"
    path.write_text(textwrap.dedent(LOG_OF_NEGATIVE).replace("[N, 4]", "[N, 10]") + "train m { steps = 2 }\n")
    assert bmc.cli.main(["train", str(path), "--data", "diabetes", "--quiet", "--check-numerics"]) == 1
    err = capsys.readouterr().err
    assert f"{path}:6:9: error: step 1 (epoch 1): log gave nan" in err
    assert "RuntimeWarning" not in err
