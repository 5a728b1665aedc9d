"""A user's own data (issue 11): CSV files, NumPy arrays through the API, an image folder, and `bmc predict` on
PNG, CSV and .npy files giving the classes `bmc eval` scores."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bmc
from bmc.diagnostics import BmcError, DataError

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"log": lambda s: None, "progress": False}

REGRESSION = """model houses(features = 3) {
    input  x: f32[N, features]
    target price: f32[N]
    output y = dense(x, 1)
    loss = mse(y, reshape(price, [N, 1]))
}
train houses { data = "houses.csv"  target = "price"  epochs = 600  batch = full  optimizer = adam(lr = 0.2)
               normalize = true }
"""
CLASSIFIER = """model blobs(features = 2, classes = 3) {
    input  x: f32[N, features]
    target label: i64[N]
    logits = dense(relu(dense(x, 16)), classes)
    output probs = softmax(logits)
    loss = cross_entropy(logits, label)
}
train blobs { epochs = 30  batch = 16  optimizer = adam(lr = 0.05) }
"""
IMAGES = """model shapes(h = 8, w = 8) {
    input  image: f32[N, 1, h, w]
    target label: i64[N]
    logits = dense(flatten(relu(conv2d(image, 4, 3, padding = "same"))), 2)
    output probs = softmax(logits)
    loss = cross_entropy(logits, label)
}
train shapes { epochs = 40  batch = 8  optimizer = adam(lr = 0.01) }
"""


def blobs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, 3, n)
    centers = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    return (centers[y] + rng.standard_normal((n, 2))).astype(np.float32), y


def write_csv(path: Path, header: list[str], rows) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_regression_on_a_csv_file_with_a_named_target(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 10, (200, 3))
    price = x @ np.array([3.0, -2.0, 0.5]) + 7
    write_csv(tmp_path / "houses.csv", ["rooms", "price", "age", "garden"],
              [[a, p, b, c] for (a, b, c), p in zip(x, price, strict=True)])
    monkeypatch.chdir(tmp_path)
    trained = bmc.compile_string(REGRESSION).train(**QUIET)
    assert trained.history.final.test["mse"] < 0.05
    assert trained.manifest["columns"] == ["rooms", "age", "garden"]


def test_class_names_in_a_csv_target_and_words_in_a_feature(tmp_path):
    rng = np.random.default_rng(1)
    x, y = blobs(300, rng)
    names = np.array(["circle", "square", "star"])
    path = write_csv(tmp_path / "b.csv", ["a", "b", "kind"], [[p, q, names[k]] for (p, q), k in zip(x, y, strict=True)])
    trained = bmc.compile_string(CLASSIFIER).train(str(path), **QUIET)
    assert trained.history.final.test["accuracy"] > 0.9
    assert trained.manifest["classes"] == ["circle", "square", "star"]
    bad = write_csv(tmp_path / "c.csv", ["a", "city", "kind"], [[1, "Paris", 0], [2, "Lyon", 1]] * 10)
    with pytest.raises(DataError, match=r"feature column 'city' \(e.g. 'Paris', 'Lyon'\) holds words"):
        bmc.compile_string(CLASSIFIER).train(str(bad), **QUIET)
    with pytest.raises(DataError, match=r"(?s)has no column 'knd'.*did you mean 'kind'"):
        bmc.compile_string(CLASSIFIER).train(str(path), target="knd", **QUIET)


def test_numpy_arrays_through_the_api():
    rng = np.random.default_rng(2)
    x, y = blobs(400, rng)
    trained = bmc.compile_string(CLASSIFIER).train((x, y), **QUIET)
    assert trained.history.final.test["accuracy"] > 0.9
    xt, yt = blobs(100, rng)
    four = bmc.compile_string(CLASSIFIER).train((x, y, xt, yt), **QUIET)
    predicted = four.predict(xt)["probs"].argmax(axis=1)
    assert four.history.final.test["accuracy"] == pytest.approx(np.mean(predicted == yt))


def image_folder(root: Path, n: int = 24) -> Path:
    """Two classes of 8x8 grayscale PNGs: a bright left half, or a bright right half, with noise."""
    from PIL import Image

    rng = np.random.default_rng(3)
    for k, name in enumerate(["left", "right"]):
        (root / name).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 60, (8, 8))
            pixels[:, :4] += 180 * (k == 0)
            pixels[:, 4:] += 180 * (k == 1)
            Image.fromarray(pixels.astype(np.uint8), "L").save(root / name / f"{i}.png")
    return root


def run_bmc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bmc.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_an_image_folder_trains_and_predict_agrees_with_eval_on_png_npy_and_csv(tmp_path):
    folder = image_folder(tmp_path / "shapes")
    source = tmp_path / "shapes.bm"
    source.write_text(IMAGES)
    out = run_bmc("train", str(source), "--data", str(folder), "--quiet", "-o", str(tmp_path / "b"))
    assert out.returncode == 0, out.stderr
    assert "2 classes (left, right)" in out.stdout
    build = bmc.load(tmp_path / "b")
    data = bmc.data.load_dataset(str(folder))
    scores = run_bmc("eval", str(tmp_path / "b"), "--data", str(folder), "--json")
    assert scores.returncode == 0, scores.stderr
    report = json.loads(scores.stdout)
    assert report["accuracy"] > 0.9
    expected = build.predict(data.x_test)["probs"].argmax(axis=1)
    # the same test samples as PNG files, as one .npy, and as CSV rows of pixels
    files = []
    for i, x in enumerate(data.x_test):
        from PIL import Image

        Image.fromarray(x, "L").save(tmp_path / f"t{i}.png")
        files.append(str(tmp_path / f"t{i}.png"))
    np.save(tmp_path / "test.npy", data.x_test)
    write_csv(tmp_path / "test.csv", [f"p{i}" for i in range(64)], data.x_test.reshape(len(data.x_test), -1))
    for inputs in (files, [str(tmp_path / "test.npy")], [str(tmp_path / "test.csv")]):
        pred = run_bmc("predict", str(tmp_path / "b"), *inputs, "--json")
        assert pred.returncode == 0, pred.stderr
        rows = json.loads(pred.stdout)
        assert [r["class"] for r in rows] == ["left" if k == 0 else "right" for k in expected]
        assert all(0.5 <= r["probability"] <= 1 for r in rows)
    correct = sum(r["class"] == ["left", "right"][k] for r, k in zip(rows, data.y_test, strict=True))
    assert correct / len(rows) == pytest.approx(report["accuracy"])
    assert report["confusion_matrix"] and sum(map(sum, report["confusion_matrix"])) == len(data.y_test)


def test_eval_and_predict_on_an_onnx_build_match_the_numpy_build(tmp_path):
    model = bmc.compile(ROOT / "examples" / "mlp.bm", defines={"hidden": 16})
    trained = model.train("digits", epochs=2, **QUIET)
    trained.save(tmp_path / "np")
    onnx_dir = model.build(tmp_path / "onnx", "onnx", params=trained.params, state=trained.state, trained=trained)
    data = bmc.data.load_dataset("digits")
    report: dict = {}
    numpy_scores = bmc.load(tmp_path / "np").evaluate("digits", report)
    onnx_scores = bmc.load(onnx_dir).evaluate("digits")
    assert onnx_scores == pytest.approx(numpy_scores, abs=1e-9)
    assert np.array(report["confusion_matrix"]).trace() == round(numpy_scores["accuracy"] * len(data.y_test))
    np.save(tmp_path / "x.npy", data.x_test[:20])
    classes = [json.loads(run_bmc("predict", str(d), str(tmp_path / "x.npy"), "--json").stdout)
               for d in (tmp_path / "np", onnx_dir)]
    assert [r["class"] for r in classes[0]] == [r["class"] for r in classes[1]]
    written = run_bmc("predict", str(onnx_dir), str(tmp_path / "x.npy"), "-o", str(tmp_path / "p.csv"))
    assert written.returncode == 0 and (tmp_path / "p.csv").read_text().startswith("file,class,probability\n")


TWO_INPUTS = """model pair(a_features = 3, b_features = 2) {
    input  a: f32[N, a_features]
    input  b: f32[N, b_features]
    target label: i64[N]
    logits = dense(concat([relu(dense(a, 8)), relu(dense(b, 8))], axis = 1), 2)
    output probs = softmax(logits)
    loss = cross_entropy(logits, label)
}
train pair { epochs = 40  batch = 16  optimizer = adam(lr = 0.02) }
"""


def test_a_two_input_model_trains_on_named_arrays_of_an_npz(tmp_path):
    """The label is 1 when a's first feature plus b's first exceeds 0: neither input alone decides it."""
    rng = np.random.default_rng(4)

    def split(n):
        a, b = rng.standard_normal((n, 3)), rng.standard_normal((n, 2))
        return a.astype(np.float32), b.astype(np.float32), (a[:, 0] + b[:, 0] > 0).astype(np.int64)

    (a, b, y), (at, bt, yt) = split(400), split(100)
    np.savez(tmp_path / "pair.npz", a_train=a, a_test=at, b_train=b, b_test=bt, y_train=y, y_test=yt)
    trained = bmc.compile_string(TWO_INPUTS).train(str(tmp_path / "pair.npz"), **QUIET)
    assert trained.history.final.test["accuracy"] > 0.9
    out = trained.predict(at, bt)["probs"].argmax(axis=1)
    assert trained.history.final.test["accuracy"] == pytest.approx(np.mean(out == yt))
    np.savez(tmp_path / "half.npz", a_train=a, a_test=at, y_train=y, y_test=yt)
    with pytest.raises(bmc.diagnostics.BmcError, match="has no arrays for b"):
        bmc.compile_string(TWO_INPUTS).train(str(tmp_path / "half.npz"), **QUIET)


def test_a_class_per_position_trains_a_tagger():
    """In-memory data with labels [n, T] (a sequence tagger's, as an imported ONNX tagger has): the target is
    i64[N, T], the output [N, T, C], and accuracy counts every position."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 6, (96, 5)).astype(np.int64)
    y = (x % 3).astype(np.int64)  # each token's class is a function of the token
    model = bmc.compile_string("""
model tagger {
    input  ids: i64[N, 5]
    target tags: i64[N, 5]
    logits = dense(embedding(ids, 6, 8), 3)
    output scores = softmax(logits)
    loss = cross_entropy(logits, tags)
}""")
    build = model.train((x[:64], y[:64], x[64:], y[64:]), epochs=40, batch=16, lr=0.05, log=lambda s: None,
                        progress=False)
    assert build.history.final.test["accuracy"] > 0.9
    with pytest.raises(BmcError, match=r"a class of 3 per position of 4"):  # labels of another length
        model.train((x[:64], y[:64, :4], x[64:], y[64:, :4]), epochs=1, log=lambda s: None, progress=False)
