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
STATE = {'adam.t': ('f32', []), 'adam.m/h.W': ('f32', [784, 128]), 'adam.v/h.W': ('f32', [784, 128]),
         'adam.m/h.b': ('f32', [128]), 'adam.v/h.b': ('f32', [128]), 'adam.m/logits.W': ('f32', [128, 10]),
         'adam.v/logits.W': ('f32', [128, 10]), 'adam.m/logits.b': ('f32', [10]), 'adam.v/logits.b': ('f32', [10])}
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
    # a zero row for a label outside [0, depth), as comparing it with every class would give; the result is the
    # only array of that size (a comparison with np.arange(depth) made two more, one of int64)
    out = np.zeros((*labels.shape, depth), dtype)
    ids = labels.reshape(-1)
    rows = np.flatnonzero((ids >= 0) & (ids < depth))
    out.reshape(-1, depth)[rows, ids[rows]] = 1
    return out


def _masked(x, keep):
    # np.where(keep, x, 0) of a float x as one multiply (np.where's select is about ten times slower); the product is
    # nan where x is inf or nan and keep is false, and then np.where gives the result after all (a zero is -0.0 where
    # x is negative and keep false: equal to np.where's 0.0)
    with np.errstate(invalid="ignore"):
        out = x * keep
    if out.size and np.isnan(out.max()):
        return np.where(keep, x, out.dtype.type(0))
    return out



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
    t10 = _masked(t7, t9)
    h_W_grad = image.T @ t10
    h_b_grad = t10.sum(axis=0)
    # examples/mlp.bm:16: optimizer = adam(lr = 1e-3)
    t11 = adam_t + 1.0
    t12 = np.float64(t11)
    t15 = 0.9 ** t12
    t16 = 1.0 - t15
    t18 = 0.999 ** t12
    t19 = 1.0 - t18
    t20 = np.float64(lr)
    t21 = t20 / t16
    t23 = np.multiply(0.9, adam_m_h_W, out=adam_m_h_W)
    t25 = 0.1 * h_W_grad
    h_W_m = np.add(t23, t25, out=t23)
    t27 = np.multiply(0.999, adam_v_h_W, out=adam_v_h_W)
    t29 = np.multiply(h_W_grad, h_W_grad, out=h_W_grad)
    t30 = np.multiply(0.001, t29, out=t29)
    h_W_v = np.add(t27, t30, out=t27)
    t31 = np.float32(t19)
    t32 = np.divide(h_W_v, t31, out=t30)
    t33 = np.sqrt(t32, out=t32)
    t35 = np.add(t33, 1e-07, out=t33)
    t36 = np.float32(t21)
    t37 = np.divide(h_W_m, t35, out=t35)
    t38 = np.multiply(t36, t37, out=t37)
    h_W_new = np.subtract(h_W, t38, out=h_W)
    t39 = np.multiply(0.9, adam_m_h_b, out=adam_m_h_b)
    t40 = 0.1 * h_b_grad
    h_b_m = np.add(t39, t40, out=t39)
    t41 = np.multiply(0.999, adam_v_h_b, out=adam_v_h_b)
    t42 = np.multiply(h_b_grad, h_b_grad, out=h_b_grad)
    t43 = np.multiply(0.001, t42, out=t42)
    h_b_v = np.add(t41, t43, out=t41)
    t44 = np.divide(h_b_v, t31, out=t43)
    t45 = np.sqrt(t44, out=t44)
    t46 = np.add(t45, 1e-07, out=t45)
    t47 = np.divide(h_b_m, t46, out=t46)
    t48 = np.multiply(t36, t47, out=t47)
    h_b_new = np.subtract(h_b, t48, out=h_b)
    t49 = np.multiply(0.9, adam_m_logits_W, out=adam_m_logits_W)
    t50 = 0.1 * logits_W_grad
    logits_W_m = np.add(t49, t50, out=t49)
    t51 = np.multiply(0.999, adam_v_logits_W, out=adam_v_logits_W)
    t52 = np.multiply(logits_W_grad, logits_W_grad, out=logits_W_grad)
    t53 = np.multiply(0.001, t52, out=t52)
    logits_W_v = np.add(t51, t53, out=t51)
    t54 = np.divide(logits_W_v, t31, out=t53)
    t55 = np.sqrt(t54, out=t54)
    t56 = np.add(t55, 1e-07, out=t55)
    t57 = np.divide(logits_W_m, t56, out=t56)
    t58 = np.multiply(t36, t57, out=t57)
    logits_W_new = np.subtract(logits_W, t58, out=logits_W)
    t59 = np.multiply(0.9, adam_m_logits_b, out=adam_m_logits_b)
    t60 = 0.1 * logits_b_grad
    logits_b_m = np.add(t59, t60, out=t59)
    t61 = np.multiply(0.999, adam_v_logits_b, out=adam_v_logits_b)
    t62 = np.multiply(logits_b_grad, logits_b_grad, out=logits_b_grad)
    t63 = np.multiply(0.001, t62, out=t62)
    logits_b_v = np.add(t61, t63, out=t61)
    t64 = np.divide(logits_b_v, t31, out=t63)
    t65 = np.sqrt(t64, out=t64)
    t66 = np.add(t65, 1e-07, out=t65)
    t67 = np.divide(logits_b_m, t66, out=t66)
    t68 = np.multiply(t36, t67, out=t67)
    logits_b_new = np.subtract(logits_b, t68, out=logits_b)
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


# ---- the train step in two halves: gradients, then the update (data-parallel training combines them between) ------

def gradients(params, batch):
    """The first half of train_step: the loss, the model's outputs and the gradient of the batch's mean loss
    for every trainable parameter, as 'grad/<name>'. Updates the running statistics in `params` in place;
    the trainable parameters are only read."""
    h_W = params['h.W']
    h_b = params['h.b']
    logits_W = params['logits.W']
    logits_b = params['logits.b']
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
    t10 = _masked(t7, t9)
    h_W_grad = image.T @ t10
    h_b_grad = t10.sum(axis=0)
    return {'loss': loss, 'probs': probs, 'grad/h.W': h_W_grad, 'grad/h.b': h_b_grad, 'grad/logits.W': logits_W_grad,
            'grad/logits.b': logits_b_grad}


def apply(params, state, grads, lr):
    """The second half of train_step: the optimizer update from `grads` (what gradients() returns, or the
    gradients of several workers combined). Updates `params` and `state` in place."""
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
    grad_h_W = grads['grad/h.W']
    grad_h_b = grads['grad/h.b']
    grad_logits_W = grads['grad/logits.W']
    grad_logits_b = grads['grad/logits.b']
    # examples/mlp.bm:16: optimizer = adam(lr = 1e-3)
    t1 = adam_t + 1.0
    t2 = np.float64(t1)
    t5 = 0.9 ** t2
    t6 = 1.0 - t5
    t8 = 0.999 ** t2
    t9 = 1.0 - t8
    t10 = np.float64(lr)
    t11 = t10 / t6
    t13 = np.multiply(0.9, adam_m_h_W, out=adam_m_h_W)
    t15 = 0.1 * grad_h_W
    h_W_m = np.add(t13, t15, out=t13)
    t17 = np.multiply(0.999, adam_v_h_W, out=adam_v_h_W)
    t19 = np.multiply(grad_h_W, grad_h_W, out=t15)
    t20 = np.multiply(0.001, t19, out=t19)
    h_W_v = np.add(t17, t20, out=t17)
    t21 = np.float32(t9)
    t22 = np.divide(h_W_v, t21, out=t20)
    t23 = np.sqrt(t22, out=t22)
    t25 = np.add(t23, 1e-07, out=t23)
    t26 = np.float32(t11)
    t27 = np.divide(h_W_m, t25, out=t25)
    t28 = np.multiply(t26, t27, out=t27)
    h_W_new = np.subtract(h_W, t28, out=h_W)
    t29 = np.multiply(0.9, adam_m_h_b, out=adam_m_h_b)
    t30 = 0.1 * grad_h_b
    h_b_m = np.add(t29, t30, out=t29)
    t31 = np.multiply(0.999, adam_v_h_b, out=adam_v_h_b)
    t32 = np.multiply(grad_h_b, grad_h_b, out=t30)
    t33 = np.multiply(0.001, t32, out=t32)
    h_b_v = np.add(t31, t33, out=t31)
    t34 = np.divide(h_b_v, t21, out=t33)
    t35 = np.sqrt(t34, out=t34)
    t36 = np.add(t35, 1e-07, out=t35)
    t37 = np.divide(h_b_m, t36, out=t36)
    t38 = np.multiply(t26, t37, out=t37)
    h_b_new = np.subtract(h_b, t38, out=h_b)
    t39 = np.multiply(0.9, adam_m_logits_W, out=adam_m_logits_W)
    t40 = 0.1 * grad_logits_W
    logits_W_m = np.add(t39, t40, out=t39)
    t41 = np.multiply(0.999, adam_v_logits_W, out=adam_v_logits_W)
    t42 = np.multiply(grad_logits_W, grad_logits_W, out=t40)
    t43 = np.multiply(0.001, t42, out=t42)
    logits_W_v = np.add(t41, t43, out=t41)
    t44 = np.divide(logits_W_v, t21, out=t43)
    t45 = np.sqrt(t44, out=t44)
    t46 = np.add(t45, 1e-07, out=t45)
    t47 = np.divide(logits_W_m, t46, out=t46)
    t48 = np.multiply(t26, t47, out=t47)
    logits_W_new = np.subtract(logits_W, t48, out=logits_W)
    t49 = np.multiply(0.9, adam_m_logits_b, out=adam_m_logits_b)
    t50 = 0.1 * grad_logits_b
    logits_b_m = np.add(t49, t50, out=t49)
    t51 = np.multiply(0.999, adam_v_logits_b, out=adam_v_logits_b)
    t52 = np.multiply(grad_logits_b, grad_logits_b, out=t50)
    t53 = np.multiply(0.001, t52, out=t52)
    logits_b_v = np.add(t51, t53, out=t51)
    t54 = np.divide(logits_b_v, t21, out=t53)
    t55 = np.sqrt(t54, out=t54)
    t56 = np.add(t55, 1e-07, out=t55)
    t57 = np.divide(logits_b_m, t56, out=t56)
    t58 = np.multiply(t26, t57, out=t57)
    logits_b_new = np.subtract(logits_b, t58, out=logits_b)
    params['h.W'] = h_W_new
    params['h.b'] = h_b_new
    params['logits.W'] = logits_W_new
    params['logits.b'] = logits_b_new
    state['adam.t'] = t1
    state['adam.m/h.W'] = h_W_m
    state['adam.v/h.W'] = h_W_v
    state['adam.m/h.b'] = h_b_m
    state['adam.v/h.b'] = h_b_v
    state['adam.m/logits.W'] = logits_W_m
    state['adam.v/logits.W'] = logits_W_v
    state['adam.m/logits.b'] = logits_b_m
    state['adam.v/logits.b'] = logits_b_v
    return {}


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
