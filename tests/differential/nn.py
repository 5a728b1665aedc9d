"""The language's layers computed in PyTorch from their definitions (README, the ops' docstrings), in whatever float
dtype the tensors have. Nothing here calls bmc.

Layouts are the language's: dense W [in, out]; conv W [out, in, kh, kw] with padding (top, left, bottom, right);
recurrent W [gates*H, F], R [gates*H, H], B [2*gates*H] with ONNX's gate orders (LSTM i, o, f, c; GRU z, r, h,
linear before reset); attention projections x @ W + b.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same": ceil(size / stride) outputs, the odd pixel of padding after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def conv2d(x, w, b, stride, pads, dilation):
    top, left, bottom, right = pads
    x = F.pad(x, (left, right, top, bottom))
    return F.conv2d(x, w, b, stride=stride, dilation=dilation)


def max_pool(x, size, stride, pads):
    top, left, bottom, right = pads
    x = F.pad(x, (left, right, top, bottom), value=-math.inf)
    return F.max_pool2d(x, size, stride)


def avg_pool(x, size, stride, pads):
    """The mean over the window's positions inside the image (padding is not counted)."""
    top, left, bottom, right = pads
    spread = (left, right, top, bottom)
    total = F.avg_pool2d(F.pad(x, spread), size, stride, divisor_override=1)
    count = F.avg_pool2d(F.pad(torch.ones_like(x[:1, :1]), spread), size, stride, divisor_override=1)
    return total / count


def batch_norm(x, gamma, beta, mean, var, momentum, eps, training):
    """Normalize each channel (axis 1). Training: by the batch's mean and (biased) variance, and running =
    momentum * running + (1 - momentum) * batch, with the unbiased variance (n / (n - 1), taken as 1 when n is 1).
    The running tensors are updated in place."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    if not training:
        return (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps) * gamma.reshape(shape) + \
            beta.reshape(shape)
    axes = (0, *range(2, x.dim()))
    n = x.numel() // x.shape[1]
    batch_mean = x.mean(dim=axes)
    batch_var = ((x - batch_mean.reshape(shape)) ** 2).mean(dim=axes)
    with torch.no_grad():
        mean.mul_(momentum).add_((1 - momentum) * batch_mean)
        var.mul_(momentum).add_((1 - momentum) * batch_var * (n / max(n - 1, 1)))
    return (x - batch_mean.reshape(shape)) / torch.sqrt(batch_var.reshape(shape) + eps) * gamma.reshape(shape) + \
        beta.reshape(shape)


def sinusoid_table(t: int, d: int) -> np.ndarray:
    """"Attention Is All You Need": PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d))."""
    table = np.zeros((t, d))
    for p in range(t):
        for j in range(d):
            angle = p / 10000 ** ((j - j % 2) / d)
            table[p, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return table


# ---- recurrences: PyTorch's own cells with the weights reordered ---------------------------------------------------

# gate blocks of bmc's layout, in PyTorch's order: LSTM i, f, g, o from bmc's i, o, f, c; GRU r, z, n from z, r, h
TORCH_ORDER = {"rnn": [0], "lstm": [0, 2, 3, 1], "gru": [1, 0, 2]}
CELLS = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}


def _blocks(t, kind: str, hidden: int):
    parts = torch.split(t, hidden, dim=0)
    return torch.cat([parts[i] for i in TORCH_ORDER[kind]], dim=0)


def recurrent(kind: str, x, w, r, bias, hidden: int, reverse: bool):
    """The sequence of states [N, T, H] and the last state [N, H] (for a reverse layer: after reading back to t=0).
    The cell's weights are functional copies of the parameters, so gradients flow to w, r and bias."""
    gh = w.shape[0]
    n, t, _ = x.shape
    w_ih, w_hh = _blocks(w, kind, hidden), _blocks(r, kind, hidden)
    b_ih, b_hh = _blocks(bias[:gh], kind, hidden), _blocks(bias[gh:], kind, hidden)
    h = x.new_zeros((n, hidden))
    c = x.new_zeros((n, hidden))
    states = [None] * t
    steps = reversed(range(t)) if reverse else range(t)
    for i in steps:
        xt = x[:, i]
        if kind == "lstm":
            h, c = torch._VF.lstm_cell(xt, (h, c), w_ih, w_hh, b_ih, b_hh)
        elif kind == "gru":
            h = torch._VF.gru_cell(xt, h, w_ih, w_hh, b_ih, b_hh)
        else:
            h = torch._VF.rnn_tanh_cell(xt, h, w_ih, w_hh, b_ih, b_hh)
        states[i] = h
    return torch.stack(states, dim=1), h


# ---- attention --------------------------------------------------------------------------------------------------


def attention(x, p, heads: int, causal: bool, drop=None):
    """softmax(q k^T / sqrt(D / heads)) v per head, with projections x @ W + b; `drop` (a keep mask and a scale)
    applies dropout to the weights."""
    n, t, d = x.shape
    hd = d // heads

    def split(name):
        return (x @ p[f"{name}.W"] + p[f"{name}.b"]).reshape(n, t, heads, hd).transpose(1, 2)

    q, k, v = split("q"), split("k"), split("v")
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    if causal:
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(mask, -math.inf)
    weights = torch.softmax(scores, dim=-1)
    if drop is not None:
        keep, scale = drop
        weights = torch.where(keep(weights.shape), weights * scale, torch.zeros_like(weights))
    mixed = (weights @ v).transpose(1, 2).reshape(n, t, d)
    return mixed @ p["out.W"] + p["out.b"]


# ---- dropout's random numbers ------------------------------------------------------------------------------------


def uniform(shape: tuple[int, ...], key: int, salt: int) -> np.ndarray:
    """The language's dropout numbers (bmc.ops.random's definition, the "lowbias32" hash), written again here in
    64-bit NumPy arithmetic: for flat index i,
    h = i * 0x9E3779B1 + ((key mod 2^32) * 0x85EBCA77 + salt * 0xC2B2AE3D) mod 2^32, then xor-shift-multiply rounds;
    u = (h >> 8) / 2^24."""
    m = np.uint64(0xFFFFFFFF)
    i = np.arange(int(np.prod(shape)), dtype=np.uint64)
    base = (np.uint64(key % 2**32) * np.uint64(0x85EBCA77) + np.uint64(salt) * np.uint64(0xC2B2AE3D)) & m
    h = (i * np.uint64(0x9E3779B1) + base) & m
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x7FEB352D)) & m
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x846CA68B)) & m
    h ^= h >> np.uint64(16)
    return ((h >> np.uint64(8)).astype(np.float64) / 2**24).reshape(shape)
