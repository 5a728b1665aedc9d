"""Model `logistic`, compiled by bmc 0.1.0 for NumPy (f32).

Generated code: do not edit; rebuild with `bmc build SOURCE --target numpy`. It needs nothing but NumPy.
Comments of the form `# file.bm:LINE: text` point back to the `.bm` statement each group of lines came from.

    params = load_params()                 # the parameters saved beside this file (params.npz)
    outputs = forward(params, x)
    state = load_state()                   # optimizer state (state.npz)
    metrics = train_step(params, state, batch, lr)   # updates params and state in place
"""

import os

import numpy as np

MODEL = 'logistic'
SOURCE = 'examples/logistic_regression.bm'
SOURCE_SHA256 = '6ee07804a5470c409cac626dfee2a960f2ee5bc8234de71bf71ffdd7212fa1b4'
BMC_VERSION = '0.1.0'
DTYPE = np.float32

# name -> (dtype, shape); strings in a shape are symbolic dims bound at call time
INPUTS = {'x': ('f32', ['N', 30])}
OUTPUTS = {'probability': ('f32', ['N', 1])}
PARAMS = {'z.W': ('f32', [30, 1]), 'z.b': ('f32', [1])}
STATE = {'sgd.velocity/z.W': ('f32', [30, 1]), 'sgd.velocity/z.b': ('f32', [1])}
HYPER = {'lr': ('f32', [])}
_NUMPY_DTYPES = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}


class InputError(ValueError):
    """The inputs of a call do not fit the model: a class index or token id out of range, a sequence longer than
    the model takes. The message names the value and, where it can, the .bm line."""


# ---- op implementations used below ---------------------------------------------------------------------------------

def _sigmoid(x):
    # 1 / (1 + exp(-x)), four ufuncs in place, where every x is at least -80 (-11 in float16), so exp(-x) stays finite
    # and normal (a nan is not >= -80); else 1 / (1 + exp(-x)) for x >= 0 and exp(x) / (1 + exp(x)) below: no overflow
    # for any x, and a very negative x keeps its relative precision ((1 + tanh(x / 2)) / 2 cancelled to 3% in float32
    # at x = -13.75)
    if np.ndim(x) and x.size and x.min() >= (-80 if x.dtype.itemsize >= 4 else -11):
        e = np.negative(x)
        np.exp(e, out=e)
        e += 1
        return np.reciprocal(e, out=e)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)


def _check_ids(ids, count, what):
    # an id outside [0, count) would read another row (negative ids wrap around in NumPy): refuse it
    if ids.size and (ids.min() < 0 or ids.max() >= count):
        bad = ids[(ids < 0) | (ids >= count)].flat[0]
        raise InputError(f"{what} {bad} is out of range: expected 0 to {count - 1}")


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


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


def _binary_cross_entropy(logits, target):
    # mean of max(z, 0) - z y + log(1 + exp(-|z|)): stable for any logit
    y = target.astype(logits.dtype)
    per = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
    return per.sum(dtype=logits.dtype) / logits.size



# ---- inference -----------------------------------------------------------------------------------------------------

def forward(params, x):
    """Inference: probability of model logistic."""
    z_W = params['z.W']
    z_b = params['z.b']
    # examples/logistic_regression.bm:7: z = dense(x, 1, init = zeros)
    z = x @ z_W + z_b
    # examples/logistic_regression.bm:8: output probability = sigmoid(z)
    probability = _sigmoid(z)
    return {'probability': probability}


# ---- training: forward, backward and optimizer update in one graph --------------------------------------------------

def train_step(params, state, batch, lr):
    """One training step on a batch: forward, backward, optimizer update.

    Updates `params` and `state` in place; returns the loss and the model's outputs."""
    z_W = params['z.W']
    z_b = params['z.b']
    sgd_velocity_z_W = state['sgd.velocity/z.W']
    sgd_velocity_z_b = state['sgd.velocity/z.b']
    x = batch['x']
    y = batch['y']
    N = x.shape[0]
    # examples/logistic_regression.bm:7: z = dense(x, 1, init = zeros)
    z = x @ z_W + z_b
    # examples/logistic_regression.bm:8: output probability = sigmoid(z)
    probability = _sigmoid(z)
    # examples/logistic_regression.bm:9: loss = binary_cross_entropy(z, reshape(y, [N, 1]))
    t0 = y.reshape((N, 1))
    t1 = t0.astype(np.float32)
    loss = _binary_cross_entropy(z, t1)
    t3 = np.float32(N)
    t4 = 1.0 / t3
    t5 = np.abs(z)
    t6 = np.negative(t5, out=t5)
    t7 = _sigmoid(t6)
    t9 = z > 0.0
    t10 = np.subtract(1.0, t1, out=z)
    t11 = np.subtract(t10, t7, out=t10)
    t12 = np.subtract(t7, t1, out=t7)
    t13 = np.where(t9, t11, t12)
    t14 = np.multiply(t13, t4, out=t13)
    # examples/logistic_regression.bm:7: z = dense(x, 1, init = zeros)
    z_W_grad = x.T @ t14
    z_b_grad = t14.sum(axis=0)
    # examples/logistic_regression.bm:14: optimizer = sgd(lr = 0.1, momentum = 0.9)
    t16 = np.multiply(0.9, sgd_velocity_z_W, out=sgd_velocity_z_W)
    z_W_velocity = np.add(t16, z_W_grad, out=t16)
    t17 = np.multiply(lr, z_W_velocity, out=z_W_grad)
    z_W_new = np.subtract(z_W, t17, out=z_W)
    t18 = np.multiply(0.9, sgd_velocity_z_b, out=sgd_velocity_z_b)
    z_b_velocity = np.add(t18, z_b_grad, out=t18)
    t19 = np.multiply(lr, z_b_velocity, out=z_b_grad)
    z_b_new = np.subtract(z_b, t19, out=z_b)
    params['z.W'] = z_W_new
    params['z.b'] = z_b_new
    state['sgd.velocity/z.W'] = z_W_velocity
    state['sgd.velocity/z.b'] = z_b_velocity
    return {'loss': loss, 'probability': probability}


# ---- the train step in two halves: gradients, then the update (data-parallel training combines them between) ------

def gradients(params, batch):
    """The first half of train_step: the loss, the model's outputs and the gradient of the batch's mean loss
    for every trainable parameter, as 'grad/<name>'. Updates the running statistics in `params` in place;
    the trainable parameters are only read."""
    z_W = params['z.W']
    z_b = params['z.b']
    x = batch['x']
    y = batch['y']
    N = x.shape[0]
    # examples/logistic_regression.bm:7: z = dense(x, 1, init = zeros)
    z = x @ z_W + z_b
    # examples/logistic_regression.bm:8: output probability = sigmoid(z)
    probability = _sigmoid(z)
    # examples/logistic_regression.bm:9: loss = binary_cross_entropy(z, reshape(y, [N, 1]))
    t0 = y.reshape((N, 1))
    t1 = t0.astype(np.float32)
    loss = _binary_cross_entropy(z, t1)
    t3 = np.float32(N)
    t4 = 1.0 / t3
    t5 = np.abs(z)
    t6 = np.negative(t5, out=t5)
    t7 = _sigmoid(t6)
    t9 = z > 0.0
    t10 = np.subtract(1.0, t1, out=z)
    t11 = np.subtract(t10, t7, out=t10)
    t12 = np.subtract(t7, t1, out=t7)
    t13 = np.where(t9, t11, t12)
    t14 = np.multiply(t13, t4, out=t13)
    # examples/logistic_regression.bm:7: z = dense(x, 1, init = zeros)
    z_W_grad = x.T @ t14
    z_b_grad = t14.sum(axis=0)
    return {'loss': loss, 'probability': probability, 'grad/z.W': z_W_grad, 'grad/z.b': z_b_grad}


def apply(params, state, grads, lr):
    """The second half of train_step: the optimizer update from `grads` (what gradients() returns, or the
    gradients of several workers combined). Updates `params` and `state` in place."""
    z_W = params['z.W']
    z_b = params['z.b']
    sgd_velocity_z_W = state['sgd.velocity/z.W']
    sgd_velocity_z_b = state['sgd.velocity/z.b']
    grad_z_W = grads['grad/z.W']
    grad_z_b = grads['grad/z.b']
    # examples/logistic_regression.bm:14: optimizer = sgd(lr = 0.1, momentum = 0.9)
    t1 = np.multiply(0.9, sgd_velocity_z_W, out=sgd_velocity_z_W)
    z_W_velocity = np.add(t1, grad_z_W, out=t1)
    t2 = lr * z_W_velocity
    z_W_new = np.subtract(z_W, t2, out=z_W)
    t3 = np.multiply(0.9, sgd_velocity_z_b, out=sgd_velocity_z_b)
    z_b_velocity = np.add(t3, grad_z_b, out=t3)
    t4 = lr * z_b_velocity
    z_b_new = np.subtract(z_b, t4, out=z_b)
    params['z.W'] = z_W_new
    params['z.b'] = z_b_new
    state['sgd.velocity/z.W'] = z_W_velocity
    state['sgd.velocity/z.b'] = z_b_velocity
    return {}


def evaluate(params, batch):
    """The loss and outputs on a labelled batch, in inference mode (no dropout, running statistics)."""
    z_W = params['z.W']
    z_b = params['z.b']
    x = batch['x']
    y = batch['y']
    N = x.shape[0]
    # examples/logistic_regression.bm:7: z = dense(x, 1, init = zeros)
    z = x @ z_W + z_b
    # examples/logistic_regression.bm:8: output probability = sigmoid(z)
    probability = _sigmoid(z)
    # examples/logistic_regression.bm:9: loss = binary_cross_entropy(z, reshape(y, [N, 1]))
    t0 = y.reshape((N, 1))
    t1 = t0.astype(np.float32)
    loss = _binary_cross_entropy(z, t1)
    return {'loss': loss, 'probability': probability}


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
