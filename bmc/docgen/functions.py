"""The reference entries of the functions and layers a `.bm` expression can call (bmc/frontend/builtins.py,
bmc/frontend/layers.py, and `repeat`), grouped as the reference shows them. A builtin without an entry here fails
`python -m bmc.docgen` and tests/test_docs.py."""

from __future__ import annotations

from bmc.docgen.entry import Entry

# group title -> the builtins it shows, in order; the elementwise group also takes every unary op (bmc.ops) by itself
GROUPS: dict[str, tuple[str, ...]] = {
    "Elementwise": ("maximum", "minimum", "where", "cast"),
    "Reductions": ("sum", "mean", "max"),
    "Shapes": ("reshape", "flatten", "transpose", "concat", "matmul", "one_hot"),
    "Layers": ("dense", "softmax", "log_softmax"),
    "Images (NCHW)": ("conv2d", "conv_transpose2d", "max_pool", "avg_pool", "global_avg_pool", "resize"),
    "Normalization and dropout": ("batch_norm", "layer_norm", "dropout"),
    "Sequences": ("embedding", "learned_positions", "sinusoidal_positions", "rnn", "lstm", "gru", "attention",
                  "causal_mask"),
    "Stacks": ("repeat",),
    "Losses": ("cross_entropy", "binary_cross_entropy", "mse"),
    "Penalties": ("l1", "l2"),
}
UNARY_GROUP = "Elementwise"

CLASSIFIER = """\
input  image: f32[N, 64]
target label: i64[N]
"""


FUNCTIONS: dict[str, Entry] = {
    # ---- elementwise -------------------------------------------------------------------------------------------
    "abs": Entry("The absolute value |x|, elementwise.", "input x: f32[N, 8]\noutput y = abs(x)"),
    "clip": Entry("x limited to [min, max], elementwise, as ONNX Clip and torch.clamp; either bound may be left out, "
                  "not both. The gradient passes where min ≤ x ≤ max, at the bounds too (as torch.clamp's), and is 0 "
                  "elsewhere.", "input x: f32[N, 8]\noutput y = clip(x, min = -1, max = 1)\n"
                  "output relu6 = clip(x, min = 0, max = 6)\noutput capped = clip(x, max = 1)",
                  omitted={"min": "no lower bound", "max": "no upper bound"}),
    "erf": Entry("The error function 2/√π ∫₀ˣ e^(-t²) dt, elementwise (ONNX Erf, torch.erf); the NumPy backend "
                 "computes it in float64 by Cody's rational approximations, without SciPy.",
                 "input x: f32[N, 8]\noutput y = 0.5 * x * (1 + erf(0.7071067811865476 * x))   # exact GELU"),
    "exp": Entry("e to the power x, elementwise.", "input x: f32[N, 8]\noutput y = exp(x)"),
    "gelu": Entry("GELU in its tanh form, 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))), as ONNX "
                  "Gelu(approximate=\"tanh\") and GPT-2; approximate = \"none\" computes it exactly, "
                  "0.5 x (1 + erf(x / √2)), as PyTorch's nn.GELU() and ONNX's Gelu by default.",
                  "input x: f32[N, 8]\noutput y = gelu(x)\noutput exact = gelu(x, approximate = \"none\")"),
    "hard_sigmoid": Entry("max(0, min(1, alpha · x + beta)), elementwise, as ONNX HardSigmoid (PyTorch's "
                          "Hardsigmoid is alpha = 1/6); the gradient is alpha strictly inside the ramp, 0 elsewhere.",
                          "input x: f32[N, 8]\noutput y = hard_sigmoid(x)\n"
                          "output torch_like = hard_sigmoid(x, alpha = 1 / 6, beta = 0.5)"),
    "hard_swish": Entry("x · max(0, min(1, x/6 + 1/2)), elementwise, as ONNX HardSwish and PyTorch's hardswish "
                        "(whose gradient it has: 0 up to x = -3, x/3 + 1/2 between, 1 from x = 3 on).",
                        "input x: f32[N, 8]\noutput y = hard_swish(x)"),
    "log": Entry("The natural logarithm, elementwise: log(0) is -inf and a negative number gives nan.",
                 "input x: f32[N, 8]\noutput y = log(1 + exp(x))   # softplus"),
    "leaky_relu": Entry("x where x > 0 and alpha · x elsewhere, elementwise, as ONNX LeakyRelu and PyTorch's "
                        "leaky_relu (the gradient at 0 is alpha).",
                        "input x: f32[N, 8]\noutput y = leaky_relu(x, alpha = 0.1)"),
    "relu": Entry("max(x, 0), elementwise.", "input x: f32[N, 8]\noutput y = relu(x)"),
    "sigmoid": Entry("The logistic function 1 / (1 + e^-x), elementwise.", "input x: f32[N, 8]\noutput y = sigmoid(x)"),
    "sign": Entry("-1, 0 or 1 by the sign of each value (its gradient is zero).",
                  "input x: f32[N, 8]\noutput y = sign(x)"),
    "sqrt": Entry("The square root, elementwise (a negative number gives nan).",
                  "input x: f32[N, 8]\noutput rms = sqrt(mean(x ** 2, axis = 1))"),
    "tanh": Entry("The hyperbolic tangent, elementwise.", "input x: f32[N, 8]\noutput y = tanh(x)"),
    "maximum": Entry("The larger of two operands, elementwise with broadcasting; either may be a number.",
                     "input x: f32[N, 8]\noutput y = maximum(x, 0.1 * x)   # leaky ReLU"),
    "minimum": Entry("The smaller of two operands, elementwise with broadcasting; either may be a number.",
                     "input x: f32[N, 8]\noutput y = minimum(maximum(x, -1), 1)   # clip to [-1, 1]"),
    "where": Entry("Picks x where the bool condition holds and y elsewhere, with broadcasting; x or y may be a "
                   "number.", "input x: f32[N, 8]\noutput y = where(x > 0, x, 0)"),
    "cast": Entry("Converts to another dtype: f32, f64, i32, i64 or bool.",
                  "input x: f32[N, 8]\noutput positive = cast(x > 0, f32)"),
    # ---- reductions --------------------------------------------------------------------------------------------
    "sum": Entry("The sum over the given axes (all of them by default); keepdims keeps them as size 1.",
                 "input x: f32[N, 8]\noutput total = sum(x, axis = 1)\noutput everything = sum(x)",
                 omitted={"axis": "every axis"}),
    "mean": Entry("The mean over the given axes (all of them by default); keepdims keeps them as size 1.",
                  "input x: f32[N, 8]\noutput centered = x - mean(x, axis = 1, keepdims = true)",
                  omitted={"axis": "every axis"}),
    "max": Entry("The largest value over the given axes (all of them by default); keepdims keeps them as size 1. "
                 "For the elementwise maximum of two tensors, see `maximum`.",
                 "input x: f32[N, 8]\noutput peak = max(x, axis = 1)", omitted={"axis": "every axis"}),
    # ---- shapes ------------------------------------------------------------------------------------------------
    "reshape": Entry("The same values in another shape; one dim may be -1 (inferred) and dims may be symbols "
                     "such as N.", "input image: f32[N, 64]\noutput grid = reshape(image, [N, 1, 8, 8])"),
    "flatten": Entry("Keeps the dims before `start` and merges the rest into one: [N, C, H, W] becomes "
                     "[N, C·H·W] with the default start = 1.",
                     "input image: f32[N, 3, 8, 8]\noutput flat = flatten(image)\noutput rows = flatten(image, "
                     "start = 2)"),
    "transpose": Entry("Permutes the axes by `perm`; without it, swaps the last two.",
                       "input x: f32[N, 3, 5]\noutput swapped = transpose(x)\noutput moved = transpose(x, [2, 0, 1])",
                       omitted={"perm": "the last two axes swapped"}),
    "concat": Entry("Joins a list of tensors along an axis (the last by default).",
                    "input a: f32[N, 3]\ninput b: f32[N, 5]\noutput ab = concat([a, b], axis = 1)"),
    "matmul": Entry("The matrix product with NumPy's batching rules; `x @ y` is the same.",
                    "input a: f32[N, 4, 8]\ninput b: f32[N, 8, 3]\noutput y = matmul(a, b)"),
    "one_hot": Entry("Integer class labels as float32 rows of zeros with a one at each label: [N] becomes "
                     "[N, depth].", "input label: i64[N]\noutput y = one_hot(label, 10)"),
    # ---- layers ------------------------------------------------------------------------------------------------
    "dense": Entry("A fully connected layer x @ W + b owning W [in, units] and b [units], named after the "
                   "statement (h.W, h.b); Keras's initial values by default.",
                   "input x: f32[N, 64]\nh = relu(dense(x, 32, init = he_normal))\n"
                   "output y = dense(h, 10, bias = false)"),
    "softmax": Entry("exp(x) / sum(exp(x)) along an axis (the last by default), computed stably.",
                     "input x: f32[N, 64]\noutput probs = softmax(dense(x, 10))"),
    "log_softmax": Entry("log(softmax(x)) along an axis, computed stably (x - logsumexp(x)).",
                         "input x: f32[N, 64]\noutput log_probs = log_softmax(dense(x, 10))"),
    # ---- images ------------------------------------------------------------------------------------------------
    "conv2d": Entry("A 2-D convolution over NCHW images owning W [filters, channels / groups, kh, kw] and b "
                    "[filters]; kernel, stride and dilation are one number or [height, width]; padding is \"valid\" "
                    "(none), \"same\" (output size ceil(input / stride)), pixels on every side, [height, width] or "
                    "[top, left, bottom, right]; `groups` splits channels and filters into groups convolved apart "
                    "(groups = channels: depthwise), as ONNX Conv's group and PyTorch's groups.",
                    "input image: f32[N, 4, 8, 8]\nh = relu(conv2d(image, 16, 3, padding = \"same\"))\n"
                    "d = conv2d(h, 16, 3, padding = [1, 1], groups = 16)   # depthwise\n"
                    "output y = conv2d(d, 8, [3, 1], stride = 2, padding = [0, 1, 1, 0], groups = 2, bias = false)"),
    "conv_transpose2d": Entry("A transposed convolution (ONNX ConvTranspose, PyTorch ConvTranspose2d) owning W "
                              "[channels, filters / groups, kh, kw] and b [filters]: the gradient of conv2d with "
                              "respect to its input, each output size stride · (H - 1) + output_padding + "
                              "dilation · (kernel - 1) + 1 - padding before and after; padding is pixels, "
                              "[height, width] or [top, left, bottom, right], output_padding (smaller than the "
                              "stride) one number or [height, width].",
                              "input image: f32[N, 8, 4, 4]\n"
                              "output up = conv_transpose2d(image, 4, 3, stride = 2, padding = 1, output_padding = 1)\n"
                              "output grouped = conv_transpose2d(image, 4, [2, 3], groups = 2, bias = false)"),
    "max_pool": Entry("The maximum of each window of an NCHW image; the stride defaults to the window's size, "
                      "padding is \"valid\", \"same\" or pixels (smaller than the window).",
                      "input image: f32[N, 3, 8, 8]\noutput halved = max_pool(image)\n"
                      "output same = max_pool(image, size = 3, stride = 1, padding = 1)",
                      omitted={"stride": "the window's size"}),
    "avg_pool": Entry("The mean of each window of an NCHW image; the stride defaults to the window's size, padding "
                      "is \"valid\", \"same\" or pixels (smaller than the window); the mean is over the real pixels "
                      "a window covers, not its padding.",
                      "input image: f32[N, 3, 8, 8]\noutput halved = avg_pool(image)\n"
                      "output same = avg_pool(image, size = 3, stride = 1, padding = \"same\")",
                      omitted={"stride": "the window's size"}),
    "resize": Entry("Resizes the height and width of NCHW images exactly as ONNX Resize: by `scale` (one number "
                    "or [height, width]; the output is floor(H · scale)) or to `size`; `mode` \"nearest\" or "
                    "\"linear\" (bilinear); `coordinates` is ONNX's coordinate_transformation_mode (\"half_pixel\", "
                    "\"pytorch_half_pixel\", \"align_corners\", \"asymmetric\") and `nearest` its nearest_mode "
                    "(\"round_prefer_floor\", \"round_prefer_ceil\", \"floor\", \"ceil\"). PyTorch's "
                    "nn.Upsample(scale_factor = s) is resize(x, s, coordinates = \"asymmetric\", nearest = "
                    "\"floor\"); bilinear is mode = \"linear\" (with coordinates = \"align_corners\" for "
                    "align_corners = True).",
                    "input image: f32[N, 3, 8, 8]\noutput doubled = resize(image, 2)\n"
                    "output smooth = resize(image, size = [12, 16], mode = \"linear\", coordinates = "
                    "\"align_corners\")",
                    omitted={"scale": "given by size", "size": "given by scale"}),
    "global_avg_pool": Entry("The mean of each channel: [N, C, H, W] becomes [N, C].",
                             "input image: f32[N, 1, 8, 8]\noutput features = global_avg_pool(conv2d(image, 16, 3))"),
    # ---- normalization and dropout -----------------------------------------------------------------------------
    "batch_norm": Entry("Normalizes each channel (axis 1) by the batch's statistics in training and by running "
                        "statistics in inference; running = momentum · running + (1 - momentum) · batch (PyTorch's "
                        "momentum 0.1 is 0.9 here). Owns gamma, beta and the untrained running_mean, running_var.",
                        "input image: f32[N, 1, 8, 8]\n"
                        "output y = relu(batch_norm(conv2d(image, 16, 3), momentum = 0.9))"),
    "layer_norm": Entry("Normalizes over the last axis with a learned scale gamma (ones) and shift beta (zeros).",
                        "input x: f32[N, T, 32]\noutput y = layer_norm(x, eps = 1e-5)"),
    "dropout": Entry("In training, zeros each value with probability `rate` and scales the rest by 1 / (1 - rate), "
                     "from a counter-based hash of the step's key (every backend draws the same mask); the identity "
                     "in inference.", "input x: f32[N, 64]\noutput h = dropout(relu(dense(x, 32)), 0.5)"),
    # ---- sequences ---------------------------------------------------------------------------------------------
    "embedding": Entry("Rows of a learned table [vocab, dim] looked up by integer ids: [N, T] becomes [N, T, dim].",
                       "input ids: i64[N, T]\noutput vectors = embedding(ids, 100, 16)"),
    "learned_positions": Entry("Adds a learned position table P [max_len, D] to x [N, T, D] (P[:T]); T may be "
                               "symbolic, up to max_len.",
                               "input ids: i64[N, T]\noutput x = learned_positions(embedding(ids, 100, 16), 64)"),
    "sinusoidal_positions": Entry("Adds the fixed sine and cosine encodings of \"Attention Is All You Need\" to "
                                  "x [N, T, D] (T and D static; not trained).",
                                  "input ids: i64[N, 12]\noutput x = sinusoidal_positions(embedding(ids, 100, 16))"),
    "rnn": Entry("An Elman RNN (tanh) over x [N, T, features], in ONNX's formulation: the last hidden state "
                 "[N, hidden], or every step's [N, T, hidden] with return_sequences; bidirectional concatenates "
                 "both directions; reverse runs from the last step to the first (its last state is the one at step "
                 "0; its sequence stays in step order). Owns W, R (recurrent_init, orthogonal by default) and B.",
                 "input rows: f32[N, 8, 8]\noutput h = rnn(rows, 32)"),
    "lstm": Entry("An LSTM over x [N, T, features], ONNX's gate order (i, o, f, c); the same arguments as rnn. "
                  "It compiles to a scan, so T may be symbolic.",
                  "input rows: f32[N, T, 8]\noutput h = lstm(rows, 32, recurrent_init = orthogonal(gain = 1.0))"),
    "gru": Entry("A GRU over x [N, T, features], ONNX's gate order (z, r, h); the same arguments as rnn, and "
                 "reset_after: the reset gate scales the recurrent product (true: PyTorch, Keras, ONNX "
                 "linear_before_reset=1) or the state before it (false: ONNX's default).",
                 "input rows: f32[N, 8, 8]\noutput h = gru(rows, 16, return_sequences = true, bidirectional = true)"),
    "causal_mask": Entry("Attention scores [..., T, T] with every entry above the diagonal (query i, key j > i) set "
                         "to -inf, so that softmax gives later keys no weight: the mask attention(causal = true) "
                         "applies, for attention written out by hand.",
                         "input q: f32[N, T, 16]\ninput k: f32[N, T, 16]\n"
                         "output weights = softmax(causal_mask(q @ transpose(k, [0, 2, 1])))"),
    "attention": Entry("Multi-head self-attention over x [N, T, D]: softmax(q kᵀ / √(D / heads)) v per head, with "
                       "query, key, value and output projections (q, k, v, out), an optional causal mask and "
                       "dropout on the attention weights (training only).",
                       "input x: f32[N, T, 32]\noutput y = x + attention(layer_norm(x), 4, causal = true, "
                       "dropout = 0.1)"),
    "repeat": Entry("Applies a user-defined layer `count` times (1 to 10,000), each copy with its own parameters "
                    "(h.0.*, h.1.*): the first argument of the layer call is the tensor threaded through the copies.",
                    "layer block(x: f32[N, D], hidden: int) {\n"
                    "    return x + dense(relu(dense(layer_norm(x), hidden)), D)\n"
                    "}\n\n"
                    "model stack(depth = 3) {\n"
                    "    input  x: f32[N, 32]\n"
                    "    output h = repeat(depth, block(x, 64))\n"
                    "}"),
    # ---- losses and penalties ----------------------------------------------------------------------------------
    "cross_entropy": Entry("The mean softmax cross-entropy of logits [N, C] (or [N, T, C]) against integer class "
                           "labels or probabilities, computed stably from logits (log-sum-exp).",
                           CLASSIFIER + "logits = dense(image, 10)\noutput probs = softmax(logits)\n"
                           "loss = cross_entropy(logits, label)"),
    "binary_cross_entropy": Entry("The mean sigmoid cross-entropy of logits against 0/1 labels of the same shape "
                                  "(integer or bool labels are cast), computed stably: max(z, 0) - z·y + "
                                  "log(1 + e^-|z|).",
                                  "input  x: f32[N, 30]\ntarget y: i64[N]\nz = dense(x, 1)\n"
                                  "output probability = sigmoid(z)\n"
                                  "loss = binary_cross_entropy(z, reshape(y, [N, 1]))"),
    "mse": Entry("The mean squared error; targets [N] against predictions [N, 1] are reshaped to match.",
                 "input  x: f32[N, 10]\ntarget y: f32[N]\noutput prediction = dense(x, 1)\n"
                 "loss = mse(prediction, y)"),
    "l1": Entry("sum(|x|): add a multiple of it to a loss for an L1 penalty (or set `l1` in the train block for "
                "every weight matrix).",
                "input  x: f32[N, 10]\ntarget y: f32[N]\nparam w: f32[10, 1] ~ zeros\n"
                "output prediction = x @ w\nloss = mse(prediction, y) + 1e-3 * l1(w)"),
    "l2": Entry("sum(x²): add a multiple of it to a loss for an L2 penalty (or set `l2` in the train block for "
                "every weight matrix).",
                "input  x: f32[N, 10]\ntarget y: f32[N]\nparam w: f32[10, 1] ~ zeros\n"
                "output prediction = x @ w\nloss = mse(prediction, y) + 1e-3 * l2(w)"),
}
