"""The layers of the seed's models against independent references: direct loops at tiny sizes, and the formulas
ONNX documents for Conv, LSTM and GRU (gate order, layouts), which the ONNX exporter maps onto."""

from __future__ import annotations

import numpy as np
import pytest
from bmc.backends.numpy import compile_function

from bmc import ops
from bmc.ir.graph import Builder, Graph
from bmc.ir.types import TensorType

R = np.random.default_rng(42)


def run_op(op: ops.Op, *arrays: np.ndarray, outputs: int = 1):
    g = Graph("t")
    xs = [g.add_input(TensorType("f64" if a.dtype.kind == "f" else "i64", a.shape), f"x{i}", "input")
          for i, a in enumerate(arrays)]
    outs = Builder(g).emit(op, *xs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    g.outputs = {f"y{i}": v for i, v in enumerate(outs[:outputs])}
    result = compile_function(g)({f"x{i}": a for i, a in enumerate(arrays)})
    return [result[f"y{i}"] for i in range(outputs)] if outputs > 1 else result["y0"]


# ---- convolution and pooling: direct loops ---------------------------------------------------------------------


def conv_loops(x, w, b, stride, pads, dilation):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    top, left, bottom, right = pads
    xp = np.zeros((n, c, h + top + bottom, wd + left + right))
    xp[:, :, top:top + h, left:left + wd] = x
    oh = (h + top + bottom - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + left + right - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((n, o, oh, ow))
    for ni in range(n):
        for oi in range(o):
            for r in range(oh):
                for s in range(ow):
                    acc = b[oi]
                    for ci in range(c):
                        for i in range(kh):
                            for j in range(kw):
                                acc += w[oi, ci, i, j] * xp[ni, ci, r * stride[0] + i * dilation[0],
                                                            s * stride[1] + j * dilation[1]]
                    y[ni, oi, r, s] = acc
    return y


@pytest.mark.parametrize("stride, pads, dilation", [
    ((1, 1), (0, 0, 0, 0), (1, 1)),
    ((2, 1), (1, 0, 2, 1), (1, 1)),
    ((1, 2), (1, 1, 1, 1), (2, 1)),
])
def test_conv2d_matches_direct_loops(stride, pads, dilation):
    x, w, b = R.standard_normal((2, 3, 7, 6)), R.standard_normal((4, 3, 3, 2)), R.standard_normal(4)
    np.testing.assert_allclose(run_op(ops.Conv2d(stride, pads, dilation), x, w, b),
                               conv_loops(x, w, b, stride, pads, dilation), rtol=1e-12, atol=1e-12)


def pool_loops(x, kernel, stride, pads, reduce):
    n, c, h, w = x.shape
    top, left, bottom, right = pads
    oh = (h + top + bottom - kernel[0]) // stride[0] + 1
    ow = (w + left + right - kernel[1]) // stride[1] + 1
    y = np.zeros((n, c, oh, ow))
    for r in range(oh):
        for s in range(ow):
            rows = [i for i in range(r * stride[0] - top, r * stride[0] - top + kernel[0]) if 0 <= i < h]
            cols = [j for j in range(s * stride[1] - left, s * stride[1] - left + kernel[1]) if 0 <= j < w]
            y[:, :, r, s] = reduce(x[:, :, rows][:, :, :, cols], axis=(2, 3))
    return y


@pytest.mark.parametrize("kernel, stride, pads", [((2, 2), (2, 2), (0, 0, 0, 0)), ((3, 2), (1, 2), (1, 0, 1, 1))])
def test_pooling_matches_direct_loops(kernel, stride, pads):
    x = R.standard_normal((2, 3, 7, 6))
    np.testing.assert_allclose(run_op(ops.MaxPool2d(kernel, stride, pads), x),
                               pool_loops(x, kernel, stride, pads, np.max))
    np.testing.assert_allclose(run_op(ops.AvgPool2d(kernel, stride, pads), x),
                               pool_loops(x, kernel, stride, pads, np.mean), rtol=1e-12)


# ---- recurrences: ONNX's equations, written out ---------------------------------------------------------------


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def onnx_rnn(x, w, r, b, reverse=False):
    """ONNX RNN: Ht = tanh(Xt W^T + Ht-1 R^T + Wb + Rb)."""
    n, t, _ = x.shape
    hidden = r.shape[1]
    wb, rb = b[:hidden], b[hidden:]
    h = np.zeros((n, hidden))
    ys = np.zeros((n, t, hidden))
    for step in (reversed(range(t)) if reverse else range(t)):
        h = np.tanh(x[:, step] @ w.T + h @ r.T + wb + rb)
        ys[:, step] = h
    return ys, h


def onnx_lstm(x, w, r, b):
    """ONNX LSTM, gate order i, o, f, c: Ct = ft * Ct-1 + it * ct; Ht = ot * tanh(Ct)."""
    n, t, _ = x.shape
    hd = r.shape[1]
    wi, wo, wf, wc = np.split(w, 4)
    ri, ro, rf, rc = np.split(r, 4)
    wbi, wbo, wbf, wbc, rbi, rbo, rbf, rbc = np.split(b, 8)
    h, c = np.zeros((n, hd)), np.zeros((n, hd))
    ys = np.zeros((n, t, hd))
    for s in range(t):
        xt = x[:, s]
        i = sigmoid(xt @ wi.T + h @ ri.T + wbi + rbi)
        f = sigmoid(xt @ wf.T + h @ rf.T + wbf + rbf)
        ct = np.tanh(xt @ wc.T + h @ rc.T + wbc + rbc)
        c = f * c + i * ct
        o = sigmoid(xt @ wo.T + h @ ro.T + wbo + rbo)
        h = o * np.tanh(c)
        ys[:, s] = h
    return ys, h


def onnx_gru(x, w, r, b, linear_before_reset):
    """ONNX GRU, gate order z, r, h; both forms of the candidate state."""
    n, t, _ = x.shape
    hd = r.shape[1]
    wz, wr, wh = np.split(w, 3)
    rz, rr, rh = np.split(r, 3)
    wbz, wbr, wbh, rbz, rbr, rbh = np.split(b, 6)
    h = np.zeros((n, hd))
    ys = np.zeros((n, t, hd))
    for s in range(t):
        xt = x[:, s]
        z = sigmoid(xt @ wz.T + h @ rz.T + wbz + rbz)
        rt = sigmoid(xt @ wr.T + h @ rr.T + wbr + rbr)
        if linear_before_reset:
            cand = np.tanh(xt @ wh.T + rt * (h @ rh.T + rbh) + wbh)
        else:
            cand = np.tanh(xt @ wh.T + (rt * h) @ rh.T + rbh + wbh)
        h = (1 - z) * cand + z * h
        ys[:, s] = h
    return ys, h


def weights(gates: int, features: int = 3, hidden: int = 4):
    g = gates * hidden
    return R.standard_normal((g, features)) * 0.5, R.standard_normal((g, hidden)) * 0.5, R.standard_normal(2 * g) * 0.5


@pytest.mark.parametrize("reverse", [False, True])
def test_rnn_matches_onnx(reverse):
    x = R.standard_normal((2, 5, 3))
    w, r, b = weights(1)
    ys, last = run_op(ops.RNN(hidden=4, reverse=reverse), x, w, r, b, outputs=2)
    want_ys, want_last = onnx_rnn(x, w, r, b, reverse)
    np.testing.assert_allclose(ys, want_ys, rtol=1e-12)
    np.testing.assert_allclose(last, want_last, rtol=1e-12)


def test_lstm_matches_onnx():
    x = R.standard_normal((2, 5, 3))
    w, r, b = weights(4)
    ys, last = run_op(ops.LSTM(hidden=4), x, w, r, b, outputs=2)
    want_ys, want_last = onnx_lstm(x, w, r, b)
    np.testing.assert_allclose(ys, want_ys, rtol=1e-12)
    np.testing.assert_allclose(last, want_last, rtol=1e-12)


@pytest.mark.parametrize("linear_before_reset", [True, False])
def test_gru_matches_onnx(linear_before_reset):
    x = R.standard_normal((2, 5, 3))
    w, r, b = weights(3)
    ys, last = run_op(ops.GRU(hidden=4, linear_before_reset=linear_before_reset), x, w, r, b, outputs=2)
    want_ys, want_last = onnx_gru(x, w, r, b, linear_before_reset)
    np.testing.assert_allclose(ys, want_ys, rtol=1e-12)
    np.testing.assert_allclose(last, want_last, rtol=1e-12)


# ---- attention and normalization ---------------------------------------------------------------------------------


def test_causal_mask_hides_the_future():
    scores = R.standard_normal((2, 4, 4))
    masked = run_op(ops.CausalMask(), scores)
    assert np.isneginf(masked[:, 0, 1:]).all()
    np.testing.assert_array_equal(np.tril(masked[0]), np.tril(scores[0]))


def test_layer_norm_matches_its_definition():
    x, gamma, beta = R.standard_normal((3, 5)), R.standard_normal(5), R.standard_normal(5)
    want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * gamma + beta
    np.testing.assert_allclose(run_op(ops.LayerNorm(1e-5), x, gamma, beta), want, rtol=1e-12)


def test_gather_and_scatter_add():
    table, ids = R.standard_normal((5, 3)), np.array([[0, 4], [4, 1]])
    np.testing.assert_array_equal(run_op(ops.Gather(), table, ids), table[ids])
    updates = R.standard_normal((2, 2, 3))
    want = np.zeros((5, 3))
    for (i, j), row in np.ndenumerate(ids):
        want[row] += updates[i, j]
    np.testing.assert_allclose(run_op(ops.ScatterAdd(5), ids, updates), want)
