"""`bmc import` on ONNX graphs built here node by node: what it writes (names, layer calls, folded shape
computations, comments), that the written model computes what onnxruntime computes, and how it fails (every
unsupported node in one error, nothing written, nobody's files replaced, hostile names kept out of the code)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import bmc
import bmc.cli
from bmc.diagnostics import BmcError
from bmc.onnx_import import import_onnx
from bmc.runtime import load_source

RNG = np.random.default_rng(0)


def save(tmp_path, nodes, inputs, outputs, inits=(), opset=17, name="m.onnx"):
    graph = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], ir_version=9)
    path = tmp_path / name
    onnx.save(model, path)
    return path


def weight(name, *shape):
    return nh.from_array((RNG.standard_normal(shape) * 0.3).astype(np.float32), name)


def run_both(path, feeds: dict[str, np.ndarray], dtype="f32"):
    """The imported model's outputs (NumPy backend) and onnxruntime's, on the same feeds."""
    imp = import_onnx(path)
    model = bmc.compile_string(imp.source, filename="imported.bm", dtype=dtype)
    module = load_source(model.generate("numpy", train=False))
    got = module.forward(imp.params, **dict(zip(imp.inputs, feeds.values(), strict=True)))
    want = ort.InferenceSession(str(path)).run(None, feeds)
    return imp, list(got.values()), want


def close(got, want, rtol=1e-5):
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape
        assert np.abs(g - w).max() <= rtol * (np.abs(w).max() + 1e-6)


def test_dense_from_matmul_add_and_gemm(tmp_path):
    nodes = [h.make_node("MatMul", ["x", "w1"], ["m"], name="/fc1/MatMul"),
             h.make_node("Add", ["m", "b1"], ["a"], name="/fc1/Add"),
             h.make_node("Relu", ["a"], ["r"], name="/act/Relu"),
             h.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="/fc2/Gemm", transB=1, alpha=0.5)]
    path = save(tmp_path, nodes, [h.make_tensor_value_info("x", T.FLOAT, ["batch", 6])],
                [h.make_tensor_value_info("y", T.FLOAT, ["batch", 3])],
                [weight("w1", 6, 5), weight("b1", 5), weight("w2", 3, 5), weight("b2", 3)])
    imp, got, want = run_both(path, {"x": RNG.standard_normal((4, 6)).astype(np.float32)})
    close(got, want)
    assert "input x: f32[batch, 6]" in imp.source
    assert "output y = dense(relu(dense(x, 5)), 3)" in imp.source
    assert sorted(imp.params) == ["y.dense.W", "y.dense.b", "y.dense_1.W", "y.dense_1.b"]
    assert "# /fc1/MatMul (MatMul), /fc1/Add (Add), /act/Relu (Relu), /fc2/Gemm (Gemm)" in imp.source


def test_shape_computations_fold_to_symbolic_dims(tmp_path):
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape, as exporters write a reshape that keeps the batch: the
    target is [N, 4, 2] with N the input's symbolic dim."""
    i64 = lambda name, v: nh.from_array(np.asarray(v, np.int64), name)  # noqa: E731
    nodes = [h.make_node("Shape", ["x"], ["s"]), h.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             h.make_node("Unsqueeze", ["n", "ax0"], ["n1"]), h.make_node("Concat", ["n1", "rest"], ["shape"], axis=0),
             h.make_node("Reshape", ["x", "shape"], ["y"], name="/split_heads/Reshape"),
             h.make_node("Transpose", ["y"], ["t"], perm=[0, 2, 1]),
             h.make_node("Transpose", ["t"], ["z"], perm=[0, 2, 1])]
    path = save(tmp_path, nodes, [h.make_tensor_value_info("x", T.FLOAT, ["N", 8])],
                [h.make_tensor_value_info("z", T.FLOAT, ["N", 4, 2])],
                [i64("zero", 0), i64("ax0", [0]), i64("rest", [4, 2])])
    imp, got, want = run_both(path, {"x": RNG.standard_normal((3, 8)).astype(np.float32)})
    close(got, want)
    assert "output z = reshape(x, [N, 4, 2])" in imp.source  # the two transposes cancel


def test_decomposed_layer_norm_becomes_layer_norm(tmp_path):
    c = lambda name, v: nh.from_array(np.asarray(v, np.float32), name)  # noqa: E731
    nodes = [h.make_node("ReduceMean", ["x"], ["mu"], axes=[-1]), h.make_node("Sub", ["x", "mu"], ["d"]),
             h.make_node("Pow", ["d", "two"], ["d2"]), h.make_node("ReduceMean", ["d2"], ["var"], axes=[-1]),
             h.make_node("Add", ["var", "eps"], ["ve"]), h.make_node("Sqrt", ["ve"], ["sd"]),
             h.make_node("Div", ["d", "sd"], ["n"]), h.make_node("Mul", ["n", "g"], ["ng"]),
             h.make_node("Add", ["ng", "b"], ["y"])]
    path = save(tmp_path, nodes, [h.make_tensor_value_info("x", T.FLOAT, ["N", 3, 6])],
                [h.make_tensor_value_info("y", T.FLOAT, ["N", 3, 6])],
                [c("two", 2.0), c("eps", 1e-6), weight("g", 6), weight("b", 6)], opset=13)
    imp, got, want = run_both(path, {"x": RNG.standard_normal((2, 3, 6)).astype(np.float32)})
    close(got, want)
    assert "output y = layer_norm(x, eps = 1e-06)" in imp.source
    assert sorted(imp.params) == ["y.beta", "y.gamma"]


def test_every_unsupported_node_in_one_error_and_nothing_written(tmp_path, capsys):
    nodes = [h.make_node("Relu", ["x"], ["a"], name="ok"),
             h.make_node("NonMaxSuppression", ["a"], ["b"], name="nms"),
             h.make_node("Relu", ["b"], ["c"], name="after_nms"),  # downstream of a failure: not reported again
             h.make_node("Det", ["x"], ["d"], name="det"),
             h.make_node("Add", ["c", "d"], ["y"])]
    path = save(tmp_path, nodes, [h.make_tensor_value_info("x", T.FLOAT, ["N", 3, 3])],
                [h.make_tensor_value_info("y", T.FLOAT, None)])
    with pytest.raises(BmcError) as e:
        import_onnx(path)
    text = e.value.render()
    assert "2 ONNX nodes cannot be imported (Det, NonMaxSuppression); nothing was written" in text
    assert "node 'nms' (NonMaxSuppression, ai.onnx opset 17)" in text and "node 'det' (Det" in text
    assert "after_nms" not in text
    out = tmp_path / "m.bm"
    assert bmc.cli.main(["import", str(path), "-o", str(out)]) == 1
    assert not out.exists() and not (tmp_path / "params.npz").exists()
    assert "Traceback" not in capsys.readouterr().err


def test_hostile_names_stay_out_of_the_code(tmp_path):
    """Tensor, node and dim names reach the .bm file only mangled (identifiers) or escaped (comments): a newline in
    a node name cannot end its comment, a keyword or a function's name cannot be a statement's name."""
    evil = 'x\n}\nmodel evil { input q: f32[1] output q }\n# "'
    nodes = [h.make_node("Relu", ["input"], [evil], name=evil),
             h.make_node("Sigmoid", [evil], ["relu"], name="model"),
             h.make_node("Tanh", ["relu"], ["output"], name="\u2028")]
    path = save(tmp_path, nodes, [h.make_tensor_value_info("input", T.FLOAT, ["N}\n", 2])],
                [h.make_tensor_value_info("output", T.FLOAT, None)], name="we ird\n.onnx")
    imp, got, want = run_both(path, {"input": RNG.standard_normal((2, 2)).astype(np.float32)})
    close(got, want)
    body = [line for line in imp.source.splitlines() if not line.lstrip().startswith("#")]
    assert not any("evil" in line for line in body)
    assert len([line for line in imp.source.splitlines() if line.startswith("model ")]) == 1
    assert "input input_: f32[N, 2]" in imp.source


def test_cli_writes_both_files_and_replaces_only_its_own(tmp_path, capsys):
    w = weight("w", 3, 4)
    path = save(tmp_path, [h.make_node("Gemm", ["x", "w", "b"], ["logits"], transB=1),
                           h.make_node("Softmax", ["logits"], ["probs"])],
                [h.make_tensor_value_info("x", T.FLOAT, ["N", 4])], [h.make_tensor_value_info("probs", T.FLOAT, None)],
                [w, weight("b", 3)])
    out = tmp_path / "model.bm"
    assert bmc.cli.main(["import", str(path), "-o", str(out), "--loss", "cross_entropy"]) == 0
    text = out.read_text()
    assert "logits = dense(x, 3)" in text and "output probs = softmax(logits)" in text
    assert "target label: i64[N]" in text and "loss = cross_entropy(logits, label)" in text
    with np.load(tmp_path / "params.npz", allow_pickle=False) as f:
        np.testing.assert_array_equal(f["logits.W"], nh.to_array(w).T)
        assert sorted(f.files) == ["logits.W", "logits.b"]
    assert bmc.cli.main(["check", str(out)]) == 0
    assert bmc.cli.main(["import", str(path), "-o", str(out)]) == 0  # an earlier import: replaced
    mine = tmp_path / "mine.bm"
    mine.write_text("# my model\n")
    capsys.readouterr()
    assert bmc.cli.main(["import", str(path), "-o", str(mine)]) == 1
    assert mine.read_text() == "# my model\n"
    assert "is not a model bmc import wrote" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"not onnx at all", None])
def test_bad_files_are_errors(tmp_path, capsys, content):
    path = tmp_path / "bad.onnx"
    if content is not None:
        path.write_bytes(content)
    assert bmc.cli.main(["import", str(path), "-o", str(tmp_path / "m.bm")]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_gemm_values_are_the_onnx_files(tmp_path):
    """dense's W is [in, out]: Gemm's transB weight arrives transposed, alpha folded in, nothing else changed."""
    w, b = weight("w", 3, 4), weight("b", 3)
    path = save(tmp_path, [h.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1, alpha=2.0, beta=0.5)],
                [h.make_tensor_value_info("x", T.FLOAT, ["N", 4])], [h.make_tensor_value_info("y", T.FLOAT, None)],
                [w, b])
    imp = import_onnx(path)
    np.testing.assert_array_equal(imp.params["y.W"], nh.to_array(w).T * np.float32(2.0))
    np.testing.assert_array_equal(imp.params["y.b"], nh.to_array(b) * np.float32(0.5))


@pytest.mark.parametrize("linear_before_reset", [0, 1])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_gru_node_both_reset_forms(tmp_path, linear_before_reset, direction):
    """ONNX's GRU (time-major, both reset forms, one or two directions) as bmc's gru: Y and Y_h both used."""
    dirs, hidden, feats = (2 if direction == "bidirectional" else 1), 4, 3
    nodes = [h.make_node("GRU", ["x", "W", "R", "B"], ["Y", "Y_h"], hidden_size=hidden, direction=direction,
                         linear_before_reset=linear_before_reset, name="/gru/GRU"),
             h.make_node("Relu", ["Y"], ["y"]), h.make_node("Tanh", ["Y_h"], ["last"])]
    path = save(tmp_path, nodes, [h.make_tensor_value_info("x", T.FLOAT, [5, "N", feats])],
                [h.make_tensor_value_info("y", T.FLOAT, None), h.make_tensor_value_info("last", T.FLOAT, None)],
                [weight("W", dirs, 3 * hidden, feats), weight("R", dirs, 3 * hidden, hidden),
                 weight("B", dirs, 6 * hidden)])
    imp, got, want = run_both(path, {"x": RNG.standard_normal((5, 2, feats)).astype(np.float32)})
    close(got, want, 1e-5)
    assert ("reset_after = false" in imp.source) == (not linear_before_reset)


@pytest.mark.slow
def test_an_imported_model_builds_for_every_target(tmp_path):
    """The imported .bm with its params.npz: NumPy and ONNX builds (inference and train step) agree with
    onnxruntime on the original, and nvcc compiles the CUDA build (it runs where there is a GPU)."""
    from bmc.backends.cuda import nvcc

    nodes = [h.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], group=2, name="/conv/Conv"),
             h.make_node("HardSwish", ["c"], ["a"]), h.make_node("GlobalAveragePool", ["a"], ["g"]),
             h.make_node("Flatten", ["g"], ["f"]), h.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
    path = save(tmp_path, nodes, [h.make_tensor_value_info("x", T.FLOAT, ["N", 4, 6, 6])],
                [h.make_tensor_value_info("y", T.FLOAT, ["N", 3])],
                [weight("w", 6, 2, 3, 3), weight("b", 6), weight("fw", 3, 6), weight("fb", 3)])
    bm = tmp_path / "net.bm"
    assert bmc.cli.main(["import", str(path), "-o", str(bm)]) == 0
    params = str(tmp_path / "params.npz")
    x = RNG.standard_normal((2, 4, 6, 6)).astype(np.float32)
    want = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    for target in ("numpy", "onnx"):
        out = tmp_path / target
        assert bmc.cli.main(["build", str(bm), "--target", target, "--params", params, "-o", str(out)]) == 0
        got = bmc.load(out).predict(x)
        np.testing.assert_allclose(next(iter(got.values())), want, rtol=1e-5, atol=1e-6)
    if nvcc.find_nvcc() is None:
        pytest.skip("nvcc (the CUDA toolkit) is not installed")
    assert bmc.cli.main(["build", str(bm), "--target", "cuda", "--params", params, "-o", str(tmp_path / "cuda")]) == 0
    assert (tmp_path / "cuda" / "model.so").exists()


def test_a_causal_mask_and_a_table_cut_to_t(tmp_path):
    """What bmc exports for attention(causal = true) and learned_positions: Where(Less(Unsqueeze(Range(0, T)),
    Range(0, T)), -inf, scores) is causal_mask(scores), a Slice of a table to the symbolic T is table[:T]; and an
    unused branch (a node nothing reads) is neither imported nor reported."""
    i64 = lambda name, v: nh.from_array(np.asarray(v, np.int64), name)  # noqa: E731
    f32 = lambda name, v: nh.from_array(np.asarray(v, np.float32), name)  # noqa: E731
    nodes = [h.make_node("Shape", ["x"], ["s"]), h.make_node("Slice", ["s", "one", "two"], ["t1"]),
             h.make_node("Slice", ["table", "zero1", "t1"], ["pos"]), h.make_node("Add", ["x", "pos"], ["xp"]),
             h.make_node("Transpose", ["xp"], ["xt"], perm=[0, 2, 1]), h.make_node("MatMul", ["xp", "xt"], ["sc"]),
             h.make_node("Squeeze", ["t1"], ["t"]), h.make_node("Range", ["zero", "t", "step"], ["r"]),
             h.make_node("Unsqueeze", ["r", "one"], ["u"]), h.make_node("Less", ["u", "r"], ["later"]),
             h.make_node("Where", ["later", "ninf", "sc"], ["masked"]), h.make_node("Softmax", ["masked"], ["y"]),
             h.make_node("Det", ["sc"], ["unused"])]
    path = save(tmp_path, nodes, [h.make_tensor_value_info("x", T.FLOAT, ["N", "T", 4])],
                [h.make_tensor_value_info("y", T.FLOAT, ["N", "T", "T"])],
                [weight("table", 10, 4), i64("one", [1]), i64("two", [2]), i64("zero1", [0]), i64("zero", 0),
                 i64("step", 1), f32("ninf", -np.inf)])
    imp, got, want = run_both(path, {"x": RNG.standard_normal((2, 5, 4)).astype(np.float32)})
    close(got, want)
    assert "table[:T]" in imp.source and "causal_mask(" in imp.source


def test_an_input_given_back_as_an_output(tmp_path):
    """A graph output that is a graph input (or listed twice) is a statement of its own, not a second definition."""
    nodes = [h.make_node("Relu", ["x"], ["y"])]
    path = save(tmp_path, nodes, [h.make_tensor_value_info("x", T.FLOAT, ["N", 3])],
                [h.make_tensor_value_info("y", T.FLOAT, None), h.make_tensor_value_info("x", T.FLOAT, None),
                 h.make_tensor_value_info("y", T.FLOAT, None)])
    _, got, want = run_both(path, {"x": RNG.standard_normal((2, 3)).astype(np.float32)})
    close(got[:2], want[:2])
