"""Training checks that a model and its data agree before the first step, and trains what it accepts.

Each case used to crash training with an internal error (exit 70) or train the wrong thing: more output classes
than the data has, labels beyond the logits of a model without an output, class labels on a regression output, a
model whose loss uses no target (an autoencoder), `--lr` dropped by `--optimizer`, a gradient-descent build with no
`state.npz` for its own `load_state()`.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

import bmc
from bmc.cli import main
from bmc.diagnostics import BmcError, DataError
from bmc.train.config import TrainConfig

QUIET = {"log": lambda s: None, "progress": False}

CLASSIFIER = """\
model m(features = 64, classes = 10) {
    input x: f32[N, features]
    target y: i64[N]
    logits = dense(x, classes)
    output p = softmax(logits)
    loss = cross_entropy(logits, y)
}
"""

AUTOENCODER = """\
layer encode(x: f32[N, d]) {
    return relu(dense(x, 16))
}
layer decode(h: f32[N, k], width: int) {
    return dense(h, width)
}
model ae(features = 64) {
    input x: f32[N, features]
    output recon = decode(encode(x), features)
    loss = mse(recon, x)
}
"""


def run(capsys, tmp_path, text: str, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "m.bm"
    path.write_text(text, encoding="utf-8")
    capsys.readouterr()
    code = main(["train", str(path), "--quiet", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_more_output_classes_than_the_data_has_is_a_located_error(capsys, tmp_path):
    code, _, err = run(capsys, tmp_path, CLASSIFIER, "--data", "digits", "--epochs", "1", "-D", "classes=20")
    assert code == 1
    assert err.splitlines()[0] == f"{tmp_path / 'm.bm'}:5:16: error: output 'p' has 20 classes but digits has 10"
    assert err.splitlines()[-1] == "note: the output needs one column per class: f32[N, 10]"


def test_labels_beyond_the_logits_of_a_model_without_an_output(capsys, tmp_path):
    text = CLASSIFIER.replace("    output p = softmax(logits)\n", "")
    code, _, err = run(capsys, tmp_path, text, "--data", "digits", "--epochs", "1", "-D", "classes=3")
    assert code == 1
    assert err.splitlines()[0] == (f"{tmp_path / 'm.bm'}:5:12: error: cross_entropy's logits have 3 classes, but "
                                   "digits has 10 (labels 0 to 9)")


@pytest.mark.parametrize("dtype", ["i64", "f32"])
def test_class_labels_on_a_regression_output(capsys, tmp_path, dtype):
    text = ("model m(features = 64) {\n    input x: f32[N, features]\n    target y: " + dtype + "[N]\n"
            "    output pred = dense(x, 1)\n    loss = mse(pred, y)\n}\n")
    code, _, err = run(capsys, tmp_path, text, "--data", "digits", "--epochs", "1")
    assert code == 1
    assert err.splitlines()[0] == (f"{tmp_path / 'm.bm'}:4:19: error: output 'pred' gives one number per sample, but "
                                   "digits has 10 classes")


def test_class_scores_on_a_regression_data_set(capsys, tmp_path):
    text = CLASSIFIER.replace("target y: i64[N]", "target y: f32[N]").replace(
        "cross_entropy(logits, y)", "mse(sum(logits, axis = 1), y)")
    code, _, err = run(capsys, tmp_path, text, "--data", "diabetes", "--epochs", "1")
    assert code == 1
    assert err.splitlines()[0] == (f"{tmp_path / 'm.bm'}:5:16: error: output 'p' is f32[N, 10], but diabetes is a "
                                   "regression data set with one number per sample")


def test_binary_labels_in_a_float_target_are_scored_as_classes():
    text = ("model m(features = 30) {\n    input x: f32[N, features]\n    target y: f32[N]\n"
            "    z = dense(x, 1)\n    output p = sigmoid(z)\n"
            "    loss = binary_cross_entropy(z, reshape(y, [N, 1]))\n}\n"
            "train m {\n    metrics = accuracy, f1\n}\n")
    trained = bmc.compile_string(text).train("breast_cancer", epochs=3, **QUIET)
    assert set(trained.history.final.test) == {"accuracy", "f1"}
    data = bmc.data.load_dataset("breast_cancer")
    predicted = trained.predict(data.x_test)["p"].reshape(-1) > 0.5
    assert trained.history.final.test["accuracy"] == pytest.approx(np.mean(predicted == data.y_test))


def test_an_autoencoder_trains_on_its_inputs_alone(tmp_path, capsys):
    """A loss without a target: every sample is both input and target; the score is the loss on the test set."""
    trained = bmc.compile_string(AUTOENCODER).train("digits", epochs=3, test_every_epoch=True, **QUIET)
    epochs = trained.history.epochs
    assert [set(e.test) for e in epochs] == [{"loss"}] * 3
    assert epochs[-1].test["loss"] < epochs[0].test["loss"]
    assert epochs[-1].train == {}
    out = trained.save(tmp_path / "ae")
    again = bmc.load(out)
    x = bmc.data.load_dataset("digits").x_test
    expected = np.mean((again.predict(x)["recon"] - (x.reshape(len(x), -1) / 16.0)) ** 2)
    assert math.isclose(again.evaluate("digits")["loss"], expected, rel_tol=1e-4)
    assert main(["eval", str(out), "--data", "digits"]) == 0
    assert capsys.readouterr().out.startswith("loss ")


def test_an_autoencoder_without_an_output_trains_too():
    text = ("model ae(features = 64) {\n    input x: f32[N, features]\n"
            "    loss = mse(dense(relu(dense(x, 8)), features), x)\n}\n")
    trained = bmc.compile_string(text).train("digits", epochs=2, **QUIET)
    assert set(trained.history.final.test) == {"loss"}


def test_metrics_of_an_autoencoder_warn_that_it_is_scored_by_its_loss():
    warnings = []
    text = AUTOENCODER + "train ae {\n    metrics = accuracy\n}\n"
    bmc.compile_string(text).train("digits", epochs=1, warn=warnings.append, **QUIET)
    assert [w.message for w in warnings] == [
        "metric accuracy does not fit a model without a target (digits): training reports loss instead"]


def test_a_build_scored_on_a_data_set_with_fewer_classes_is_a_usage_error(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 64)).astype(np.float32), np.arange(40) % 12
    np.savez(tmp_path / "twelve.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    trained = bmc.compile_string(CLASSIFIER, defines={"classes": 12}).train(str(tmp_path / "twelve.npz"), epochs=1,
                                                                           **QUIET)
    build = bmc.load(trained.save(tmp_path / "b"))
    with pytest.raises(BmcError, match="output 'p' has 12 classes but digits has 10"):
        build.evaluate("digits")


def test_data_the_generated_module_refuses_is_a_data_error(tmp_path, monkeypatch):
    """Defence in depth: what the checks before training miss, the generated module's own input checks catch, and
    training reports them as a data error rather than an internal one."""
    from bmc.train import agree

    monkeypatch.setattr(agree, "check_task", lambda model, data: None)
    text = CLASSIFIER.replace("    output p = softmax(logits)\n", "")
    with pytest.raises(DataError, match="the training data does not fit the model at epoch 1, step 1: class index"):
        bmc.compile_string(text, defines={"classes": 3}).train("digits", epochs=1, **QUIET)


# ---- optimizer flags and state -------------------------------------------------------------------------------------


def test_lr_is_kept_when_the_optimizer_is_given():
    for values in ({"lr": 1e30, "optimizer": "sgd"}, {"optimizer": "sgd", "lr": 1e30}):
        config = TrainConfig().override(**values)
        assert (config.optimizer.kind, config.optimizer.lr) == ("sgd", 1e30)
    assert TrainConfig().override(optimizer="sgd").optimizer.lr == 0.01  # the optimizer's own default
    assert TrainConfig().override(lr=0.5).optimizer.kind == "adam"


def test_the_cli_trains_at_the_given_lr_with_the_given_optimizer(capsys, tmp_path):
    code, out, _ = run(capsys, tmp_path, CLASSIFIER, "--data", "digits", "--epochs", "1", "--optimizer", "sgd",
                       "--lr", "0.5")
    assert code == 0
    assert "sgd(lr=0.5, momentum=0.0, nesterov=False)" in out


@pytest.mark.parametrize("flag, value, message", [
    ("--lr", "nan", "--lr must be a positive number, not nan"),
    ("--lr", "inf", "--lr must be a positive number, not inf"),
    ("--lr", "0", "--lr must be a positive number, not 0"),
    ("--seed", "-1", "--seed must be an integer from 0 to 4294967295, not -1"),
    ("--batch", "0", "--batch must be a positive integer of at most 2147483647, not 0"),
])
def test_bad_training_flags_are_usage_errors(capsys, tmp_path, flag, value, message):
    code, _, err = run(capsys, tmp_path, CLASSIFIER, "--data", "digits", flag, value)
    assert code == 1
    assert err == f"error: {message}\n"


def test_a_gradient_descent_build_has_a_state_file_its_module_loads(tmp_path):
    out = bmc.compile("examples/linear_regression.bm").build(tmp_path / "gd")
    assert (out / "state.npz").exists()
    spec = importlib.util.spec_from_file_location("gd_model", out / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.load_state() == {}
    assert set(module.load_params()) == {"w", "b"}


def test_gru_with_zero_hidden_units_is_a_located_error(capsys):
    for command in (["check"], ["train", "--data", "digits", "--quiet"]):
        assert main([*command[:1], "examples/gru.bm", "-D", "hidden=0", *command[1:]]) == 1
        err = capsys.readouterr().err
        assert err.splitlines()[0] == ("examples/gru.bm:6:24: error: gru's hidden must be a positive integer of at "
                                       "most 2147483647, not 0")


def test_validation_that_leaves_nothing_to_train_on_is_a_located_error():
    text = CLASSIFIER.replace("classes = 10", "classes = 2").replace("features = 64", "features = 30") + (
        "train m {\n    validation = 0.9999\n}\n")
    with pytest.raises(BmcError) as info:
        bmc.compile_string(text).train("breast_cancer", epochs=1, **QUIET)
    assert info.value.message == ("validation = 0.9999 holds out all 456 training samples; at least one must remain "
                                  "to train on")
    assert info.value.span.line == 9


@pytest.mark.parametrize("flags, message", [
    (["--temperature", "nan"], "the temperature must be a positive number, not nan"),
    (["--temperature", "0"], "the temperature must be a positive number, not 0.0"),
    (["--length", "-1"], "the length must be at least 0, not -1"),
])
def test_bad_generation_flags_are_usage_errors(tmp_path, capsys, flags, message):
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 20)
    model = bmc.compile("examples/char_lm.bm", defines={"width": 8, "context": 8, "blocks": 1})
    model.train(f"text:{corpus}", steps=1, batch=4, **QUIET).save(tmp_path / "lm")
    capsys.readouterr()
    assert main(["generate", str(tmp_path / "lm"), "--prompt", "the ", *flags]) == 1
    assert capsys.readouterr().err == f"error: {message}\n"


@pytest.mark.parametrize("input_type, augment, message", [
    ("f32[N, features]", "shift(2)", "augment shifts and flips images [..., height, width], but input 'x' is "
                                     "f32[N, 64]"),
    ("f32[N, 8, 8]", "shift(8), flip", "shift(8) moves the 8x8 images of input 'x' entirely out of view"),
])
def test_augmentation_needs_images_it_can_shift(input_type, augment, message):
    text = CLASSIFIER.replace("f32[N, features]", input_type).replace("dense(x, classes)", "dense(flatten(x), classes)")
    with pytest.raises(BmcError) as info:
        bmc.compile_string(text + f"train m {{\n    augment = {augment}\n}}\n").train("digits", epochs=1, **QUIET)
    assert info.value.message == message
    assert info.value.span.line == 9
