"""Warnings: likely mistakes that still compile, printed like errors with `warning:` on stderr; the exit status stays
0 unless `-W error` makes the first one an error (exit 1). `-W ignore` drops them.

The corpus: each `tests/warnings/NAME.bm` makes one such mistake, and `NAME.expected` holds the exact stderr of
`bmc check tests/warnings/NAME.bm` run from the repository root (the cases of TRAIN run `bmc train`, whose train
block names a small bundled data set and one epoch). Regenerate after a deliberate change and read the diff:

    BMC_UPDATE_EXPECTED=1 python -m pytest tests/test_warnings.py

Examples must not warn: a warning on correct code teaches users to ignore warnings.
"""

from __future__ import annotations

import re

import pytest

import bmc
from bmc.compiler import compile_file
from bmc.diagnostics import BmcError, BmcWarning, UsageError
from bmc.train.loop import unfit_metrics
from tests.conftest import EXAMPLES, ROOT, UPDATE
from tests.test_diagnostics import _isolated_env, check_pinpoint, run_cli  # noqa: F401 - the fixture too

CORPUS = ROOT / "tests" / "warnings"
CASES = sorted(p.stem for p in CORPUS.glob("*.bm"))
TRAIN = {"metrics_regression_on_classes", "metrics_classes_on_regression", "no_output"}  # warned by `bmc train`
HEADER = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): warning: \S.*$")
NOT_SAVED = "note: the trained build was not saved; pass -o DIR to write it\n"

# The trap of outer_product_in_loss.bm, for the API tests.
OUTER = """\
model regression {
    input  x: f32[N, 10]
    target y: f32[N]
    output pred = dense(x, 1)
    loss        = mean((pred - y) ** 2)
}
"""


def command(name: str) -> list[str]:
    path = f"tests/warnings/{name}.bm"
    return ["train", path, "--quiet"] if name in TRAIN else ["check", path]


def test_corpus_is_complete():
    assert len(CASES) >= 9
    assert set(CASES) >= TRAIN
    if not UPDATE:
        assert sorted(p.stem for p in CORPUS.glob("*.expected")) == CASES


@pytest.mark.parametrize("name", CASES)
def test_corpus(name, capsys):
    code, err = run_cli(capsys, command(name))
    expected_file = CORPUS / f"{name}.expected"
    if UPDATE:
        expected_file.write_text(err, encoding="utf-8")
    assert code == 0
    assert err.startswith(f"tests/warnings/{name}.bm:")
    assert HEADER.match(err.splitlines()[0]), err
    check_pinpoint(err.replace(": warning: ", ": error: ", 1), ROOT)
    assert err.count(": warning: ") == 1, "each case makes one mistake, reported once"
    assert err.endswith(NOT_SAVED) == (name in TRAIN)
    assert err == expected_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", CASES)
def test_corpus_under_w_error(name, capsys):
    """The first warning becomes the error, same location and hint, and the run stops before doing anything."""
    code, err = run_cli(capsys, [*command(name), "-W", "error"])
    warning = (CORPUS / f"{name}.expected").read_text(encoding="utf-8").removesuffix(NOT_SAVED)
    assert code == 1
    assert err == warning.replace(": warning: ", ": error: ", 1) + "note: this warning is an error under -W error\n"
    assert "epoch" not in capsys.readouterr().out


@pytest.mark.parametrize("name", ["outer_product_in_loss", "no_output"])
def test_w_ignore_drops_warnings(name, capsys):
    code, err = run_cli(capsys, [*command(name), "-W", "ignore"])
    assert code == 0
    assert err == (NOT_SAVED if name in TRAIN else "")


def test_saving_the_build_needs_no_note(capsys, tmp_path):
    code, err = run_cli(capsys, ["train", "tests/warnings/no_output.bm", "--quiet", "-W", "ignore", "-o",
                                 str(tmp_path / "build")])
    assert code == 0
    assert err == ""
    assert (tmp_path / "build" / "model.py").exists()


# ---- no warning on correct code --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.bm")), ids=lambda p: p.stem)
def test_examples_do_not_warn(path, capsys):
    code, err = run_cli(capsys, ["check", str(path), "-W", "error"])
    assert (code, err) == (0, "")
    compiled = compile_file(path)
    (target,) = compiled.model.targets
    text = compiled.config.data.startswith("text:")
    classes = None if target.type.is_float else 2
    assert unfit_metrics(compiled.config, compiled.config.data, classes, text) is None


LEGITIMATE = """\
model fine(features = 8) {
    input  x: f32[N, features]
    target y: f32[N]
    target label: i64[N]
    param  b: f32[features] = 0

    h      = relu(x + b) * 2 - 1                        # a bias over the batch, scalar constants
    logits = dense(h, 3)
    pred   = dense(h, 1)
    pairs  = pred * reshape(y, [1, N])                  # an outer product with explicit size-1 axes
    output probs = softmax(logits)
    nll    = cross_entropy(log_softmax(logits), label)  # log-softmax is idempotent: fine
    fit    = mse(pred, y)                               # mse reshapes the target [N] to the prediction's [N, 1]
    brier  = mse(probs, one_hot(label, 3))              # mse on probabilities is a proper score
    loss   = nll + fit + brier + 0 * mean(pairs)
}
"""


def test_legitimate_broadcasts_and_losses_do_not_warn():
    assert bmc.compile_string(LEGITIMATE).warnings == ()


# ---- the API --------------------------------------------------------------------------------------------------------


def test_api_collects_warnings_once_across_both_lowerings():
    """The model is lowered for training and for inference; the loss is in both, its warning is reported once."""
    model = bmc.compile_string(OUTER, filename="outer.bm")
    (warning,) = model.warnings
    assert isinstance(warning, BmcWarning)
    assert warning.render().startswith("outer.bm:5:25: warning: this '-' broadcasts 'pred' [N, 1] and 'y' [N] to "
                                       "[N, N], an outer product over N\n")


def test_api_error_policy_raises_the_first_warning():
    with pytest.raises(BmcError) as raised:
        bmc.compile_string(OUTER, filename="outer.bm", warnings="error")
    assert raised.value.span is not None and str(raised.value.span) == "outer.bm:5:25"
    assert bmc.compile_string(OUTER, warnings="ignore").warnings == ()
    with pytest.raises(UsageError, match="warnings must be one of default, error, ignore"):
        bmc.compile_string(OUTER, warnings="loud")


def test_warnings_do_not_change_the_generated_code(monkeypatch):
    warned = bmc.compile_string(OUTER)
    assert warned.warnings
    monkeypatch.setattr("bmc.compiler.lint", lambda *models: [])
    unlinted = bmc.compile_string(OUTER)
    assert unlinted.warnings == ()
    assert warned.generate() == unlinted.generate()


def test_training_warnings_go_to_the_warn_callback():
    model = bmc.compile(CORPUS / "metrics_regression_on_classes.bm")
    seen: list[BmcWarning] = []
    trained = model.train(log=lambda line: None, progress=False, warn=seen.append)
    (warning,) = seen
    assert warning.message == "metric mae does not fit classification (digits: 10 classes): training reports " \
                              "accuracy instead"
    assert list(trained.history.final.test) == ["accuracy"]
    strict = bmc.compile(CORPUS / "metrics_regression_on_classes.bm", warnings="error")
    with pytest.raises(BmcError, match="metric mae does not fit"):
        strict.train(log=lambda line: None, progress=False)


TEXT_LM = """\
model lm(vocab = 8) {
    input  tokens: i64[N, T]
    target next: i64[N, T]
    logits       = dense(embedding(tokens, vocab, 4), vocab)
    output probs = softmax(logits)
    loss         = cross_entropy(logits, next)
}

train lm {
    sequence = 8
    batch    = 4
    steps    = 1
    metrics  = accuracy
}
"""


def test_text_models_warn_about_metrics_they_do_not_report(tmp_path):
    (tmp_path / "text.txt").write_text("abcabcabd " * 50, encoding="utf-8")
    seen: list[BmcWarning] = []
    trained = bmc.compile_string(TEXT_LM, filename="lm.bm").train(f"text:{tmp_path / 'text.txt'}", warn=seen.append,
                                                                  log=lambda line: None, progress=False)
    (warning,) = seen
    assert str(warning.span) == "lm.bm:13:5"
    assert warning.message.startswith("metric accuracy does not fit a text model (text:")
    assert warning.message.endswith("): training reports loss, perplexity instead")
    assert list(trained.history.final.valid) == ["loss", "perplexity"]
