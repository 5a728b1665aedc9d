"""Model `mlp`, compiled by bmc 0.1.0 for NumPy (f32).

Generated code: do not edit; rebuild with `bmc build SOURCE --target numpy`. It needs nothing but NumPy.
Comments of the form `# file.bm:LINE: text` point back to the `.bm` statement each group of lines came from.

    params = load_params()                 # the parameters saved beside this file (params.npz)
    outputs = forward(params, image)
    state = load_state()                   # optimizer state (state.npz)
    metrics = train_step(params, state, batch, lr)   # updates params and state in place
"""

import os

import numpy as np

MODEL = 'mlp'
SOURCE = 'examples/mlp.bm'
SOURCE_SHA256 = '659fc17988a22a51ccb0c6249ea07ae7e75280689b508f8b53838f386fcf0911'
BMC_VERSION = '0.1.0'
DTYPE = np.float32

# name -> (dtype, shape); strings in a shape are symbolic dims bound at call time
INPUTS = {'image': ('f32', ['N', 784])}
OUTPUTS = {'probs': ('f32', ['N', 10])}
PARAMS = {'h.W': ('f32', [784, 128]), 'h.b': ('f32', [128]), 'logits.W': ('f32', [128, 10]), 'logits.b': ('f32', [10])}
STATE = {'adam.t': ('f32', []), 'adam.m/h.W': ('f32', [784, 128]), 'adam.v/h.W': ('f32', [784, 128]), 'adam.m/h.b': ('f32', [128]), 'adam.v/h.b': ('f32', [128]), 'adam.m/logits.W': ('f32', [128, 10]), 'adam.v/logits.W': ('f32', [128, 10]), 'adam.m/logits.b': ('f32', [10]), 'adam.v/logits.b': ('f32', [10])}
HYPER = {'lr': ('f32', [])}
_NUMPY_DTYPES = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}


class InputError(ValueError):
    """The inputs of a call do not fit the model: a class index or token id out of range, a sequence longer than
    the model takes. The message names the value and, where it can, the .bm line."""


# ---- op implementations used below ---------------------------------------------------------------------------------

def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def _check_ids(ids, count, what):
    # an id outside [0, count) would read another row (negative ids wrap around in NumPy): refuse it
    if ids.size and (ids.min() < 0 or ids.max() >= count):
        bad = ids[(ids < 0) | (ids >= count)].flat[0]
        raise InputError(f"{what} {bad} is out of range: expected 0 to {count - 1}")


def _log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _cross_entropy(logits, target):
    # mean over every position of -log softmax(logits)[target]; log-sum-exp keeps it finite
    logp = _log_softmax(logits, -1)
    if target.dtype.kind in "iu":
        _check_ids(target, logits.shape[-1], "class index")
        picked = np.take_along_axis(logp, target[..., None], axis=-1)
        return -picked.sum(dtype=logits.dtype) / target.size
    return -(target * logp).sum(dtype=logits.dtype) / target[..., 0].size


def _one_hot(labels, depth, dtype):
    return (labels[..., None] == np.arange(depth)).astype(dtype)



# ---- inference -----------------------------------------------------------------------------------------------------

def forward(params, image):
    """Inference: probs of model mlp."""
    h_W = params['h.W']
    h_b = params['h.b']
    logits_W = params['logits.W']
    logits_b = params['logits.b']
    # examples/mlp.bm:7: h      = relu(dense(image, hidden))
    t0 = image @ h_W + h_b
    h = np.maximum(t0, 0, out=t0)
    # examples/mlp.bm:8: logits = dense(h, classes)
    logits = h @ logits_W + logits_b
    # examples/mlp.bm:10: output probs = softmax(logits)
    probs = _softmax(logits, axis=-1)
    return {'probs': probs}


# ---- training: forward, backward and optimizer update in one graph --------------------------------------------------

def train_step(params, state, batch, lr):
    """One training step on a batch: forward, backward, optimizer update.

    Updates `params` and `state` in place; returns the loss and the model's outputs."""
    h_W = params['h.W']
    h_b = params['h.b']
    logits_W = params['logits.W']
    logits_b = params['logits.b']
    adam_t = state['adam.t']
    adam_m_h_W = state['adam.m/h.W']
    adam_v_h_W = state['adam.v/h.W']
    adam_m_h_b = state['adam.m/h.b']
    adam_v_h_b = state['adam.v/h.b']
    adam_m_logits_W = state['adam.m/logits.W']
    adam_v_logits_W = state['adam.v/logits.W']
    adam_m_logits_b = state['adam.m/logits.b']
    adam_v_logits_b = state['adam.v/logits.b']
    image = batch['image']
    label = batch['label']
    N = image.shape[0]
    # examples/mlp.bm:7: h      = relu(dense(image, hidden))
    t0 = image @ h_W + h_b
    h = np.maximum(t0, 0, out=t0)
    # examples/mlp.bm:8: logits = dense(h, classes)
    logits = h @ logits_W + logits_b
    # examples/mlp.bm:10: output probs = softmax(logits)
    probs = _softmax(logits, axis=-1)
    # examples/mlp.bm:11: loss         = cross_entropy(logits, label)
    loss = _cross_entropy(logits, label)
    t2 = _one_hot(label, 10, np.float32)
    t3 = np.float32(N)
    t4 = 1.0 / t3
    t5 = np.subtract(probs, t2, out=t2)
    t6 = np.multiply(t5, t4, out=t5)
    # examples/mlp.bm:8: logits = dense(h, classes)
    t7 = t6 @ logits_W.T
    logits_W_grad = h.T @ t6
    logits_b_grad = t6.sum(axis=0)
    # examples/mlp.bm:7: h      = relu(dense(image, hidden))
    t9 = h > 0.0
    t10 = t7 * t9
    h_W_grad = image.T @ t10
    h_b_grad = t10.sum(axis=0)
    # examples/mlp.bm:16: optimizer = adam(lr = 1e-3)
    t11 = adam_t + 1.0
    t13 = 0.9 ** t11
    t14 = 1.0 - t13
    t16 = 0.999 ** t11
    t17 = 1.0 - t16
    t18 = lr / t14
    t19 = np.multiply(0.9, adam_m_h_W, out=adam_m_h_W)
    t21 = 0.1 * h_W_grad
    h_W_m = np.add(t19, t21, out=t19)
    t22 = np.multiply(0.999, adam_v_h_W, out=adam_v_h_W)
    t24 = np.multiply(h_W_grad, h_W_grad, out=h_W_grad)
    t25 = np.multiply(0.001, t24, out=t24)
    h_W_v = np.add(t22, t25, out=t22)
    t26 = np.divide(h_W_v, t17, out=t25)
    t27 = np.sqrt(t26, out=t26)
    t29 = np.add(t27, 1e-07, out=t27)
    t30 = np.divide(h_W_m, t29, out=t29)
    t31 = np.multiply(t18, t30, out=t30)
    h_W_new = np.subtract(h_W, t31, out=h_W)
    t32 = np.multiply(0.9, adam_m_h_b, out=adam_m_h_b)
    t33 = 0.1 * h_b_grad
    h_b_m = np.add(t32, t33, out=t32)
    t34 = np.multiply(0.999, adam_v_h_b, out=adam_v_h_b)
    t35 = np.multiply(h_b_grad, h_b_grad, out=h_b_grad)
    t36 = np.multiply(0.001, t35, out=t35)
    h_b_v = np.add(t34, t36, out=t34)
    t37 = np.divide(h_b_v, t17, out=t36)
    t38 = np.sqrt(t37, out=t37)
    t39 = np.add(t38, 1e-07, out=t38)
    t40 = np.divide(h_b_m, t39, out=t39)
    t41 = np.multiply(t18, t40, out=t40)
    h_b_new = np.subtract(h_b, t41, out=h_b)
    t42 = np.multiply(0.9, adam_m_logits_W, out=adam_m_logits_W)
    t43 = 0.1 * logits_W_grad
    logits_W_m = np.add(t42, t43, out=t42)
    t44 = np.multiply(0.999, adam_v_logits_W, out=adam_v_logits_W)
    t45 = np.multiply(logits_W_grad, logits_W_grad, out=logits_W_grad)
    t46 = np.multiply(0.001, t45, out=t45)
    logits_W_v = np.add(t44, t46, out=t44)
    t47 = np.divide(logits_W_v, t17, out=t46)
    t48 = np.sqrt(t47, out=t47)
    t49 = np.add(t48, 1e-07, out=t48)
    t50 = np.divide(logits_W_m, t49, out=t49)
    t51 = np.multiply(t18, t50, out=t50)
    logits_W_new = np.subtract(logits_W, t51, out=logits_W)
    t52 = np.multiply(0.9, adam_m_logits_b, out=adam_m_logits_b)
    t53 = 0.1 * logits_b_grad
    logits_b_m = np.add(t52, t53, out=t52)
    t54 = np.multiply(0.999, adam_v_logits_b, out=adam_v_logits_b)
    t55 = np.multiply(logits_b_grad, logits_b_grad, out=logits_b_grad)
    t56 = np.multiply(0.001, t55, out=t55)
    logits_b_v = np.add(t54, t56, out=t54)
    t57 = np.divide(logits_b_v, t17, out=t56)
    t58 = np.sqrt(t57, out=t57)
    t59 = np.add(t58, 1e-07, out=t58)
    t60 = np.divide(logits_b_m, t59, out=t59)
    t61 = np.multiply(t18, t60, out=t60)
    logits_b_new = np.subtract(logits_b, t61, out=logits_b)
    params['h.W'] = h_W_new
    params['h.b'] = h_b_new
    params['logits.W'] = logits_W_new
    params['logits.b'] = logits_b_new
    state['adam.t'] = t11
    state['adam.m/h.W'] = h_W_m
    state['adam.v/h.W'] = h_W_v
    state['adam.m/h.b'] = h_b_m
    state['adam.v/h.b'] = h_b_v
    state['adam.m/logits.W'] = logits_W_m
    state['adam.v/logits.W'] = logits_W_v
    state['adam.m/logits.b'] = logits_b_m
    state['adam.v/logits.b'] = logits_b_v
    return {'loss': loss, 'probs': probs}


def evaluate(params, batch):
    """The loss and outputs on a labelled batch, in inference mode (no dropout, running statistics)."""
    h_W = params['h.W']
    h_b = params['h.b']
    logits_W = params['logits.W']
    logits_b = params['logits.b']
    image = batch['image']
    label = batch['label']
    # examples/mlp.bm:7: h      = relu(dense(image, hidden))
    t0 = image @ h_W + h_b
    h = np.maximum(t0, 0, out=t0)
    # examples/mlp.bm:8: logits = dense(h, classes)
    logits = h @ logits_W + logits_b
    # examples/mlp.bm:10: output probs = softmax(logits)
    probs = _softmax(logits, axis=-1)
    # examples/mlp.bm:11: loss         = cross_entropy(logits, label)
    loss = _cross_entropy(logits, label)
    return {'loss': loss, 'probs': probs}


def load_params(path=None):
    """The parameters stored beside this module (or at `path`), as a dict of arrays."""
    path = path or os.path.join(os.path.dirname(os.path.abspath(__file__)), "params.npz")
    with np.load(path) as f:
        return {name: f[name].astype(_NUMPY_DTYPES[PARAMS[name][0]]) for name in PARAMS}


def load_state(path=None):
    """The optimizer state stored beside this module (or at `path`), as a dict of arrays."""
    path = path or os.path.join(os.path.dirname(os.path.abspath(__file__)), "state.npz")
    with np.load(path) as f:
        return {name: f[name].astype(_NUMPY_DTYPES[STATE[name][0]]) for name in STATE}
