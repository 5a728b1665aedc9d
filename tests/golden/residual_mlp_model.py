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
PARAMS = {'x.W': ('f32', [64, 64]), 'x.b': ('f32', [64]), 'block1.W1': ('f32', [64, 128]), 'block1.b1': ('f32', [128]), 'block1.W2': ('f32', [128, 64]), 'block1.b2': ('f32', [64]), 'block2.W1': ('f32', [64, 128]), 'block2.b1': ('f32', [128]), 'block2.W2': ('f32', [128, 64]), 'block2.b2': ('f32', [64]), 'W_out': ('f32', [64, 10]), 'b_out': ('f32', [10])}
STATE = {'adam.t': ('f32', []), 'adam.m/x.W': ('f32', [64, 64]), 'adam.v/x.W': ('f32', [64, 64]), 'adam.m/x.b': ('f32', [64]), 'adam.v/x.b': ('f32', [64]), 'adam.m/block1.W1': ('f32', [64, 128]), 'adam.v/block1.W1': ('f32', [64, 128]), 'adam.m/block1.b1': ('f32', [128]), 'adam.v/block1.b1': ('f32', [128]), 'adam.m/block1.W2': ('f32', [128, 64]), 'adam.v/block1.W2': ('f32', [128, 64]), 'adam.m/block1.b2': ('f32', [64]), 'adam.v/block1.b2': ('f32', [64]), 'adam.m/block2.W1': ('f32', [64, 128]), 'adam.v/block2.W1': ('f32', [64, 128]), 'adam.m/block2.b1': ('f32', [128]), 'adam.v/block2.b1': ('f32', [128]), 'adam.m/block2.W2': ('f32', [128, 64]), 'adam.v/block2.W2': ('f32', [128, 64]), 'adam.m/block2.b2': ('f32', [64]), 'adam.v/block2.b2': ('f32', [64]), 'adam.m/W_out': ('f32', [64, 10]), 'adam.v/W_out': ('f32', [64, 10]), 'adam.m/b_out': ('f32', [10]), 'adam.v/b_out': ('f32', [10])}
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
    # examples/residual_mlp.bm:26: loss = cross_entropy(logits, label) + 1e-4 * l2(W_out)   # an explicit L2 penalty on one weight
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
    t33 = t30 * t32
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
    t40 = t38 * t39
    t41 = t40.sum(axis=0, keepdims=True)
    block1_b1_grad = t41.reshape((128,))
    t42 = np.matmul(t40, block1_W1.T, out=t35)
    block1_W1_grad = x.T @ t40
    t43 = np.add(t36, t42, out=t36)
    # examples/residual_mlp.bm:17: x      = relu(dense(image, width))
    t44 = x > 0.0
    t45 = t43 * t44
    x_W_grad = image.T @ t45
    x_b_grad = t45.sum(axis=0)
    # examples/residual_mlp.bm:31: optimizer = adam(lr = 1e-3)
    t46 = adam_t + 1.0
    t48 = 0.9 ** t46
    t49 = 1.0 - t48
    t51 = 0.999 ** t46
    t52 = 1.0 - t51
    t53 = lr / t49
    t54 = np.multiply(0.9, adam_m_x_W, out=adam_m_x_W)
    t56 = 0.1 * x_W_grad
    x_W_m = np.add(t54, t56, out=t54)
    t57 = np.multiply(0.999, adam_v_x_W, out=adam_v_x_W)
    t59 = np.multiply(x_W_grad, x_W_grad, out=x_W_grad)
    t60 = np.multiply(0.001, t59, out=t59)
    x_W_v = np.add(t57, t60, out=t57)
    t61 = np.divide(x_W_v, t52, out=t60)
    t62 = np.sqrt(t61, out=t61)
    t64 = np.add(t62, 1e-07, out=t62)
    t65 = np.divide(x_W_m, t64, out=t64)
    t66 = np.multiply(t53, t65, out=t65)
    x_W_new = np.subtract(x_W, t66, out=x_W)
    t67 = np.multiply(0.9, adam_m_x_b, out=adam_m_x_b)
    t68 = 0.1 * x_b_grad
    x_b_m = np.add(t67, t68, out=t67)
    t69 = np.multiply(0.999, adam_v_x_b, out=adam_v_x_b)
    t70 = np.multiply(x_b_grad, x_b_grad, out=x_b_grad)
    t71 = np.multiply(0.001, t70, out=t70)
    x_b_v = np.add(t69, t71, out=t69)
    t72 = np.divide(x_b_v, t52, out=t71)
    t73 = np.sqrt(t72, out=t72)
    t74 = np.add(t73, 1e-07, out=t73)
    t75 = np.divide(x_b_m, t74, out=t74)
    t76 = np.multiply(t53, t75, out=t75)
    x_b_new = np.subtract(x_b, t76, out=x_b)
    t77 = np.multiply(0.9, adam_m_block1_W1, out=adam_m_block1_W1)
    t78 = 0.1 * block1_W1_grad
    block1_W1_m = np.add(t77, t78, out=t77)
    t79 = np.multiply(0.999, adam_v_block1_W1, out=adam_v_block1_W1)
    t80 = np.multiply(block1_W1_grad, block1_W1_grad, out=block1_W1_grad)
    t81 = np.multiply(0.001, t80, out=t80)
    block1_W1_v = np.add(t79, t81, out=t79)
    t82 = np.divide(block1_W1_v, t52, out=t81)
    t83 = np.sqrt(t82, out=t82)
    t84 = np.add(t83, 1e-07, out=t83)
    t85 = np.divide(block1_W1_m, t84, out=t84)
    t86 = np.multiply(t53, t85, out=t85)
    block1_W1_new = np.subtract(block1_W1, t86, out=block1_W1)
    t87 = np.multiply(0.9, adam_m_block1_b1, out=adam_m_block1_b1)
    t88 = 0.1 * block1_b1_grad
    block1_b1_m = np.add(t87, t88, out=t87)
    t89 = np.multiply(0.999, adam_v_block1_b1, out=adam_v_block1_b1)
    t90 = np.multiply(block1_b1_grad, block1_b1_grad, out=t88)
    t91 = np.multiply(0.001, t90, out=t90)
    block1_b1_v = np.add(t89, t91, out=t89)
    t92 = np.divide(block1_b1_v, t52, out=t91)
    t93 = np.sqrt(t92, out=t92)
    t94 = np.add(t93, 1e-07, out=t93)
    t95 = np.divide(block1_b1_m, t94, out=t94)
    t96 = np.multiply(t53, t95, out=t95)
    block1_b1_new = np.subtract(block1_b1, t96, out=block1_b1)
    t97 = np.multiply(0.9, adam_m_block1_W2, out=adam_m_block1_W2)
    t98 = 0.1 * block1_W2_grad
    block1_W2_m = np.add(t97, t98, out=t97)
    t99 = np.multiply(0.999, adam_v_block1_W2, out=adam_v_block1_W2)
    t100 = np.multiply(block1_W2_grad, block1_W2_grad, out=block1_W2_grad)
    t101 = np.multiply(0.001, t100, out=t100)
    block1_W2_v = np.add(t99, t101, out=t99)
    t102 = np.divide(block1_W2_v, t52, out=t101)
    t103 = np.sqrt(t102, out=t102)
    t104 = np.add(t103, 1e-07, out=t103)
    t105 = np.divide(block1_W2_m, t104, out=t104)
    t106 = np.multiply(t53, t105, out=t105)
    block1_W2_new = np.subtract(block1_W2, t106, out=block1_W2)
    t107 = np.multiply(0.9, adam_m_block1_b2, out=adam_m_block1_b2)
    t108 = np.multiply(0.1, block1_b2_grad, out=t76)
    block1_b2_m = np.add(t107, t108, out=t107)
    t109 = np.multiply(0.999, adam_v_block1_b2, out=adam_v_block1_b2)
    t110 = np.multiply(block1_b2_grad, block1_b2_grad, out=t108)
    t111 = np.multiply(0.001, t110, out=t110)
    block1_b2_v = np.add(t109, t111, out=t109)
    t112 = np.divide(block1_b2_v, t52, out=t111)
    t113 = np.sqrt(t112, out=t112)
    t114 = np.add(t113, 1e-07, out=t113)
    t115 = np.divide(block1_b2_m, t114, out=t114)
    t116 = np.multiply(t53, t115, out=t115)
    block1_b2_new = np.subtract(block1_b2, t116, out=block1_b2)
    t117 = np.multiply(0.9, adam_m_block2_W1, out=adam_m_block2_W1)
    t118 = np.multiply(0.1, block2_W1_grad, out=t86)
    block2_W1_m = np.add(t117, t118, out=t117)
    t119 = np.multiply(0.999, adam_v_block2_W1, out=adam_v_block2_W1)
    t120 = np.multiply(block2_W1_grad, block2_W1_grad, out=block2_W1_grad)
    t121 = np.multiply(0.001, t120, out=t120)
    block2_W1_v = np.add(t119, t121, out=t119)
    t122 = np.divide(block2_W1_v, t52, out=t121)
    t123 = np.sqrt(t122, out=t122)
    t124 = np.add(t123, 1e-07, out=t123)
    t125 = np.divide(block2_W1_m, t124, out=t124)
    t126 = np.multiply(t53, t125, out=t125)
    block2_W1_new = np.subtract(block2_W1, t126, out=block2_W1)
    t127 = np.multiply(0.9, adam_m_block2_b1, out=adam_m_block2_b1)
    t128 = np.multiply(0.1, block2_b1_grad, out=t96)
    block2_b1_m = np.add(t127, t128, out=t127)
    t129 = np.multiply(0.999, adam_v_block2_b1, out=adam_v_block2_b1)
    t130 = np.multiply(block2_b1_grad, block2_b1_grad, out=t128)
    t131 = np.multiply(0.001, t130, out=t130)
    block2_b1_v = np.add(t129, t131, out=t129)
    t132 = np.divide(block2_b1_v, t52, out=t131)
    t133 = np.sqrt(t132, out=t132)
    t134 = np.add(t133, 1e-07, out=t133)
    t135 = np.divide(block2_b1_m, t134, out=t134)
    t136 = np.multiply(t53, t135, out=t135)
    block2_b1_new = np.subtract(block2_b1, t136, out=block2_b1)
    t137 = np.multiply(0.9, adam_m_block2_W2, out=adam_m_block2_W2)
    t138 = np.multiply(0.1, block2_W2_grad, out=t106)
    block2_W2_m = np.add(t137, t138, out=t137)
    t139 = np.multiply(0.999, adam_v_block2_W2, out=adam_v_block2_W2)
    t140 = np.multiply(block2_W2_grad, block2_W2_grad, out=block2_W2_grad)
    t141 = np.multiply(0.001, t140, out=t140)
    block2_W2_v = np.add(t139, t141, out=t139)
    t142 = np.divide(block2_W2_v, t52, out=t141)
    t143 = np.sqrt(t142, out=t142)
    t144 = np.add(t143, 1e-07, out=t143)
    t145 = np.divide(block2_W2_m, t144, out=t144)
    t146 = np.multiply(t53, t145, out=t145)
    block2_W2_new = np.subtract(block2_W2, t146, out=block2_W2)
    t147 = np.multiply(0.9, adam_m_block2_b2, out=adam_m_block2_b2)
    t148 = np.multiply(0.1, block2_b2_grad, out=t116)
    block2_b2_m = np.add(t147, t148, out=t147)
    t149 = np.multiply(0.999, adam_v_block2_b2, out=adam_v_block2_b2)
    t150 = np.multiply(block2_b2_grad, block2_b2_grad, out=t148)
    t151 = np.multiply(0.001, t150, out=t150)
    block2_b2_v = np.add(t149, t151, out=t149)
    t152 = np.divide(block2_b2_v, t52, out=t151)
    t153 = np.sqrt(t152, out=t152)
    t154 = np.add(t153, 1e-07, out=t153)
    t155 = np.divide(block2_b2_m, t154, out=t154)
    t156 = np.multiply(t53, t155, out=t155)
    block2_b2_new = np.subtract(block2_b2, t156, out=block2_b2)
    t157 = np.multiply(0.9, adam_m_W_out, out=adam_m_W_out)
    t158 = np.multiply(0.1, W_out_grad, out=t28)
    W_out_m = np.add(t157, t158, out=t157)
    t159 = np.multiply(0.999, adam_v_W_out, out=adam_v_W_out)
    t160 = np.multiply(W_out_grad, W_out_grad, out=W_out_grad)
    t161 = np.multiply(0.001, t160, out=t160)
    W_out_v = np.add(t159, t161, out=t159)
    t162 = np.divide(W_out_v, t52, out=t161)
    t163 = np.sqrt(t162, out=t162)
    t164 = np.add(t163, 1e-07, out=t163)
    t165 = np.divide(W_out_m, t164, out=t164)
    t166 = np.multiply(t53, t165, out=t165)
    W_out_new = np.subtract(W_out, t166, out=W_out)
    t167 = np.multiply(0.9, adam_m_b_out, out=adam_m_b_out)
    t168 = 0.1 * b_out_grad
    b_out_m = np.add(t167, t168, out=t167)
    t169 = np.multiply(0.999, adam_v_b_out, out=adam_v_b_out)
    t170 = np.multiply(b_out_grad, b_out_grad, out=t168)
    t171 = np.multiply(0.001, t170, out=t170)
    b_out_v = np.add(t169, t171, out=t169)
    t172 = np.divide(b_out_v, t52, out=t171)
    t173 = np.sqrt(t172, out=t172)
    t174 = np.add(t173, 1e-07, out=t173)
    t175 = np.divide(b_out_m, t174, out=t174)
    t176 = np.multiply(t53, t175, out=t175)
    b_out_new = np.subtract(b_out, t176, out=b_out)
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
    # examples/residual_mlp.bm:26: loss = cross_entropy(logits, label) + 1e-4 * l2(W_out)   # an explicit L2 penalty on one weight
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
