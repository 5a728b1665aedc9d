"""NumPy implementations of the composite ops that need more than one expression.

These are real, tested functions; the code generator copies the source of the ones a model uses into the
generated module, so that module needs nothing but NumPy.
"""

import numpy as np


class InputError(ValueError):
    """The inputs of a call do not fit the model: a class index or token id out of range, a sequence longer than
    the model takes. The message names the value and, where it can, the .bm line."""


def _check_ids(ids, count, what):
    # an id outside [0, count) would read another row (negative ids wrap around in NumPy): refuse it
    if ids.size and (ids.min() < 0 or ids.max() >= count):
        bad = ids[(ids < 0) | (ids >= count)].flat[0]
        raise InputError(f"{what} {bad} is out of range: expected 0 to {count - 1}")


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


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def _log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def _one_hot(labels, depth, dtype):
    # a zero row for a label outside [0, depth), as comparing it with every class would give; the result is the
    # only array of that size (a comparison with np.arange(depth) made two more, one of int64)
    out = np.zeros((*labels.shape, depth), dtype)
    ids = labels.reshape(-1)
    rows = np.flatnonzero((ids >= 0) & (ids < depth))
    out.reshape(-1, depth)[rows, ids[rows]] = 1
    return out


def _gelu(x):
    # tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    return 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


def _gelu_grad(x, g):
    t = np.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))
    dinner = 0.7978845608028654 * (1 + 3 * 0.044715 * x * x)
    return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dinner)


def _erf(x):
    # W. J. Cody's rational approximations (his CALERF; the coefficients of bmc/ops/elementwise.py, highest power
    # first), in float64 for every input: x P(x^2) / Q(x^2) for |x| <= 0.46875, else 1 - erfc(|x|) with the sign of x,
    # erfc(y) = exp(-y^2) P(y) / Q(y) up to 4 and exp(-y^2) (1/sqrt(pi) - z P(z) / Q(z)) / y (z = 1/y^2) beyond
    def rational(t, num, den):
        p, q = np.full_like(t, num[0]), np.ones_like(t)
        for c in num[1:]:
            p = p * t + c
        for c in den[1:]:
            q = q * t + c
        return p / q

    a = np.asarray(x)
    t = a.astype(np.float64)
    y = np.abs(t)
    xs = np.clip(t, -0.46875, 0.46875)  # each formula reads x clamped into its range: no overflow where unused
    small = xs * rational(xs * xs, (1.85777706184603153e-1, 3.16112374387056560e00, 1.13864154151050156e02,
                                    3.77485237685302021e02, 3.20937758913846947e03),
                          (1.0, 2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
                           2.84423683343917062e03))
    ym = np.minimum(y, 4.0)
    middle = np.exp(-(ym * ym)) * rational(ym, (
        2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
        2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03,
        1.23033935479799725e03), (
        1.0, 1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
        3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03))
    yt = np.clip(y, 4.0, 27.0)
    z = 1.0 / (yt * yt)
    tail = (0.56418958354775628695 - z * rational(z, (
        1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
        1.60837851487422766e-2, 6.58749161529837803e-4), (
        1.0, 2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
        2.33520497626869185e-3))) / yt
    tail = np.exp(-(yt * yt)) * tail
    erfc = np.where(y <= 4.0, middle, tail)
    out = np.where(y <= 0.46875, small, np.sign(t) * ((0.5 - erfc) + 0.5))
    return out.astype(a.dtype) if a.dtype.kind == "f" else out


def _masked(x, keep):
    # np.where(keep, x, 0) of a float x as one multiply (np.where's select is about ten times slower); the product is
    # nan where x is inf or nan and keep is false, and then np.where gives the result after all (a zero is -0.0 where
    # x is negative and keep false: equal to np.where's 0.0)
    with np.errstate(invalid="ignore"):
        out = x * keep
    if out.size and np.isnan(out.max()):
        return np.where(keep, x, out.dtype.type(0))
    return out


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


def _mse(pred, target):
    d = pred - target
    return (d * d).sum(dtype=pred.dtype) / pred.size


def _padded(x, padding, fill=0.0):
    # [N, C, H, W] with (top, left, bottom, right) rows and columns of `fill` around each image
    top, left, bottom, right = padding
    if top or left or bottom or right:
        x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)
    return x


def _windows(x, kernel, stride, padding, dilation, fill=0.0):
    # [N, C, H, W] -> a view [N, C, H', W', kh, kw] of every window (after padding)
    span_h = dilation[0] * (kernel[0] - 1) + 1
    span_w = dilation[1] * (kernel[1] - 1) + 1
    view = np.lib.stride_tricks.sliding_window_view(_padded(x, padding, fill), (span_h, span_w), axis=(2, 3))
    return view[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]]


def _im2col(x, kernel, stride, padding, dilation):
    # [N, C, H, W] -> [C*kh*kw, N*H'*W']: the windows' strided view, copied once in (C, kh, kw, N, H', W') order, so
    # that one BLAS call does the rest with the batch folded in
    view = _windows(x, kernel, stride, padding, dilation)
    n, c, oh, ow, kh, kw = view.shape
    return view.transpose(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, n * oh * ow), oh, ow


def _channel_rows(x):
    # [N, C, ...] -> [C, N*...]: a view where x is channel-major in memory (as a convolution writes it), else a copy
    return x.swapaxes(0, 1).reshape(x.shape[1], -1)


def _conv2d(x, w, b, stride, padding, dilation, groups=1):
    # per group [O/G, C/G*kh*kw] @ [C/G*kh*kw, N*H'*W'] -> [O, N, H', W'] (one batched GEMM over the groups),
    # returned as a [N, O, H', W'] view: its memory stays channel-major for the ops that follow
    cols, oh, ow = _im2col(x, w.shape[2:], stride, padding, dilation)
    o = w.shape[0]
    if groups == 1:
        out = w.reshape(o, -1) @ cols
    else:
        out = np.matmul(w.reshape(groups, o // groups, -1), cols.reshape(groups, -1, cols.shape[1]))
        out = out.reshape(o, -1)
    out += b[:, None]
    return out.reshape(o, x.shape[0], oh, ow).swapaxes(0, 1)


def _conv2d_grad_weight(x, g, stride, padding, dilation, kernel, groups=1):
    # g [O, N*H'*W'] @ cols^T per group: [O, C/G, kh, kw]
    cols, _, _ = _im2col(x, kernel, stride, padding, dilation)
    o = g.shape[1]
    grads = _channel_rows(g)
    if groups == 1:
        dw = grads @ cols.T
    else:
        dw = np.matmul(grads.reshape(groups, o // groups, -1), cols.reshape(groups, -1, cols.shape[1]).mT)
    return dw.reshape(o, x.shape[1] // groups, *kernel)


def _conv2d_grad_input(g, w, stride, padding, dilation, input_size, groups=1):
    # each output position sends g * w back to the pixels of its window: W^T g per group (one GEMM), then col2im,
    # one strided add per kernel offset into a channel-major [C, N, H, W] buffer
    n, o, oh, ow = g.shape
    _, cg, kh, kw = w.shape
    c = cg * groups
    top, left, bottom, right = padding
    grads = _channel_rows(g)
    if groups == 1:
        cols = w.reshape(o, -1).T @ grads
    else:
        cols = np.matmul(w.reshape(groups, o // groups, -1).mT, grads.reshape(groups, o // groups, -1))
    cols = cols.reshape(c, kh, kw, n, oh, ow)
    dx = np.zeros((c, n, input_size[0] + top + bottom, input_size[1] + left + right), dtype=g.dtype)
    for i in range(kh):
        for j in range(kw):
            r, s = i * dilation[0], j * dilation[1]
            dx[:, :, r : r + stride[0] * oh : stride[0], s : s + stride[1] * ow : stride[1]] += cols[:, i, j]
    return dx[:, :, top : top + input_size[0], left : left + input_size[1]].swapaxes(0, 1)


def _resize_taps(n_in, n_out, scale, mode, coordinates, nearest):
    # per output position o, (i0, i1, w0, w1): it reads w0 x[i0] + w1 x[i1] (ONNX Resize, in double precision)
    import math

    taps = []
    for o in range(n_out):
        if coordinates == "align_corners":
            x = 0.0 if n_out == 1 else o * (n_in - 1) / (n_out - 1)
        elif coordinates == "asymmetric":
            x = o / scale
        elif coordinates == "pytorch_half_pixel" and n_out == 1:
            x = 0.0
        else:  # half_pixel, pytorch_half_pixel
            x = (o + 0.5) / scale - 0.5
        if mode == "nearest":
            rounded = {"round_prefer_floor": math.ceil(x - 0.5), "round_prefer_ceil": math.floor(x + 0.5),
                       "floor": math.floor(x), "ceil": math.ceil(x)}[nearest]
            i = min(max(rounded, 0), n_in - 1)
            taps.append((i, i, 1.0, 0.0))
        else:
            x = min(max(x, 0.0), n_in - 1.0)
            i0 = math.floor(x)
            taps.append((i0, min(i0 + 1, n_in - 1), 1.0 - (x - i0), x - i0))
    return taps


def _resize_matrix(n_in, n_out, scale, mode, coordinates, nearest, dtype):
    # the interpolation matrix A [n_out, n_in] of one axis
    a = np.zeros((n_out, n_in))
    for o, (i0, i1, w0, w1) in enumerate(_resize_taps(n_in, n_out, scale, mode, coordinates, nearest)):
        a[o, i0] += w0
        a[o, i1] += w1
    return a.astype(dtype)


def _resize(x, size, scale, mode, coordinates, nearest):
    # y = A_h x A_w^T per image plane
    a_h, a_w = (_resize_matrix(x.shape[2 + i], size[i], scale[i], mode, coordinates, nearest, x.dtype)
                for i in range(2))
    return np.matmul(np.matmul(a_h, x), a_w.T)


def _resize_grad(g, size, scale, mode, coordinates, nearest, input_size):
    # the transpose: A_h^T g A_w
    a_h, a_w = (_resize_matrix(input_size[i], size[i], scale[i], mode, coordinates, nearest, g.dtype)
                for i in range(2))
    return np.matmul(np.matmul(a_h.T, g), a_w)


def _window_views(x, kernel, stride, oh, ow):
    # one strided view [N, C, H', W'] per kernel offset (i, j), in row-major order
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            yield i, j, x[:, :, i : i + stride[0] * oh : stride[0], j : j + stride[1] * ow : stride[1]]


def _pool_size(size, kernel, stride):
    return (size[0] - kernel[0]) // stride[0] + 1, (size[1] - kernel[1]) // stride[1] + 1


def _max_pool2d(x, kernel, stride, padding):
    # the elementwise maximum of the kh*kw strided views: a few passes over output-sized arrays, in x's memory order
    x = _padded(x, padding, -np.inf)
    views = [view for _, _, view in _window_views(x, kernel, stride, *_pool_size(x.shape[2:], kernel, stride))]
    if len(views) == 1:
        return views[0].copy(order="K")
    out = np.maximum(views[0], views[1])
    for view in views[2:]:
        np.maximum(out, view, out=out)
    return out


def _max_pool2d_grad(x, g, kernel, stride, padding):
    # the gradient goes to the first maximum of each window (row-major order, as the forward's first match): each
    # kernel offset in turn takes the gradient still unclaimed (`rest`) where it holds the maximum; every array is in
    # x's memory order, and masks multiply (np.where and np.copyto(where=) are several times slower)
    top, left, bottom, right = padding
    x = _padded(x, padding, -np.inf)
    oh, ow = g.shape[2:]
    y = _max_pool2d(x, kernel, stride, (0, 0, 0, 0))
    dx = np.zeros_like(x, dtype=g.dtype)
    overlap = stride[0] < kernel[0] or stride[1] < kernel[1]  # else each pixel is in one window at most
    rest = np.empty_like(y, dtype=g.dtype)  # in y's memory order, which is x's
    rest[...] = g
    hit, unclaimed = np.empty_like(y, dtype=bool), np.empty_like(y, dtype=bool)
    last = kernel[0] * kernel[1] - 1
    for k, (i, j, view) in enumerate(_window_views(x, kernel, stride, oh, ow)):
        np.equal(view, y, out=hit)
        target = dx[:, :, i : i + stride[0] * oh : stride[0], j : j + stride[1] * ow : stride[1]]
        if overlap:
            target += rest * hit
        else:
            np.multiply(rest, hit, out=target)
        if k < last:
            rest *= np.logical_not(hit, out=unclaimed)
    return dx[:, :, top : dx.shape[2] - bottom, left : dx.shape[3] - right]


def _avg_pool2d(x, kernel, stride, padding):
    # the sum of the kh*kw strided views, divided by the real pixels each window covers
    x = _padded(x, padding)
    views = [view for _, _, view in _window_views(x, kernel, stride, *_pool_size(x.shape[2:], kernel, stride))]
    total = views[0].copy(order="K") if len(views) == 1 else np.add(views[0], views[1])
    for view in views[2:]:
        total += view
    size = (x.shape[2] - padding[0] - padding[2], x.shape[3] - padding[1] - padding[3])
    return total / _pool_counts(size, kernel, stride, padding, x.dtype)


def _pool_counts(size, kernel, stride, padding, dtype):
    # how many real (unpadded) pixels each window covers
    ones = np.ones((1, 1, *size), dtype=dtype)
    return _windows(ones, kernel, stride, padding, (1, 1)).sum(axis=(4, 5))


def _avg_pool2d_grad(g, kernel, stride, padding, input_size):
    # each window's share of its gradient, added to its pixels: one strided add per kernel offset (a plain copy where
    # windows do not overlap), in g's memory order
    top, left, bottom, right = padding
    n, c, oh, ow = g.shape
    share = g / _pool_counts(input_size, kernel, stride, padding, g.dtype)
    dx = np.zeros_like(g, shape=(n, c, input_size[0] + top + bottom, input_size[1] + left + right))
    overlap = stride[0] < kernel[0] or stride[1] < kernel[1]
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            target = dx[:, :, i : i + stride[0] * oh : stride[0], j : j + stride[1] * ow : stride[1]]
            if overlap:
                target += share
            else:
                np.copyto(target, share)
    return dx[:, :, top : top + input_size[0], left : left + input_size[1]]


def _gather(table, ids):
    _check_ids(ids, table.shape[0], "id")
    return table[ids]


def _scatter_add(ids, updates, rows):
    out = np.zeros((rows, *updates.shape[ids.ndim :]), dtype=updates.dtype)
    np.add.at(out, ids.reshape(-1), updates.reshape(-1, *updates.shape[ids.ndim :]))
    return out


def _random_uniform_like(x, key, salt):
    # a counter-based hash of (key, salt, element index) in 32-bit arithmetic (see bmc/ops/random.py): every backend
    # computes the same numbers, so a dropout mask is identical in NumPy, ONNX and CUDA
    m = np.uint64(0xFFFFFFFF)
    i = np.arange(x.size, dtype=np.uint64)
    base = ((int(key) & 0xFFFFFFFF) * 0x85EBCA77 + salt * 0xC2B2AE3D) & 0xFFFFFFFF
    h = (i * np.uint64(0x9E3779B1) + np.uint64(base)) & m
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x7FEB352D)) & m
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x846CA68B)) & m
    h ^= h >> np.uint64(16)
    return ((h >> np.uint64(8)).astype(x.dtype) * x.dtype.type(1.0 / 16777216)).reshape(x.shape)


def _causal_mask(scores, fill):
    t = scores.shape[-1]
    later = np.triu(np.ones((t, t), dtype=bool), k=1)
    return np.where(later, scores.dtype.type(fill), scores)


def _layer_norm(x, gamma, beta, eps):
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=-1, keepdims=True)
    return centered / np.sqrt(var + eps) * gamma + beta


def _row_means(a, b):
    # mean(a * b) along each row of two [C, M] arrays: one BLAS dot per row, no [C, M] temporary (float16 through the
    # product, accumulated in float32 as np.mean does)
    if a.dtype in (np.float32, np.float64):
        return np.vecdot(a, b) / a.dtype.type(a.shape[1])
    return (a * b).mean(axis=1)


def _batch_norm_train(x, gamma, beta, eps):
    # y = (x - mean) * scale + beta per channel, over [C, N*...] rows (a view of a convolution's output); centering
    # first keeps the precision of inputs whose mean is large against their spread (x * scale - mean * scale would
    # cancel)
    rows = _channel_rows(x)
    mean = rows.mean(axis=1)
    y = rows - mean[:, None]
    var = _row_means(y, y)
    scale = gamma / np.sqrt(var + eps)
    y *= scale[:, None]
    y += beta[:, None]
    return y.reshape(x.shape[1], x.shape[0], *x.shape[2:]).swapaxes(0, 1), mean, var


def _batch_norm_train_grad(x, g, gamma, mean, var, eps):
    # dx = gamma inv (g - mean(g) - xhat mean(g xhat)) per channel, from sum(g) and sum(g xhat), as PyTorch and
    # the decomposition order it: centered before the scale gamma inv, which is large where a channel barely varies
    # (1 / sqrt(eps) for a constant one), so dx still sums to zero there (scaling first left 1e-3 in float32)
    rows, grads = _channel_rows(x), _channel_rows(g)
    count = rows.shape[1]
    inv = 1 / np.sqrt(var + eps)
    centered = rows - mean[:, None]
    dbeta = grads.sum(axis=1)
    mean_g_xhat = _row_means(grads, centered) * inv
    dx = grads - (dbeta / count)[:, None]
    centered *= (inv * mean_g_xhat)[:, None]  # xhat mean(g xhat)
    dx -= centered
    dx *= (gamma * inv)[:, None]
    return dx.reshape(x.shape[1], x.shape[0], *x.shape[2:]).swapaxes(0, 1), mean_g_xhat * count, dbeta
