"""Model `residual_mlp`, compiled by bmc 0.1.0 for NumPy (f32).

Generated code: do not edit; rebuild with `bmc build SOURCE --target numpy`. It needs nothing but NumPy.
Comments of the form `# file.bm:LINE: text` point back to the `.bm` statement each group of lines came from.

    params = load_params()                 # the parameters saved beside this file (params.npz)
    outputs = forward(params, image)
    state = load_state()                   # optimizer state (state.npz)
    metrics = train_step(params, state, batch, lr)   # updates params and state in place
"""

import os

import numpy as np

MODEL = 'residual_mlp'
SOURCE = 'examples/residual_mlp.bm'
SOURCE_SHA256 = '1500f81ff8526c26b025eb2a901e2d7fbef16839ad332848b71aca422e49b36a'
BMC_VERSION = '0.1.0'
DTYPE = np.float32

# name -> (dtype, shape); strings in a shape are symbolic dims bound at call time
INPUTS = {'image': ('f32', ['N', 64])}
OUTPUTS = {'probs': ('f32', ['N', 10])}
PARAMS = {'x.W': ('f32', [64, 64]), 'x.b': ('f32', [64]), 'block1.W1': ('f32', [64, 128]), 'block1.b1': ('f32', [128]),
          'block1.W2': ('f32', [128, 64]), 'block1.b2': ('f32', [64]), 'block2.W1': ('f32', [64, 128]),
          'block2.b1': ('f32', [128]), 'block2.W2': ('f32', [128, 64]), 'block2.b2': ('f32', [64]),
          'W_out': ('f32', [64, 10]), 'b_out': ('f32', [10])}
STATE = {'adam.t': ('f32', []), 'adam.m/x.W': ('f32', [64, 64]), 'adam.v/x.W': ('f32', [64, 64]),
         'adam.m/x.b': ('f32', [64]), 'adam.v/x.b': ('f32', [64]), 'adam.m/block1.W1': ('f32', [64, 128]),
         'adam.v/block1.W1': ('f32', [64, 128]), 'adam.m/block1.b1': ('f32', [128]), 'adam.v/block1.b1': ('f32', [128]),
         'adam.m/block1.W2': ('f32', [128, 64]), 'adam.v/block1.W2': ('f32', [128, 64]),
         'adam.m/block1.b2': ('f32', [64]), 'adam.v/block1.b2': ('f32', [64]), 'adam.m/block2.W1': ('f32', [64, 128]),
         'adam.v/block2.W1': ('f32', [64, 128]), 'adam.m/block2.b1': ('f32', [128]), 'adam.v/block2.b1': ('f32', [128]),
         'adam.m/block2.W2': ('f32', [128, 64]), 'adam.v/block2.W2': ('f32', [128, 64]),
         'adam.m/block2.b2': ('f32', [64]), 'adam.v/block2.b2': ('f32', [64]), 'adam.m/W_out': ('f32', [64, 10]),
         'adam.v/W_out': ('f32', [64, 10]), 'adam.m/b_out': ('f32', [10]), 'adam.v/b_out': ('f32', [10])}
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
    """Inference: probs of model residual_mlp."""
    x_W = params['x.W']
    x_b = params['x.b']
    block1_W1 = params['block1.W1']
    block1_b1 = params['block1.b1']
    block1_W2 = params['block1.W2']
    block1_b2 = params['block1.b2']
    block2_W1 = params['block2.W1']
    block2_b1 = params['block2.b1']
    block2_W2 = params['block2.W2']
    block2_b2 = params['block2.b2']
    W_out = params['W_out']
    b_out = params['b_out']
    # examples/residual_mlp.bm:17: x      = relu(dense(image, width))
    t0 = image @ x_W + x_b
    x = np.maximum(t0, 0, out=t0)
    # examples/residual_mlp.bm:9: h = relu(x @ W1 + b1)
    t1 = x @ block1_W1
    t2 = np.add(t1, block1_b1, out=t1)
    block1_h = np.maximum(t2, 0, out=t2)
    # examples/residual_mlp.bm:10: return x + (h @ W2 + b2)
    t3 = block1_h @ block1_W2
    t4 = np.add(t3, block1_b2, out=t3)
    block1 = np.add(x, t4, out=x)
    # examples/residual_mlp.bm:9: h = relu(x @ W1 + b1)
    t5 = np.matmul(block1, block2_W1, out=block1_h)
    t6 = np.add(t5, block2_b1, out=t5)
    block2_h = np.maximum(t6, 0, out=t6)
    # examples/residual_mlp.bm:10: return x + (h @ W2 + b2)
    t7 = np.matmul(block2_h, block2_W2, out=t4)
    t8 = np.add(t7, block2_b2, out=t7)
    block2 = np.add(block1, t8, out=block1)
    # examples/residual_mlp.bm:23: logits = block2 @ W_out + b_out
    t9 = block2 @ W_out
    logits = np.add(t9, b_out, out=t9)
    # examples/residual_mlp.bm:25: output probs = softmax(logits)
    probs = _softmax(logits, axis=-1)
    return {'probs': probs}


# ---- training: forward, backward and optimizer update in one graph --------------------------------------------------

def train_step(params, state, batch, lr):
    """One training step on a batch: forward, backward, optimizer update.

    Updates `params` and `state` in place; returns the loss and the model's outputs."""
    x_W = params['x.W']
    x_b = params['x.b']
    block1_W1 = params['block1.W1']
    block1_b1 = params['block1.b1']
    block1_W2 = params['block1.W2']
    block1_b2 = params['block1.b2']
    block2_W1 = params['block2.W1']
    block2_b1 = params['block2.b1']
    block2_W2 = params['block2.W2']
    block2_b2 = params['block2.b2']
    W_out = params['W_out']
    b_out = params['b_out']
    adam_t = state['adam.t']
    adam_m_x_W = state['adam.m/x.W']
    adam_v_x_W = state['adam.v/x.W']
    adam_m_x_b = state['adam.m/x.b']
    adam_v_x_b = state['adam.v/x.b']
    adam_m_block1_W1 = state['adam.m/block1.W1']
    adam_v_block1_W1 = state['adam.v/block1.W1']
    adam_m_block1_b1 = state['adam.m/block1.b1']
    adam_v_block1_b1 = state['adam.v/block1.b1']
    adam_m_block1_W2 = state['adam.m/block1.W2']
    adam_v_block1_W2 = state['adam.v/block1.W2']
    adam_m_block1_b2 = state['adam.m/block1.b2']
    adam_v_block1_b2 = state['adam.v/block1.b2']
    adam_m_block2_W1 = state['adam.m/block2.W1']
    adam_v_block2_W1 = state['adam.v/block2.W1']
    adam_m_block2_b1 = state['adam.m/block2.b1']
    adam_v_block2_b1 = state['adam.v/block2.b1']
    adam_m_block2_W2 = state['adam.m/block2.W2']
    adam_v_block2_W2 = state['adam.v/block2.W2']
    adam_m_block2_b2 = state['adam.m/block2.b2']
    adam_v_block2_b2 = state['adam.v/block2.b2']
    adam_m_W_out = state['adam.m/W_out']
    adam_v_W_out = state['adam.v/W_out']
    adam_m_b_out = state['adam.m/b_out']
    adam_v_b_out = state['adam.v/b_out']
    image = batch['image']
    label = batch['label']
    N = image.shape[0]
    # examples/residual_mlp.bm:17: x      = relu(dense(image, width))
    t0 = image @ x_W + x_b
    x = np.maximum(t0, 0, out=t0)
    # examples/residual_mlp.bm:9: h = relu(x @ W1 + b1)
    t1 = x @ block1_W1
    t2 = np.add(t1, block1_b1, out=t1)
    block1_h = np.maximum(t2, 0, out=t2)
    # examples/residual_mlp.bm:10: return x + (h @ W2 + b2)
    t3 = block1_h @ block1_W2
    t4 = np.add(t3, block1_b2, out=t3)
    block1 = np.add(x, t4, out=t4)
    # examples/residual_mlp.bm:9: h = relu(x @ W1 + b1)
    t5 = block1 @ block2_W1
    t6 = np.add(t5, block2_b1, out=t5)
    block2_h = np.maximum(t6, 0, out=t6)
    # examples/residual_mlp.bm:10: return x + (h @ W2 + b2)
    t7 = block2_h @ block2_W2
    t8 = np.add(t7, block2_b2, out=t7)
    block2 = np.add(block1, t8, out=t8)
    # examples/residual_mlp.bm:23: logits = block2 @ W_out + b_out
    t9 = block2 @ W_out
    logits = np.add(t9, b_out, out=t9)
    # examples/residual_mlp.bm:25: output probs = softmax(logits)
    probs = _softmax(logits, axis=-1)
    # examples/residual_mlp.bm:26: loss = cross_entropy(logits, label) + 1e-4 * l2(W_out)   # an explicit L2 penalty on
    #   one weight
    t10 = _cross_entropy(logits, label)
    t11 = W_out * W_out
    t12 = t11.sum(axis=None)
    t14 = 0.0001 * t12
    loss = t10 + t14
    t17 = np.float32(9.999999747378752e-05).reshape((1, 1))
    t18 = np.broadcast_to(t17, (64, 10))
    t19 = np.multiply(t18, W_out, out=t11)
    t20 = np.add(t19, t19, out=t19)
    t21 = _one_hot(label, 10, np.float32)
    t22 = np.float32(N)
    t23 = 1.0 / t22
    t24 = np.subtract(probs, t21, out=t21)
    t25 = np.multiply(t24, t23, out=t24)
    # examples/residual_mlp.bm:23: logits = block2 @ W_out + b_out
    t26 = t25.sum(axis=0, keepdims=True)
    b_out_grad = t26.reshape((10,))
    t27 = t25 @ W_out.T
    t28 = block2.T @ t25
    W_out_grad = np.add(t20, t28, out=t20)
    # examples/residual_mlp.bm:10: return x + (h @ W2 + b2)
    t29 = t27.sum(axis=0, keepdims=True)
    block2_b2_grad = t29.reshape((64,))
    t30 = t27 @ block2_W2.T
    block2_W2_grad = block2_h.T @ t27
    # examples/residual_mlp.bm:9: h = relu(x @ W1 + b1)
    t32 = block2_h > 0.0
    t33 = _masked(t30, t32)
    t34 = t33.sum(axis=0, keepdims=True)
    block2_b1_grad = t34.reshape((128,))
    t35 = np.matmul(t33, block2_W1.T, out=block2)
    block2_W1_grad = block1.T @ t33
    t36 = np.add(t27, t35, out=t27)
    # examples/residual_mlp.bm:10: return x + (h @ W2 + b2)
    t37 = t36.sum(axis=0, keepdims=True)
    block1_b2_grad = t37.reshape((64,))
    t38 = np.matmul(t36, block1_W2.T, out=t33)
    block1_W2_grad = block1_h.T @ t36
    # examples/residual_mlp.bm:9: h = relu(x @ W1 + b1)
    t39 = block1_h > 0.0
    t40 = _masked(t38, t39)
    t41 = t40.sum(axis=0, keepdims=True)
    block1_b1_grad = t41.reshape((128,))
    t42 = np.matmul(t40, block1_W1.T, out=t35)
    block1_W1_grad = x.T @ t40
    t43 = np.add(t36, t42, out=t36)
    # examples/residual_mlp.bm:17: x      = relu(dense(image, width))
    t44 = x > 0.0
    t45 = _masked(t43, t44)
    x_W_grad = image.T @ t45
    x_b_grad = t45.sum(axis=0)
    # examples/residual_mlp.bm:31: optimizer = adam(lr = 1e-3)
    t46 = adam_t + 1.0
    t47 = np.float64(t46)
    t50 = 0.9 ** t47
    t51 = 1.0 - t50
    t53 = 0.999 ** t47
    t54 = 1.0 - t53
    t55 = np.float64(lr)
    t56 = t55 / t51
    t58 = np.multiply(0.9, adam_m_x_W, out=adam_m_x_W)
    t60 = 0.1 * x_W_grad
    x_W_m = np.add(t58, t60, out=t58)
    t62 = np.multiply(0.999, adam_v_x_W, out=adam_v_x_W)
    t64 = np.multiply(x_W_grad, x_W_grad, out=x_W_grad)
    t65 = np.multiply(0.001, t64, out=t64)
    x_W_v = np.add(t62, t65, out=t62)
    t66 = np.float32(t54)
    t67 = np.divide(x_W_v, t66, out=t65)
    t68 = np.sqrt(t67, out=t67)
    t70 = np.add(t68, 1e-07, out=t68)
    t71 = np.float32(t56)
    t72 = np.divide(x_W_m, t70, out=t70)
    t73 = np.multiply(t71, t72, out=t72)
    x_W_new = np.subtract(x_W, t73, out=x_W)
    t74 = np.multiply(0.9, adam_m_x_b, out=adam_m_x_b)
    t75 = 0.1 * x_b_grad
    x_b_m = np.add(t74, t75, out=t74)
    t76 = np.multiply(0.999, adam_v_x_b, out=adam_v_x_b)
    t77 = np.multiply(x_b_grad, x_b_grad, out=x_b_grad)
    t78 = np.multiply(0.001, t77, out=t77)
    x_b_v = np.add(t76, t78, out=t76)
    t79 = np.divide(x_b_v, t66, out=t78)
    t80 = np.sqrt(t79, out=t79)
    t81 = np.add(t80, 1e-07, out=t80)
    t82 = np.divide(x_b_m, t81, out=t81)
    t83 = np.multiply(t71, t82, out=t82)
    x_b_new = np.subtract(x_b, t83, out=x_b)
    t84 = np.multiply(0.9, adam_m_block1_W1, out=adam_m_block1_W1)
    t85 = 0.1 * block1_W1_grad
    block1_W1_m = np.add(t84, t85, out=t84)
    t86 = np.multiply(0.999, adam_v_block1_W1, out=adam_v_block1_W1)
    t87 = np.multiply(block1_W1_grad, block1_W1_grad, out=block1_W1_grad)
    t88 = np.multiply(0.001, t87, out=t87)
    block1_W1_v = np.add(t86, t88, out=t86)
    t89 = np.divide(block1_W1_v, t66, out=t88)
    t90 = np.sqrt(t89, out=t89)
    t91 = np.add(t90, 1e-07, out=t90)
    t92 = np.divide(block1_W1_m, t91, out=t91)
    t93 = np.multiply(t71, t92, out=t92)
    block1_W1_new = np.subtract(block1_W1, t93, out=block1_W1)
    t94 = np.multiply(0.9, adam_m_block1_b1, out=adam_m_block1_b1)
    t95 = 0.1 * block1_b1_grad
    block1_b1_m = np.add(t94, t95, out=t94)
    t96 = np.multiply(0.999, adam_v_block1_b1, out=adam_v_block1_b1)
    t97 = np.multiply(block1_b1_grad, block1_b1_grad, out=t95)
    t98 = np.multiply(0.001, t97, out=t97)
    block1_b1_v = np.add(t96, t98, out=t96)
    t99 = np.divide(block1_b1_v, t66, out=t98)
    t100 = np.sqrt(t99, out=t99)
    t101 = np.add(t100, 1e-07, out=t100)
    t102 = np.divide(block1_b1_m, t101, out=t101)
    t103 = np.multiply(t71, t102, out=t102)
    block1_b1_new = np.subtract(block1_b1, t103, out=block1_b1)
    t104 = np.multiply(0.9, adam_m_block1_W2, out=adam_m_block1_W2)
    t105 = 0.1 * block1_W2_grad
    block1_W2_m = np.add(t104, t105, out=t104)
    t106 = np.multiply(0.999, adam_v_block1_W2, out=adam_v_block1_W2)
    t107 = np.multiply(block1_W2_grad, block1_W2_grad, out=block1_W2_grad)
    t108 = np.multiply(0.001, t107, out=t107)
    block1_W2_v = np.add(t106, t108, out=t106)
    t109 = np.divide(block1_W2_v, t66, out=t108)
    t110 = np.sqrt(t109, out=t109)
    t111 = np.add(t110, 1e-07, out=t110)
    t112 = np.divide(block1_W2_m, t111, out=t111)
    t113 = np.multiply(t71, t112, out=t112)
    block1_W2_new = np.subtract(block1_W2, t113, out=block1_W2)
    t114 = np.multiply(0.9, adam_m_block1_b2, out=adam_m_block1_b2)
    t115 = np.multiply(0.1, block1_b2_grad, out=t83)
    block1_b2_m = np.add(t114, t115, out=t114)
    t116 = np.multiply(0.999, adam_v_block1_b2, out=adam_v_block1_b2)
    t117 = np.multiply(block1_b2_grad, block1_b2_grad, out=t115)
    t118 = np.multiply(0.001, t117, out=t117)
    block1_b2_v = np.add(t116, t118, out=t116)
    t119 = np.divide(block1_b2_v, t66, out=t118)
    t120 = np.sqrt(t119, out=t119)
    t121 = np.add(t120, 1e-07, out=t120)
    t122 = np.divide(block1_b2_m, t121, out=t121)
    t123 = np.multiply(t71, t122, out=t122)
    block1_b2_new = np.subtract(block1_b2, t123, out=block1_b2)
    t124 = np.multiply(0.9, adam_m_block2_W1, out=adam_m_block2_W1)
    t125 = np.multiply(0.1, block2_W1_grad, out=t93)
    block2_W1_m = np.add(t124, t125, out=t124)
    t126 = np.multiply(0.999, adam_v_block2_W1, out=adam_v_block2_W1)
    t127 = np.multiply(block2_W1_grad, block2_W1_grad, out=block2_W1_grad)
    t128 = np.multiply(0.001, t127, out=t127)
    block2_W1_v = np.add(t126, t128, out=t126)
    t129 = np.divide(block2_W1_v, t66, out=t128)
    t130 = np.sqrt(t129, out=t129)
    t131 = np.add(t130, 1e-07, out=t130)
    t132 = np.divide(block2_W1_m, t131, out=t131)
    t133 = np.multiply(t71, t132, out=t132)
    block2_W1_new = np.subtract(block2_W1, t133, out=block2_W1)
    t134 = np.multiply(0.9, adam_m_block2_b1, out=adam_m_block2_b1)
    t135 = np.multiply(0.1, block2_b1_grad, out=t103)
    block2_b1_m = np.add(t134, t135, out=t134)
    t136 = np.multiply(0.999, adam_v_block2_b1, out=adam_v_block2_b1)
    t137 = np.multiply(block2_b1_grad, block2_b1_grad, out=t135)
    t138 = np.multiply(0.001, t137, out=t137)
    block2_b1_v = np.add(t136, t138, out=t136)
    t139 = np.divide(block2_b1_v, t66, out=t138)
    t140 = np.sqrt(t139, out=t139)
    t141 = np.add(t140, 1e-07, out=t140)
    t142 = np.divide(block2_b1_m, t141, out=t141)
    t143 = np.multiply(t71, t142, out=t142)
    block2_b1_new = np.subtract(block2_b1, t143, out=block2_b1)
    t144 = np.multiply(0.9, adam_m_block2_W2, out=adam_m_block2_W2)
    t145 = np.multiply(0.1, block2_W2_grad, out=t113)
    block2_W2_m = np.add(t144, t145, out=t144)
    t146 = np.multiply(0.999, adam_v_block2_W2, out=adam_v_block2_W2)
    t147 = np.multiply(block2_W2_grad, block2_W2_grad, out=block2_W2_grad)
    t148 = np.multiply(0.001, t147, out=t147)
    block2_W2_v = np.add(t146, t148, out=t146)
    t149 = np.divide(block2_W2_v, t66, out=t148)
    t150 = np.sqrt(t149, out=t149)
    t151 = np.add(t150, 1e-07, out=t150)
    t152 = np.divide(block2_W2_m, t151, out=t151)
    t153 = np.multiply(t71, t152, out=t152)
    block2_W2_new = np.subtract(block2_W2, t153, out=block2_W2)
    t154 = np.multiply(0.9, adam_m_block2_b2, out=adam_m_block2_b2)
    t155 = np.multiply(0.1, block2_b2_grad, out=t123)
    block2_b2_m = np.add(t154, t155, out=t154)
    t156 = np.multiply(0.999, adam_v_block2_b2, out=adam_v_block2_b2)
    t157 = np.multiply(block2_b2_grad, block2_b2_grad, out=t155)
    t158 = np.multiply(0.001, t157, out=t157)
    block2_b2_v = np.add(t156, t158, out=t156)
    t159 = np.divide(block2_b2_v, t66, out=t158)
    t160 = np.sqrt(t159, out=t159)
    t161 = np.add(t160, 1e-07, out=t160)
    t162 = np.divide(block2_b2_m, t161, out=t161)
    t163 = np.multiply(t71, t162, out=t162)
    block2_b2_new = np.subtract(block2_b2, t163, out=block2_b2)
    t164 = np.multiply(0.9, adam_m_W_out, out=adam_m_W_out)
    t165 = np.multiply(0.1, W_out_grad, out=t28)
    W_out_m = np.add(t164, t165, out=t164)
    t166 = np.multiply(0.999, adam_v_W_out, out=adam_v_W_out)
    t167 = np.multiply(W_out_grad, W_out_grad, out=W_out_grad)
    t168 = np.multiply(0.001, t167, out=t167)
    W_out_v = np.add(t166, t168, out=t166)
    t169 = np.divide(W_out_v, t66, out=t168)
    t170 = np.sqrt(t169, out=t169)
    t171 = np.add(t170, 1e-07, out=t170)
    t172 = np.divide(W_out_m, t171, out=t171)
    t173 = np.multiply(t71, t172, out=t172)
    W_out_new = np.subtract(W_out, t173, out=W_out)
    t174 = np.multiply(0.9, adam_m_b_out, out=adam_m_b_out)
    t175 = 0.1 * b_out_grad
    b_out_m = np.add(t174, t175, out=t174)
    t176 = np.multiply(0.999, adam_v_b_out, out=adam_v_b_out)
    t177 = np.multiply(b_out_grad, b_out_grad, out=t175)
    t178 = np.multiply(0.001, t177, out=t177)
    b_out_v = np.add(t176, t178, out=t176)
    t179 = np.divide(b_out_v, t66, out=t178)
    t180 = np.sqrt(t179, out=t179)
    t181 = np.add(t180, 1e-07, out=t180)
    t182 = np.divide(b_out_m, t181, out=t181)
    t183 = np.multiply(t71, t182, out=t182)
    b_out_new = np.subtract(b_out, t183, out=b_out)
    params['x.W'] = x_W_new
    params['x.b'] = x_b_new
    params['block1.W1'] = block1_W1_new
    params['block1.b1'] = block1_b1_new
    params['block1.W2'] = block1_W2_new
    params['block1.b2'] = block1_b2_new
    params['block2.W1'] = block2_W1_new
    params['block2.b1'] = block2_b1_new
    params['block2.W2'] = block2_W2_new
    params['block2.b2'] = block2_b2_new
    params['W_out'] = W_out_new
    params['b_out'] = b_out_new
    state['adam.t'] = t46
    state['adam.m/x.W'] = x_W_m
    state['adam.v/x.W'] = x_W_v
    state['adam.m/x.b'] = x_b_m
    state['adam.v/x.b'] = x_b_v
    state['adam.m/block1.W1'] = block1_W1_m
    state['adam.v/block1.W1'] = block1_W1_v
    state['adam.m/block1.b1'] = block1_b1_m
    state['adam.v/block1.b1'] = block1_b1_v
    state['adam.m/block1.W2'] = block1_W2_m
    state['adam.v/block1.W2'] = block1_W2_v
    state['adam.m/block1.b2'] = block1_b2_m
    state['adam.v/block1.b2'] = block1_b2_v
    state['adam.m/block2.W1'] = block2_W1_m
    state['adam.v/block2.W1'] = block2_W1_v
    state['adam.m/block2.b1'] = block2_b1_m
    state['adam.v/block2.b1'] = block2_b1_v
    state['adam.m/block2.W2'] = block2_W2_m
    state['adam.v/block2.W2'] = block2_W2_v
    state['adam.m/block2.b2'] = block2_b2_m
    state['adam.v/block2.b2'] = block2_b2_v
    state['adam.m/W_out'] = W_out_m
    state['adam.v/W_out'] = W_out_v
    state['adam.m/b_out'] = b_out_m
    state['adam.v/b_out'] = b_out_v
    return {'loss': loss, 'probs': probs}


# ---- the train step in two halves: gradients, then the update (data-parallel training combines them between) ------

def gradients(params, batch):
    """The first half of train_step: the loss, the model's outputs and the gradient of the batch's mean loss
    for every trainable parameter, as 'grad/<name>'. Updates the running statistics in `params` in place;
    the trainable parameters are only read."""
    x_W = params['x.W']
    x_b = params['x.b']
    block1_W1 = params['block1.W1']
    block1_b1 = params['block1.b1']
    block1_W2 = params['block1.W2']
    block1_b2 = params['block1.b2']
    block2_W1 = params['block2.W1']
    block2_b1 = params['block2.b1']
    block2_W2 = params['block2.W2']
    block2_b2 = params['block2.b2']
    W_out = params['W_out']
    b_out = params['b_out']
    image = batch['image']
    label = batch['label']
    N = image.shape[0]
    # examples/residual_mlp.bm:17: x      = relu(dense(image, width))
    t0 = image @ x_W + x_b
    x = np.maximum(t0, 0, out=t0)
    # examples/residual_mlp.bm:9: h = relu(x @ W1 + b1)
    t1 = x @ block1_W1
    t2 = np.add(t1, block1_b1, out=t1)
    block1_h = np.maximum(t2, 0, out=t2)
    # examples/residual_mlp.bm:10: return x + (h @ W2 + b2)
    t3 = block1_h @ block1_W2
    t4 = np.add(t3, block1_b2, out=t3)
    block1 = np.add(x, t4, out=t4)
    # examples/residual_mlp.bm:9: h = relu(x @ W1 + b1)
    t5 = block1 @ block2_W1
    t6 = np.add(t5, block2_b1, out=t5)
    block2_h = np.maximum(t6, 0, out=t6)
    # examples/residual_mlp.bm:10: return x + (h @ W2 + b2)
    t7 = block2_h @ block2_W2
    t8 = np.add(t7, block2_b2, out=t7)
    block2 = np.add(block1, t8, out=t8)
    # examples/residual_mlp.bm:23: logits = block2 @ W_out + b_out
    t9 = block2 @ W_out
    logits = np.add(t9, b_out, out=t9)
    # examples/residual_mlp.bm:25: output probs = softmax(logits)
    probs = _softmax(logits, axis=-1)
    # examples/residual_mlp.bm:26: loss = cross_entropy(logits, label) + 1e-4 * l2(W_out)   # an explicit L2 penalty on
    #   one weight
    t10 = _cross_entropy(logits, label)
    t11 = W_out * W_out
    t12 = t11.sum(axis=None)
    t14 = 0.0001 * t12
    loss = t10 + t14
    t17 = np.float32(9.999999747378752e-05).reshape((1, 1))
    t18 = np.broadcast_to(t17, (64, 10))
    t19 = np.multiply(t18, W_out, out=t11)
    t20 = np.add(t19, t19, out=t19)
    t21 = _one_hot(label, 10, np.float32)
    t22 = np.float32(N)
    t23 = 1.0 / t22
    t24 = np.subtract(probs, t21, out=t21)
    t25 = np.multiply(t24, t23, out=t24)
    # examples/residual_mlp.bm:23: logits = block2 @ W_out + b_out
    t26 = t25.sum(axis=0, keepdims=True)
    b_out_grad = t26.reshape((10,))
    t27 = t25 @ W_out.T
    t28 = block2.T @ t25
    W_out_grad = np.add(t20, t28, out=t20)
    # examples/residual_mlp.bm:10: return x + (h @ W2 + b2)
    t29 = t27.sum(axis=0, keepdims=True)
    block2_b2_grad = t29.reshape((64,))
    t30 = t27 @ block2_W2.T
    block2_W2_grad = block2_h.T @ t27
    # examples/residual_mlp.bm:9: h = relu(x @ W1 + b1)
    t32 = block2_h > 0.0
    t33 = _masked(t30, t32)
    t34 = t33.sum(axis=0, keepdims=True)
    block2_b1_grad = t34.reshape((128,))
    t35 = np.matmul(t33, block2_W1.T, out=block2)
    block2_W1_grad = block1.T @ t33
    t36 = np.add(t27, t35, out=t27)
    # examples/residual_mlp.bm:10: return x + (h @ W2 + b2)
    t37 = t36.sum(axis=0, keepdims=True)
    block1_b2_grad = t37.reshape((64,))
    t38 = np.matmul(t36, block1_W2.T, out=t33)
    block1_W2_grad = block1_h.T @ t36
    # examples/residual_mlp.bm:9: h = relu(x @ W1 + b1)
    t39 = block1_h > 0.0
    t40 = _masked(t38, t39)
    t41 = t40.sum(axis=0, keepdims=True)
    block1_b1_grad = t41.reshape((128,))
    t42 = np.matmul(t40, block1_W1.T, out=t35)
    block1_W1_grad = x.T @ t40
    t43 = np.add(t36, t42, out=t36)
    # examples/residual_mlp.bm:17: x      = relu(dense(image, width))
    t44 = x > 0.0
    t45 = _masked(t43, t44)
    x_W_grad = image.T @ t45
    x_b_grad = t45.sum(axis=0)
    return {'loss': loss, 'probs': probs, 'grad/x.W': x_W_grad, 'grad/x.b': x_b_grad, 'grad/block1.W1': block1_W1_grad,
            'grad/block1.b1': block1_b1_grad, 'grad/block1.W2': block1_W2_grad, 'grad/block1.b2': block1_b2_grad,
            'grad/block2.W1': block2_W1_grad, 'grad/block2.b1': block2_b1_grad, 'grad/block2.W2': block2_W2_grad,
            'grad/block2.b2': block2_b2_grad, 'grad/W_out': W_out_grad, 'grad/b_out': b_out_grad}


def apply(params, state, grads, lr):
    """The second half of train_step: the optimizer update from `grads` (what gradients() returns, or the
    gradients of several workers combined). Updates `params` and `state` in place."""
    x_W = params['x.W']
    x_b = params['x.b']
    block1_W1 = params['block1.W1']
    block1_b1 = params['block1.b1']
    block1_W2 = params['block1.W2']
    block1_b2 = params['block1.b2']
    block2_W1 = params['block2.W1']
    block2_b1 = params['block2.b1']
    block2_W2 = params['block2.W2']
    block2_b2 = params['block2.b2']
    W_out = params['W_out']
    b_out = params['b_out']
    adam_t = state['adam.t']
    adam_m_x_W = state['adam.m/x.W']
    adam_v_x_W = state['adam.v/x.W']
    adam_m_x_b = state['adam.m/x.b']
    adam_v_x_b = state['adam.v/x.b']
    adam_m_block1_W1 = state['adam.m/block1.W1']
    adam_v_block1_W1 = state['adam.v/block1.W1']
    adam_m_block1_b1 = state['adam.m/block1.b1']
    adam_v_block1_b1 = state['adam.v/block1.b1']
    adam_m_block1_W2 = state['adam.m/block1.W2']
    adam_v_block1_W2 = state['adam.v/block1.W2']
    adam_m_block1_b2 = state['adam.m/block1.b2']
    adam_v_block1_b2 = state['adam.v/block1.b2']
    adam_m_block2_W1 = state['adam.m/block2.W1']
    adam_v_block2_W1 = state['adam.v/block2.W1']
    adam_m_block2_b1 = state['adam.m/block2.b1']
    adam_v_block2_b1 = state['adam.v/block2.b1']
    adam_m_block2_W2 = state['adam.m/block2.W2']
    adam_v_block2_W2 = state['adam.v/block2.W2']
    adam_m_block2_b2 = state['adam.m/block2.b2']
    adam_v_block2_b2 = state['adam.v/block2.b2']
    adam_m_W_out = state['adam.m/W_out']
    adam_v_W_out = state['adam.v/W_out']
    adam_m_b_out = state['adam.m/b_out']
    adam_v_b_out = state['adam.v/b_out']
    grad_x_W = grads['grad/x.W']
    grad_x_b = grads['grad/x.b']
    grad_block1_W1 = grads['grad/block1.W1']
    grad_block1_b1 = grads['grad/block1.b1']
    grad_block1_W2 = grads['grad/block1.W2']
    grad_block1_b2 = grads['grad/block1.b2']
    grad_block2_W1 = grads['grad/block2.W1']
    grad_block2_b1 = grads['grad/block2.b1']
    grad_block2_W2 = grads['grad/block2.W2']
    grad_block2_b2 = grads['grad/block2.b2']
    grad_W_out = grads['grad/W_out']
    grad_b_out = grads['grad/b_out']
    # examples/residual_mlp.bm:31: optimizer = adam(lr = 1e-3)
    t1 = adam_t + 1.0
    t2 = np.float64(t1)
    t5 = 0.9 ** t2
    t6 = 1.0 - t5
    t8 = 0.999 ** t2
    t9 = 1.0 - t8
    t10 = np.float64(lr)
    t11 = t10 / t6
    t13 = np.multiply(0.9, adam_m_x_W, out=adam_m_x_W)
    t15 = 0.1 * grad_x_W
    x_W_m = np.add(t13, t15, out=t13)
    t17 = np.multiply(0.999, adam_v_x_W, out=adam_v_x_W)
    t19 = np.multiply(grad_x_W, grad_x_W, out=t15)
    t20 = np.multiply(0.001, t19, out=t19)
    x_W_v = np.add(t17, t20, out=t17)
    t21 = np.float32(t9)
    t22 = np.divide(x_W_v, t21, out=t20)
    t23 = np.sqrt(t22, out=t22)
    t25 = np.add(t23, 1e-07, out=t23)
    t26 = np.float32(t11)
    t27 = np.divide(x_W_m, t25, out=t25)
    t28 = np.multiply(t26, t27, out=t27)
    x_W_new = np.subtract(x_W, t28, out=x_W)
    t29 = np.multiply(0.9, adam_m_x_b, out=adam_m_x_b)
    t30 = 0.1 * grad_x_b
    x_b_m = np.add(t29, t30, out=t29)
    t31 = np.multiply(0.999, adam_v_x_b, out=adam_v_x_b)
    t32 = np.multiply(grad_x_b, grad_x_b, out=t30)
    t33 = np.multiply(0.001, t32, out=t32)
    x_b_v = np.add(t31, t33, out=t31)
    t34 = np.divide(x_b_v, t21, out=t33)
    t35 = np.sqrt(t34, out=t34)
    t36 = np.add(t35, 1e-07, out=t35)
    t37 = np.divide(x_b_m, t36, out=t36)
    t38 = np.multiply(t26, t37, out=t37)
    x_b_new = np.subtract(x_b, t38, out=x_b)
    t39 = np.multiply(0.9, adam_m_block1_W1, out=adam_m_block1_W1)
    t40 = 0.1 * grad_block1_W1
    block1_W1_m = np.add(t39, t40, out=t39)
    t41 = np.multiply(0.999, adam_v_block1_W1, out=adam_v_block1_W1)
    t42 = np.multiply(grad_block1_W1, grad_block1_W1, out=t40)
    t43 = np.multiply(0.001, t42, out=t42)
    block1_W1_v = np.add(t41, t43, out=t41)
    t44 = np.divide(block1_W1_v, t21, out=t43)
    t45 = np.sqrt(t44, out=t44)
    t46 = np.add(t45, 1e-07, out=t45)
    t47 = np.divide(block1_W1_m, t46, out=t46)
    t48 = np.multiply(t26, t47, out=t47)
    block1_W1_new = np.subtract(block1_W1, t48, out=block1_W1)
    t49 = np.multiply(0.9, adam_m_block1_b1, out=adam_m_block1_b1)
    t50 = 0.1 * grad_block1_b1
    block1_b1_m = np.add(t49, t50, out=t49)
    t51 = np.multiply(0.999, adam_v_block1_b1, out=adam_v_block1_b1)
    t52 = np.multiply(grad_block1_b1, grad_block1_b1, out=t50)
    t53 = np.multiply(0.001, t52, out=t52)
    block1_b1_v = np.add(t51, t53, out=t51)
    t54 = np.divide(block1_b1_v, t21, out=t53)
    t55 = np.sqrt(t54, out=t54)
    t56 = np.add(t55, 1e-07, out=t55)
    t57 = np.divide(block1_b1_m, t56, out=t56)
    t58 = np.multiply(t26, t57, out=t57)
    block1_b1_new = np.subtract(block1_b1, t58, out=block1_b1)
    t59 = np.multiply(0.9, adam_m_block1_W2, out=adam_m_block1_W2)
    t60 = 0.1 * grad_block1_W2
    block1_W2_m = np.add(t59, t60, out=t59)
    t61 = np.multiply(0.999, adam_v_block1_W2, out=adam_v_block1_W2)
    t62 = np.multiply(grad_block1_W2, grad_block1_W2, out=t60)
    t63 = np.multiply(0.001, t62, out=t62)
    block1_W2_v = np.add(t61, t63, out=t61)
    t64 = np.divide(block1_W2_v, t21, out=t63)
    t65 = np.sqrt(t64, out=t64)
    t66 = np.add(t65, 1e-07, out=t65)
    t67 = np.divide(block1_W2_m, t66, out=t66)
    t68 = np.multiply(t26, t67, out=t67)
    block1_W2_new = np.subtract(block1_W2, t68, out=block1_W2)
    t69 = np.multiply(0.9, adam_m_block1_b2, out=adam_m_block1_b2)
    t70 = np.multiply(0.1, grad_block1_b2, out=t38)
    block1_b2_m = np.add(t69, t70, out=t69)
    t71 = np.multiply(0.999, adam_v_block1_b2, out=adam_v_block1_b2)
    t72 = np.multiply(grad_block1_b2, grad_block1_b2, out=t70)
    t73 = np.multiply(0.001, t72, out=t72)
    block1_b2_v = np.add(t71, t73, out=t71)
    t74 = np.divide(block1_b2_v, t21, out=t73)
    t75 = np.sqrt(t74, out=t74)
    t76 = np.add(t75, 1e-07, out=t75)
    t77 = np.divide(block1_b2_m, t76, out=t76)
    t78 = np.multiply(t26, t77, out=t77)
    block1_b2_new = np.subtract(block1_b2, t78, out=block1_b2)
    t79 = np.multiply(0.9, adam_m_block2_W1, out=adam_m_block2_W1)
    t80 = np.multiply(0.1, grad_block2_W1, out=t48)
    block2_W1_m = np.add(t79, t80, out=t79)
    t81 = np.multiply(0.999, adam_v_block2_W1, out=adam_v_block2_W1)
    t82 = np.multiply(grad_block2_W1, grad_block2_W1, out=t80)
    t83 = np.multiply(0.001, t82, out=t82)
    block2_W1_v = np.add(t81, t83, out=t81)
    t84 = np.divide(block2_W1_v, t21, out=t83)
    t85 = np.sqrt(t84, out=t84)
    t86 = np.add(t85, 1e-07, out=t85)
    t87 = np.divide(block2_W1_m, t86, out=t86)
    t88 = np.multiply(t26, t87, out=t87)
    block2_W1_new = np.subtract(block2_W1, t88, out=block2_W1)
    t89 = np.multiply(0.9, adam_m_block2_b1, out=adam_m_block2_b1)
    t90 = np.multiply(0.1, grad_block2_b1, out=t58)
    block2_b1_m = np.add(t89, t90, out=t89)
    t91 = np.multiply(0.999, adam_v_block2_b1, out=adam_v_block2_b1)
    t92 = np.multiply(grad_block2_b1, grad_block2_b1, out=t90)
    t93 = np.multiply(0.001, t92, out=t92)
    block2_b1_v = np.add(t91, t93, out=t91)
    t94 = np.divide(block2_b1_v, t21, out=t93)
    t95 = np.sqrt(t94, out=t94)
    t96 = np.add(t95, 1e-07, out=t95)
    t97 = np.divide(block2_b1_m, t96, out=t96)
    t98 = np.multiply(t26, t97, out=t97)
    block2_b1_new = np.subtract(block2_b1, t98, out=block2_b1)
    t99 = np.multiply(0.9, adam_m_block2_W2, out=adam_m_block2_W2)
    t100 = np.multiply(0.1, grad_block2_W2, out=t68)
    block2_W2_m = np.add(t99, t100, out=t99)
    t101 = np.multiply(0.999, adam_v_block2_W2, out=adam_v_block2_W2)
    t102 = np.multiply(grad_block2_W2, grad_block2_W2, out=t100)
    t103 = np.multiply(0.001, t102, out=t102)
    block2_W2_v = np.add(t101, t103, out=t101)
    t104 = np.divide(block2_W2_v, t21, out=t103)
    t105 = np.sqrt(t104, out=t104)
    t106 = np.add(t105, 1e-07, out=t105)
    t107 = np.divide(block2_W2_m, t106, out=t106)
    t108 = np.multiply(t26, t107, out=t107)
    block2_W2_new = np.subtract(block2_W2, t108, out=block2_W2)
    t109 = np.multiply(0.9, adam_m_block2_b2, out=adam_m_block2_b2)
    t110 = np.multiply(0.1, grad_block2_b2, out=t78)
    block2_b2_m = np.add(t109, t110, out=t109)
    t111 = np.multiply(0.999, adam_v_block2_b2, out=adam_v_block2_b2)
    t112 = np.multiply(grad_block2_b2, grad_block2_b2, out=t110)
    t113 = np.multiply(0.001, t112, out=t112)
    block2_b2_v = np.add(t111, t113, out=t111)
    t114 = np.divide(block2_b2_v, t21, out=t113)
    t115 = np.sqrt(t114, out=t114)
    t116 = np.add(t115, 1e-07, out=t115)
    t117 = np.divide(block2_b2_m, t116, out=t116)
    t118 = np.multiply(t26, t117, out=t117)
    block2_b2_new = np.subtract(block2_b2, t118, out=block2_b2)
    t119 = np.multiply(0.9, adam_m_W_out, out=adam_m_W_out)
    t120 = 0.1 * grad_W_out
    W_out_m = np.add(t119, t120, out=t119)
    t121 = np.multiply(0.999, adam_v_W_out, out=adam_v_W_out)
    t122 = np.multiply(grad_W_out, grad_W_out, out=t120)
    t123 = np.multiply(0.001, t122, out=t122)
    W_out_v = np.add(t121, t123, out=t121)
    t124 = np.divide(W_out_v, t21, out=t123)
    t125 = np.sqrt(t124, out=t124)
    t126 = np.add(t125, 1e-07, out=t125)
    t127 = np.divide(W_out_m, t126, out=t126)
    t128 = np.multiply(t26, t127, out=t127)
    W_out_new = np.subtract(W_out, t128, out=W_out)
    t129 = np.multiply(0.9, adam_m_b_out, out=adam_m_b_out)
    t130 = 0.1 * grad_b_out
    b_out_m = np.add(t129, t130, out=t129)
    t131 = np.multiply(0.999, adam_v_b_out, out=adam_v_b_out)
    t132 = np.multiply(grad_b_out, grad_b_out, out=t130)
    t133 = np.multiply(0.001, t132, out=t132)
    b_out_v = np.add(t131, t133, out=t131)
    t134 = np.divide(b_out_v, t21, out=t133)
    t135 = np.sqrt(t134, out=t134)
    t136 = np.add(t135, 1e-07, out=t135)
    t137 = np.divide(b_out_m, t136, out=t136)
    t138 = np.multiply(t26, t137, out=t137)
    b_out_new = np.subtract(b_out, t138, out=b_out)
    params['x.W'] = x_W_new
    params['x.b'] = x_b_new
    params['block1.W1'] = block1_W1_new
    params['block1.b1'] = block1_b1_new
    params['block1.W2'] = block1_W2_new
    params['block1.b2'] = block1_b2_new
    params['block2.W1'] = block2_W1_new
    params['block2.b1'] = block2_b1_new
    params['block2.W2'] = block2_W2_new
    params['block2.b2'] = block2_b2_new
    params['W_out'] = W_out_new
    params['b_out'] = b_out_new
    state['adam.t'] = t1
    state['adam.m/x.W'] = x_W_m
    state['adam.v/x.W'] = x_W_v
    state['adam.m/x.b'] = x_b_m
    state['adam.v/x.b'] = x_b_v
    state['adam.m/block1.W1'] = block1_W1_m
    state['adam.v/block1.W1'] = block1_W1_v
    state['adam.m/block1.b1'] = block1_b1_m
    state['adam.v/block1.b1'] = block1_b1_v
    state['adam.m/block1.W2'] = block1_W2_m
    state['adam.v/block1.W2'] = block1_W2_v
    state['adam.m/block1.b2'] = block1_b2_m
    state['adam.v/block1.b2'] = block1_b2_v
    state['adam.m/block2.W1'] = block2_W1_m
    state['adam.v/block2.W1'] = block2_W1_v
    state['adam.m/block2.b1'] = block2_b1_m
    state['adam.v/block2.b1'] = block2_b1_v
    state['adam.m/block2.W2'] = block2_W2_m
    state['adam.v/block2.W2'] = block2_W2_v
    state['adam.m/block2.b2'] = block2_b2_m
    state['adam.v/block2.b2'] = block2_b2_v
    state['adam.m/W_out'] = W_out_m
    state['adam.v/W_out'] = W_out_v
    state['adam.m/b_out'] = b_out_m
    state['adam.v/b_out'] = b_out_v
    return {}


def evaluate(params, batch):
    """The loss and outputs on a labelled batch, in inference mode (no dropout, running statistics)."""
    x_W = params['x.W']
    x_b = params['x.b']
    block1_W1 = params['block1.W1']
    block1_b1 = params['block1.b1']
    block1_W2 = params['block1.W2']
    block1_b2 = params['block1.b2']
    block2_W1 = params['block2.W1']
    block2_b1 = params['block2.b1']
    block2_W2 = params['block2.W2']
    block2_b2 = params['block2.b2']
    W_out = params['W_out']
    b_out = params['b_out']
    image = batch['image']
    label = batch['label']
    # examples/residual_mlp.bm:17: x      = relu(dense(image, width))
    t0 = image @ x_W + x_b
    x = np.maximum(t0, 0, out=t0)
    # examples/residual_mlp.bm:9: h = relu(x @ W1 + b1)
    t1 = x @ block1_W1
    t2 = np.add(t1, block1_b1, out=t1)
    block1_h = np.maximum(t2, 0, out=t2)
    # examples/residual_mlp.bm:10: return x + (h @ W2 + b2)
    t3 = block1_h @ block1_W2
    t4 = np.add(t3, block1_b2, out=t3)
    block1 = np.add(x, t4, out=x)
    # examples/residual_mlp.bm:9: h = relu(x @ W1 + b1)
    t5 = np.matmul(block1, block2_W1, out=block1_h)
    t6 = np.add(t5, block2_b1, out=t5)
    block2_h = np.maximum(t6, 0, out=t6)
    # examples/residual_mlp.bm:10: return x + (h @ W2 + b2)
    t7 = np.matmul(block2_h, block2_W2, out=t4)
    t8 = np.add(t7, block2_b2, out=t7)
    block2 = np.add(block1, t8, out=block1)
    # examples/residual_mlp.bm:23: logits = block2 @ W_out + b_out
    t9 = block2 @ W_out
    logits = np.add(t9, b_out, out=t9)
    # examples/residual_mlp.bm:25: output probs = softmax(logits)
    probs = _softmax(logits, axis=-1)
    # examples/residual_mlp.bm:26: loss = cross_entropy(logits, label) + 1e-4 * l2(W_out)   # an explicit L2 penalty on
    #   one weight
    t10 = _cross_entropy(logits, label)
    t11 = W_out * W_out
    t12 = t11.sum(axis=None)
    t14 = 0.0001 * t12
    loss = t10 + t14
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
