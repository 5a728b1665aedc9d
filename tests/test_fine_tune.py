"""Fine-tuning: parameters given by name (`--params FILE.npz`, bmc/given.py) and frozen parameters (`freeze`,
`--freeze`, bmc/train/freeze.py), through the API, the command line and the exported ONNX train step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import bmc
import bmc.cli
from bmc.data import load_dataset

MODEL = """\
model net(classes = 10) {
    input  image: f32[N, 64]
    target label: i64[N]
    stem   = relu(dense(image, 32))
    h      = batch_norm(stem)
    logits = dense(h, classes)
    output probs = softmax(logits)
    loss = cross_entropy(logits, label)
}
train net {
    data      = digits
    epochs    = 3
    optimizer = adam(lr = 1e-2)
    normalize = true
}
"""
QUIET = {"log": lambda s: None, "progress": False}


def write_model(tmp_path: Path, text: str = MODEL) -> Path:
    path = tmp_path / "net.bm"
    path.write_text(text)
    return path


def given_params(tmp_path: Path, seed: int = 7, **changes) -> tuple[Path, dict[str, np.ndarray]]:
    """Parameters of MODEL drawn from another seed (so they differ from any run's initialization), as a .npz."""
    params, _ = bmc.compile_string(MODEL).init_params(seed)
    params = {k: v + np.float32(0.01) for k, v in params.items()}  # biases and running means not all zero
    for k, v in changes.items():
        if v is None:
            params.pop(k)
        else:
            params[k] = v
    path = tmp_path / "params.npz"
    np.savez(path, **params)
    return path, params


def run_cli(capsys, args: list[str]) -> tuple[int, str, str]:
    code = bmc.cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---- parameters given by name --------------------------------------------------------------------------------------


def test_npz_params_load_by_name_with_a_note_and_a_warning(tmp_path):
    path, given = given_params(tmp_path, **{"logits.b": None, "logits.W": np.ones((3, 10), np.float64),
                                            "extra.W": np.zeros(2, np.float32)})
    notes, warnings = [], []
    model = bmc.compile_string(MODEL)
    out = model.build(tmp_path / "b", params=path, log=notes.append, warn=warnings.append)
    built = dict(np.load(out / "params.npz"))
    fresh, _ = model.init_params()
    for name in ("stem.W", "stem.b", "h.gamma", "h.beta", "h.running_mean", "h.running_var"):
        np.testing.assert_array_equal(built[name], given[name])
        assert built[name].dtype == np.float32
    for name in ("logits.W", "logits.b"):  # not given, or given in another shape: initialized
        np.testing.assert_array_equal(built[name], fresh[name])
    assert notes == ["note: 2 parameters not taken from params.npz are initialized: logits.W (f32[32, 10] here, "
                     "[3, 10] in params.npz), logits.b"]
    assert [w.message for w in warnings] == [f"{path} holds 1 array the model has no parameter for: extra.W"]
    assert "did you rename a statement?" in warnings[0].notes[0]


def test_params_convert_to_the_build_precision_and_a_dict_works(tmp_path):
    _, given = given_params(tmp_path)
    model = bmc.compile_string(MODEL, dtype="f64")
    out = model.build(tmp_path / "b", params={k: v for k, v in given.items()}, log=lambda s: None)
    built = dict(np.load(out / "params.npz"))
    assert all(v.dtype == np.float64 for v in built.values())
    np.testing.assert_array_equal(built["stem.W"], given["stem.W"].astype(np.float64))


def test_train_starts_from_the_given_parameters(tmp_path, capsys):
    path, given = given_params(tmp_path)
    bm = write_model(tmp_path)
    code, out, err = run_cli(capsys, ["train", str(bm), "--params", str(path), "--steps", "1", "--lr", "1e-9",
                                      "--quiet", "-o", str(tmp_path / "t")])
    assert code == 0, err
    assert "note:" not in out and "warning" not in err  # every parameter given, none unknown
    trained = dict(np.load(tmp_path / "t" / "params.npz"))
    np.testing.assert_allclose(trained["stem.W"], given["stem.W"], atol=1e-6)  # one step of lr 1e-9


def test_a_replaced_head_trains(tmp_path):
    """The head of a 10-class model replaced by a 5-class one: the body comes from the file, the head is
    initialized, and the model learns the new task."""
    source = bmc.compile_string(MODEL).train(**QUIET)
    path = tmp_path / "params.npz"
    np.savez(path, **source.params)
    d = load_dataset("digits")
    train, test = d.y_train < 5, d.y_test < 5
    data = (d.x_train[train], d.y_train[train], d.x_test[test], d.y_test[test])
    notes = []
    model = bmc.compile_string(MODEL, defines={"classes": 5})
    tuned = model.train(data, epochs=3, params=path, log=notes.append, progress=False)
    assert ("note: 2 parameters not taken from params.npz are initialized: logits.W (f32[32, 5] here, [32, 10] in "
            "params.npz), logits.b (f32[5] here, [10] in params.npz)") in notes
    assert tuned.history.final.test["accuracy"] >= 0.9
    assert tuned.params["logits.W"].shape == (32, 5)


# ---- freeze --------------------------------------------------------------------------------------------------------


def test_freeze_leaves_frozen_parameters_bit_identical_and_the_loss_decreases(tmp_path):
    path, given = given_params(tmp_path)
    model = bmc.compile_string(MODEL)
    trained = model.train(params=path, freeze="stem", **QUIET)
    for name in ("stem.W", "stem.b"):
        np.testing.assert_array_equal(trained.params[name], given[name])
    for name in ("h.gamma", "h.beta", "h.running_mean", "h.running_var", "logits.W", "logits.b"):
        assert not np.array_equal(trained.params[name], given[name]), name
    losses = [e.loss for e in trained.history.epochs]
    assert losses[-1] < losses[0]
    assert not any(k.endswith("stem.W") for k in trained.state)  # no optimizer state for a frozen parameter


def test_a_frozen_layer_keeps_its_running_statistics(tmp_path):
    path, given = given_params(tmp_path)
    text = MODEL.replace("    epochs    = 3\n", '    epochs    = 1\n    freeze    = h, "logits.b"\n')
    trained = bmc.compile_string(text).train(params=path, **QUIET)
    for name in ("h.gamma", "h.beta", "h.running_mean", "h.running_var", "logits.b"):
        np.testing.assert_array_equal(trained.params[name], given[name])
    for name in ("stem.W", "logits.W"):
        assert not np.array_equal(trained.params[name], given[name]), name


def test_check_marks_frozen_parameters(tmp_path, capsys):
    bm = write_model(tmp_path, MODEL.replace("    epochs    = 3\n", '    freeze = "stem.*", "h.running_*"\n'))
    code, out, err = run_cli(capsys, ["check", str(bm)])
    assert code == 0, err
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("    ")}
    assert lines["stem.W"].endswith("(frozen: not trained)")
    assert lines["h.running_mean"].endswith("(frozen: not updated)")
    assert "frozen" not in lines["logits.W"]
    summary = bmc.compile(bm).summary_json()["parameters"]
    assert summary["stem.b"]["frozen"] and not summary["stem.b"]["trainable"]
    assert summary["h.gamma"]["trainable"] and not summary["h.gamma"]["frozen"]


# ---- errors on the command line ------------------------------------------------------------------------------------


def _pickled(tmp_path: Path) -> Path:
    path = tmp_path / "pickled.npz"
    np.savez(path, **{"stem.W": np.array([{"a": 1}], dtype=object)})
    return path


def _nonfinite(tmp_path: Path) -> Path:
    path, _ = given_params(tmp_path, **{"logits.b": np.full(10, np.nan, np.float32)})
    return path


def _not_npz(tmp_path: Path) -> Path:
    path = tmp_path / "params.npz"
    path.write_text("not an archive")
    return path


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing.npz", "missing.npz: no such file"),
    (_pickled, "'stem.W' is an array of Python objects, which bmc does not load"),
    (_nonfinite, "parameter 'logits.b' holds nan (10 of 10 values)"),
    (_not_npz, "params.npz: not a .npz archive"),
])
@pytest.mark.parametrize("command", ["train", "build"])
def test_bad_params_files_are_usage_errors(tmp_path, capsys, make, message, command):
    bm = write_model(tmp_path)
    args = [command, str(bm), "--params", str(make(tmp_path)), "-o", str(tmp_path / "out")]
    code, _, err = run_cli(capsys, args + (["--quiet"] if command == "train" else []))
    assert code == 1
    assert message in err
    assert "internal error" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_an_unmatched_freeze_flag_is_a_usage_error_with_a_suggestion(tmp_path, capsys):
    bm = write_model(tmp_path)
    code, _, err = run_cli(capsys, ["train", str(bm), "--freeze", "stme,logits.*", "--quiet"])
    assert code == 1
    assert "error: --freeze stme: matches no parameter of model 'net'" in err
    assert "note: did you mean 'stem'?" in err


def test_an_unmatched_freeze_setting_is_an_error_at_the_pattern(tmp_path, capsys):
    bm = write_model(tmp_path, MODEL.replace("    epochs    = 3\n", '    freeze = stem, "logits.w"\n'))
    code, _, err = run_cli(capsys, ["check", str(bm)])
    assert code == 1
    assert f"{bm}:12:20: error: freeze pattern 'logits.w' matches no parameter" in err
    assert "note: did you mean 'logits.W'?" in err


# ---- the ONNX train step -------------------------------------------------------------------------------------------


def test_the_onnx_train_step_leaves_frozen_parameters_unchanged(tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    path, given = given_params(tmp_path)
    bm = write_model(tmp_path)
    out = tmp_path / "onnx"
    code, _, err = run_cli(capsys, ["build", str(bm), "--target", "onnx", "--train", "--params", str(path),
                                    "--freeze", "stem", "-o", str(out)])
    assert code == 0, err
    session = ort.InferenceSession(str(out / "train_step.onnx"), providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    outputs = [o.name for o in session.get_outputs()]
    assert {"stem.W", "stem.b"} <= inputs
    assert "params/stem.W" not in outputs and "params/logits.W" in outputs
    params, state = dict(np.load(out / "params.npz")), dict(np.load(out / "state.npz"))
    rng = np.random.default_rng(0)
    for _ in range(3):
        feeds = {"image": rng.normal(size=(16, 64)).astype(np.float32),
                 "label": rng.integers(0, 10, 16).astype(np.int64), "lr": np.array(0.01, np.float32),
                 **{k: v for k, v in {**params, **state}.items() if k in inputs}}
        results = dict(zip(outputs, session.run(outputs, feeds), strict=True))
        for k, v in results.items():
            kind, _, name = k.partition("/")
            if kind == "params":
                params[name] = v
            elif kind == "state":
                state[name] = v
    for name in ("stem.W", "stem.b"):
        np.testing.assert_array_equal(params[name], given[name])
    assert not np.array_equal(params["logits.W"], given["logits.W"])


def test_onnxruntime_training_respects_freeze(tmp_path):
    pytest.importorskip("onnxruntime")
    path, given = given_params(tmp_path)
    trained = bmc.compile_string(MODEL).train(params=path, freeze=["stem.W"], epochs=1, backend="onnxruntime",
                                              **QUIET)
    np.testing.assert_array_equal(trained.params["stem.W"], given["stem.W"])
    assert not np.array_equal(trained.params["stem.b"], given["stem.b"])
