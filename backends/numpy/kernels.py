"""NumPy implementations of the composite ops that need more than one expression.

These are real, tested functions; the code generator copies the source of the ones a model uses into the
generated module, so that module needs nothing but NumPy.
"""

import numpy as np


def _sigmoid(x):
    # 1 / (1 + exp(-x)) without overflow: exp(-log(1 + exp(-x)))
    return np.exp(-np.logaddexp(0, -x))


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def _log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _one_hot(labels, depth, dtype):
    return (labels[..., None] == np.arange(depth)).astype(dtype)


def _gelu(x):
    # tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    return 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


def _gelu_grad(x, g):
    t = np.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))
    dinner = 0.7978845608028654 * (1 + 3 * 0.044715 * x * x)
    return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dinner)


def _cross_entropy(logits, target):
    # mean over every position of -log softmax(logits)[target]; log-sum-exp keeps it finite
    logp = _log_softmax(logits, -1)
    if target.dtype.kind in "iu":
        picked = np.take_along_axis(logp, target[..., None], axis=-1)
        return -picked.sum(dtype=logits.dtype) / target.size
    return -(target * logp).sum(dtype=logits.dtype) / target[..., 0].size


def _binary_cross_entropy(logits, target):
    # mean of max(z, 0) - z y + log(1 + exp(-|z|)): stable for any logit
    y = target.astype(logits.dtype)
    per = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
    return per.sum(dtype=logits.dtype) / logits.size


def _mse(pred, target):
    d = pred - target
    return (d * d).sum(dtype=pred.dtype) / pred.size
