"""User errors: `file:line:col: error: message`, the source line, a caret under the span, exit status 1, no traceback.

The corpus: each `tests/diagnostics/NAME.bm` makes one mistake, and `NAME.expected` holds the exact stderr of
`bmc check tests/diagnostics/NAME.bm` run from the repository root (a few cases run another command, see COMMANDS).
Command-line and data errors, which are not in a `.bm` file, are the explicit cases of CLI_CASES.

After a deliberate change to a message, regenerate the expected files and read the diff:

    BMC_UPDATE_EXPECTED=1 python -m pytest tests/test_diagnostics.py

Every message must say what was expected, point its caret at the right token and read well to a newcomer.
Everything runs in-process through `bmc.cli.main`, so the whole file takes a few seconds.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bmc.cli import main

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "diagnostics"
CASES = sorted(p.stem for p in CORPUS.glob("*.bm"))
UPDATE = bool(os.environ.get("BMC_UPDATE_EXPECTED"))
# Cases that `bmc check` does not reach (the target check happens when the inference graph is built), and cases
# that need a memory limit independent of the machine's memory.
COMMANDS = {"output_uses_target": ["ir"], "param_too_large": ["check", "--memory-limit", "4G"],
            "activations_too_large": ["check", "--memory-limit", "4G"]}
HEADER = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): error: \S.*$")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    """`main` sets the BLAS thread variables; restore them afterwards. No BMC_TRACEBACK from the caller's shell."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(var, os.environ.get(var, "1"))
    monkeypatch.delenv("BMC_TRACEBACK", raising=False)


def run_cli(capsys, args: list[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(args)
    return code, capsys.readouterr().err


def check_pinpoint(err: str, source_dir: Path) -> None:
    """The first three lines are the header, the offending source line and carets under the header's column."""
    lines = err.splitlines()
    m = HEADER.match(lines[0])
    assert m, f"no file:line:col header in {lines[0]!r}"
    source = (source_dir / m["file"]).read_text(encoding="utf-8").splitlines()
    line, col = int(m["line"]), int(m["col"])
    assert lines[1] == "    " + source[line - 1]
    carets = lines[2][4:]
    assert carets.strip() and set(carets.strip()) == {"^"}, lines[2]
    assert len(carets) - len(carets.lstrip()) == col - 1, "the caret is not under the reported column"


def test_corpus_is_complete():
    assert len(CASES) >= 30
    expected = sorted(p.stem for p in CORPUS.glob("*.expected"))
    if not UPDATE:
        assert expected == CASES, "every corpus .bm needs a .expected, and every .expected a .bm"


@pytest.mark.parametrize("name", CASES)
def test_corpus(name, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    path = f"tests/diagnostics/{name}.bm"
    code, err = run_cli(capsys, [*COMMANDS.get(name, ["check"]), path])
    expected_file = CORPUS / f"{name}.expected"
    if UPDATE:
        expected_file.write_text(err, encoding="utf-8")
    assert code == 1
    assert "Traceback" not in err
    assert err.startswith(f"{path}:")
    check_pinpoint(err, ROOT)
    assert err == expected_file.read_text(encoding="utf-8")


# ---- errors outside a .bm file: command-line values and data ------------------------------------------------------

# An MLP whose input size is fixed at 784 (no `features` parameter), so the data cannot set it.
MLP_784 = """\
model mlp(hidden = 16, classes = 10) {
    input  image: f32[N, 784]
    target label: i64[N]

    h      = relu(dense(image, hidden))
    logits = dense(h, classes)

    output probs = softmax(logits)
    loss         = cross_entropy(logits, label)
}
"""
# The same with a `features` parameter, which the data sets.
MLP_FEATURES = MLP_784.replace("mlp(hidden", "mlp(features = 784, hidden").replace("[N, 784]", "[N, features]")

DATA_SPECS = (
    "note: a built-in name (digits, diabetes, breast_cancer, fashion_mnist, mnist)\n"
    "note: a directory of IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
    "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])\n"
    "note: a directory with a subfolder of images per class (cat/1.png, dog/2.jpg, ...)\n"
    "note: a .npz file with arrays x_train, y_train, x_test, y_test\n"
    'note: a .csv file with a header row (the target column: target = "price", else the last)\n'
)

CLI_CASES = {
    "define_unknown_parameter": (
        ["check", "mlp.bm", "-D", "hiden=32"],
        "mlp.bm:1:7: error: -D hiden: model 'mlp' has no parameter 'hiden' (its parameters: hidden, classes)\n"
        "    model mlp(hidden = 16, classes = 10) {\n"
        "          ^^^\n"
        "note: did you mean 'hidden'?\n",
    ),
    "define_not_a_number": (
        ["check", "mlp.bm", "-D", "hidden=lots"],
        "error: -D hidden: 'lots' is not a number\n",
    ),
    "define_without_value": (
        ["check", "mlp.bm", "-D", "hidden"],
        "error: -D expects NAME=VALUE, got 'hidden'\n",
    ),
    "define_not_an_integer": (
        ["check", "mlp.bm", "-D", "hidden=2.5"],
        "mlp.bm:5:32: error: dense's units must be a positive integer of at most 2147483647, not 2.5\n"
        "        h      = relu(dense(image, hidden))\n"
        "                                   ^^^^^^\n",
    ),
    "missing_file": (
        ["check", "nope.bm"],
        "error: no such file: nope.bm\n",
    ),
    "unknown_model": (
        ["check", "mlp.bm", "--model", "cnn"],
        "error: mlp.bm has no model 'cnn' (it has: mlp)\n",
    ),
    "unknown_data_set": (
        ["train", "mlp.bm", "--data", "digitz", "--epochs", "1", "--quiet"],
        "error: unknown data set 'digitz': expected one of digits, diabetes, breast_cancer, fashion_mnist, mnist, "
        "a directory of IDX files or images, or a .npz or .csv file\nnote: did you mean 'digits'?\n" + DATA_SPECS,
    ),
    "missing_data_file": (
        ["train", "mlp.bm", "--data", "data/train.npz", "--epochs", "1", "--quiet"],
        "error: no such file or directory: data/train.npz\n" + DATA_SPECS,
    ),
    "bad_epochs_flag": (
        ["train", "mlp.bm", "--data", "digits", "--epochs", "0", "--quiet"],
        "error: --epochs must be a positive integer, not 0\n",
    ),
    "data_shape_mismatch": (
        ["train", "mlp.bm", "--data", "digits", "--epochs", "1", "--quiet"],
        "mlp.bm:2:19: error: digits samples have shape [64] (64 values), but input 'image' is f32[N, 784], which "
        "wants samples of shape [784]\n"
        "        input  image: f32[N, 784]\n"
        "                      ^^^^^^^^^^^\n"
        "note: to let the data set the size, make it a model parameter: model mlp(features = 784) with "
        "'input image: f32[N, features]'\n",
    ),
    "too_few_classes": (
        ["train", "mlp_features.bm", "--data", "digits", "--epochs", "1", "--quiet", "-D", "classes=3"],
        "mlp_features.bm:8:20: error: output 'probs' has 3 classes but digits has 10\n"
        "        output probs = softmax(logits)\n"
        "                       ^^^^^^^^^^^^^^^\n"
        "note: the output needs one column per class: f32[N, 10]\n",
    ),
}


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_cli_errors(name, capsys, monkeypatch, tmp_path):
    (tmp_path / "mlp.bm").write_text(MLP_784, encoding="utf-8")
    (tmp_path / "mlp_features.bm").write_text(MLP_FEATURES, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    args, expected = CLI_CASES[name]
    code, err = run_cli(capsys, args)
    assert code == 1
    assert "Traceback" not in err
    if HEADER.match(err.splitlines()[0]):
        check_pinpoint(err, tmp_path)
    assert err == expected


def test_bad_flag_value_is_a_usage_error(capsys, tmp_path, monkeypatch):
    """argparse rejects `--epochs many` itself: usage on stderr, exit status 2, no traceback."""
    (tmp_path / "mlp.bm").write_text(MLP_784, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "mlp.bm", "--epochs", "many"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "argument --epochs: invalid int value: 'many'" in err
    assert "Traceback" not in err


def test_internal_error_asks_for_a_bug_report(capsys, tmp_path, monkeypatch):
    import bmc.api

    def broken(self):
        raise RuntimeError("summary exploded")

    monkeypatch.setattr(bmc.api.Model, "summary", broken)
    (tmp_path / "mlp.bm").write_text(MLP_784, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(capsys, ["check", "mlp.bm"])
    assert code == 70
    assert err.startswith("internal error: RuntimeError: summary exploded\n")
    assert "This is a bug in bmc" in err
    assert "Traceback" not in err


def test_internal_error_traceback_on_request(capsys, tmp_path, monkeypatch):
    import bmc.api

    def broken(self):
        raise RuntimeError("summary exploded")

    monkeypatch.setattr(bmc.api.Model, "summary", broken)
    monkeypatch.setenv("BMC_TRACEBACK", "1")
    (tmp_path / "mlp.bm").write_text(MLP_784, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(capsys, ["check", "mlp.bm"])
    assert code == 70
    assert "This is a bug in bmc" in err
    assert "Traceback" in err


@pytest.mark.parametrize("text", [MLP_784, MLP_FEATURES], ids=["mlp", "mlp_features"])
def test_valid_model_checks_cleanly(text, capsys, tmp_path, monkeypatch):
    """The CLI cases' models are themselves fine, so each case fails for its own reason only."""
    (tmp_path / "mlp.bm").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(capsys, ["check", "mlp.bm"])
    assert code == 0
    assert err == ""
