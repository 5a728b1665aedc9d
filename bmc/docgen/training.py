"""The reference entries of initializers (bmc/init.py), train settings (bmc/train/config.py), optimizers, schedules,
metrics and the data sets known by name (bmc/data). A name without an entry here fails `python -m bmc.docgen` and
tests/test_docs.py."""

from __future__ import annotations

from bmc.docgen.entry import Entry

# an initializer's example is what follows `~` in `param W: f32[64, 32] ~ ...` (or a whole model body)
INITIALIZERS: dict[str, Entry] = {
    "zeros": Entry("Every value 0 (biases by default).", "zeros"),
    "ones": Entry("Every value 1 (normalization scales).", "ones"),
    "constant": Entry("Every value `value`.", "constant(0.1)"),
    "uniform": Entry("Uniform in [low, high] (low at most high).", "uniform(low = -0.1, high = 0.1)"),
    "normal": Entry("Normal (Gaussian) with mean `mean` and standard deviation `std` (at least 0).",
                    "normal(std = 0.01)"),
    "glorot_uniform": Entry("Glorot (Xavier) uniform: U(-l, l) with l = √(6 / (fan_in + fan_out)); Keras's default "
                            "for weights and bmc's.", "glorot_uniform"),
    "glorot_normal": Entry("Glorot (Xavier) normal: mean 0, standard deviation √(2 / (fan_in + fan_out)).",
                           "glorot_normal"),
    "he_normal": Entry("He (Kaiming) normal: mean 0, standard deviation √(2 / fan_in), for ReLU layers.", "he_normal"),
    "he_uniform": Entry("He (Kaiming) uniform: U(-l, l) with l = √(6 / fan_in).", "he_uniform"),
    "orthogonal": Entry("A (semi-)orthogonal matrix times `gain` (Saxe et al.), as Keras initializes recurrent "
                        "weights: the default `recurrent_init` of rnn, lstm and gru; ranks above 2 are flattened "
                        "to [shape[0], the rest].", "orthogonal(gain = 1.0)"),
    "sinusoidal": Entry("The fixed sine and cosine table [positions, width] of \"Attention Is All You Need\" (what "
                        "sinusoidal_positions adds), for a 2-D parameter.", "sinusoidal"),
}

FANS = ("Fans: a dense weight [in, out] has fan_in = in and fan_out = out; a convolution kernel [filters, channels, "
        "kh, kw] has fan_in = channels·kh·kw and fan_out = filters·kh·kw; recurrent weights count as Keras's "
        "[in, gates·hidden] kernels.")

OPTIMIZERS: dict[str, Entry] = {
    "gd": Entry("Gradient descent, p ← p - lr·g; the batch defaults to the whole training set (full-batch).",
                "optimizer = gd(lr = 0.1)\nepochs    = 200"),
    "sgd": Entry("Stochastic gradient descent with momentum as PyTorch: v ← μv + g, p ← p - lr·v (Nesterov: "
                 "p ← p - lr·(g + μv)).", "optimizer = sgd(lr = 0.1, momentum = 0.9, nesterov = true)"),
    "adam": Entry("Adam with Keras's defaults (eps = 1e-7) in PyTorch's bias-corrected form.",
                  "optimizer = adam(1e-3)"),
    "adamw": Entry("Adam with decoupled weight decay (Loshchilov and Hutter), PyTorch's defaults; it decays weight "
                   "matrices, kernels and embeddings, not biases or normalization scales.",
                   "optimizer = adamw(lr = 2e-3, weight_decay = 0.1)"),
}

SCHEDULES: dict[str, Entry] = {
    "constant": Entry("The optimizer's learning rate throughout, after an optional linear warm-up.",
                      "schedule = constant(warmup = 10)"),
    "cosine": Entry("A linear warm-up, then a cosine decay from lr to final·lr at the last step.",
                    "schedule = cosine(warmup = 100, final = 0.1)\nsteps    = 1000"),
    "step": Entry("After the warm-up, lr·gamma^k, where k counts the `every` steps taken since.",
                  "schedule = step(every = 500, gamma = 0.5)"),
}

METRICS: dict[str, Entry] = {
    "accuracy": Entry("The fraction of samples whose class (the argmax of class scores, or a probability "
                      "thresholded at 0.5) equals the label.", "metrics = accuracy"),
    "precision": Entry("Macro precision: the unweighted mean over classes of tp / predicted, as scikit-learn's "
                       "average=\"macro\", zero_division=0.", "metrics = accuracy, precision"),
    "recall": Entry("Macro recall: the unweighted mean over classes of tp / occurring.", "metrics = recall"),
    "f1": Entry("Macro F1: the mean of each class's F1 (not the F1 of macro precision and recall).",
                "metrics = accuracy, recall, f1"),
    "mse": Entry("The mean squared error of a regression's outputs.", "metrics = mse, mae", base="regression"),
    "mae": Entry("The mean absolute error of a regression's outputs.", "metrics = mae", base="regression"),
    "perplexity": Entry("exp(the mean cross-entropy): a language model's score on validation text.",
                        "model lm(vocab = 96, width = 32) {\n"
                        "    input  tokens: i64[N, T]\n"
                        "    target next: i64[N, T]\n\n"
                        "    logits = dense(lstm(embedding(tokens, vocab, width), width, return_sequences = true), "
                        "vocab)\n"
                        "    output probs = softmax(logits)\n"
                        "    loss = cross_entropy(logits, next)\n"
                        "}\n\n"
                        "train lm {\n"
                        "    data    = \"text:/usr/share/common-licenses/GPL-3\"\n"
                        "    steps   = 500\n"
                        "    metrics = perplexity\n"
                        "}"),
}

# a setting's entry, and the `bmc train` flags that override it (tests/test_docs.py checks that they exist)
SETTINGS: dict[str, Entry] = {
    "data": Entry("The data set: a name below, or a path in quotes (an IDX directory, a folder of images per "
                  "class, a .npz, a .csv, or \"text:FILE[,FILE...]\").", "data = digits"),
    "target": Entry("A CSV file's target column (default: the last).", "data   = \"houses.csv\"\ntarget = \"price\"",
                    base="regression"),
    "optimizer": Entry("The optimizer and its settings (below); `--optimizer NAME` starts from that optimizer's "
                       "defaults and `--lr` sets its learning rate.", "optimizer = sgd(lr = 0.05, momentum = 0.9)"),
    "epochs": Entry("Passes over the training set (at least 1; default 5).", "epochs = 20"),
    "steps": Entry("A step budget instead of epochs (the epochs then only bound the passes over the data).",
                   "steps = 2000"),
    "batch": Entry("Samples a step (default 64), or `full` for the whole training set.", "batch = full"),
    "seed": Entry("The seed of initialization, batch order, dropout and augmentation: 0 to 2**32 - 1 (default 0).",
                  "seed = 1"),
    "metrics": Entry("What each epoch reports besides the loss (below; default accuracy).",
                     "metrics = accuracy, f1"),
    "l1": Entry("An L1 penalty of this strength on every weight matrix (not biases).", "l1 = 1e-5"),
    "l2": Entry("An L2 penalty of this strength on every weight matrix (not biases).", "l2 = 1e-4"),
    "schedule": Entry("The learning-rate schedule (below; default constant).", "schedule = cosine(warmup = 100)"),
    "clip": Entry("Clips the gradients' global norm to this value (at least 0).", "clip = 1.0"),
    "validation": Entry("Holds out this fraction [0, 1) of the training set and reports its loss and metrics "
                        "each epoch.", "validation = 0.2"),
    "normalize": Entry("Standardizes the input: `true` with the training set's mean and std, or `mean, std` of "
                       "the scaled values; part of the build's preprocessing contract.", "normalize = true"),
    "augment": Entry("Random shifts by up to n pixels (filled with black) and horizontal flips of image batches, "
                     "seeded.", "augment = shift(2), flip"),
    "sequence": Entry("The window length of text batches (default: the input's length or the model's `context`).",
                      "sequence = 64"),
    "checkpoint": Entry("A checkpoint every n epochs (or `unit = steps`), keeping the last `keep` (default 3) and "
                        "with `best = COLUMN` the best too.",
                        "validation = 0.2\ncheckpoint = every(1, keep = 3, best = val_loss)"),
    "early_stop": Entry("Stops when a column (val_loss by default) has not improved by more than min_delta for "
                        "`patience` epochs, and restores the best epoch's parameters.",
                        "validation = 0.2\nearly_stop = patience(5, on = val_accuracy, min_delta = 0)"),
    "test": Entry("When the test set is scored: `end` (once, after the last epoch; the default) or `every_epoch`.",
                  "test = every_epoch"),
    "freeze": Entry("The parameters training leaves as they are: statement or layer names (everything under them) "
                    "and, in quotes, parameter names or glob patterns as `bmc check` lists them. A frozen parameter "
                    "is a constant of the train step: not differentiated, no optimizer state, never updated.",
                    "model finetune {\n"
                    "    input  image: f32[N, 64]\n"
                    "    target label: i64[N]\n"
                    "    stem   = relu(dense(image, 32))\n"
                    "    logits = dense(stem, 10)\n"
                    "    output probs = softmax(logits)\n"
                    "    loss = cross_entropy(logits, label)\n"
                    "}\n\n"
                    "train finetune {\n"
                    "    freeze = stem, \"logits.b\"\n"
                    "}",
                    details="A pattern that matches no parameter is an error. A batch norm's running statistics "
                            "that a pattern covers (`freeze = bn1` covers `bn1.running_mean`) keep their values; "
                            "those no pattern covers go on updating. `bmc check` marks frozen parameters, and the "
                            "ONNX train step (`bmc build --target onnx --train`) takes them as inputs it does not "
                            "update. With `bmc train --params FILE.npz` it fine-tunes given parameters "
                            "([Training runs](training.md#fine-tuning-from-given-parameters))."),
}
FLAGS: dict[str, tuple[str, ...]] = {
    "data": ("--data",), "target": ("--target-column",), "optimizer": ("--optimizer", "--lr"),
    "epochs": ("--epochs",), "steps": ("--steps",), "batch": ("--batch",), "seed": ("--seed",),
    "checkpoint": ("--checkpoint-every", "--keep-checkpoints"), "early_stop": ("--early-stop", "--early-stop-on"),
    "test": ("--test-every-epoch",), "freeze": ("--freeze",),
}

DATASETS: dict[str, Entry] = {
    "digits": Entry("scikit-learn's bundled 8x8 handwritten digits: 1,797 samples of 64 pixels 0..16 (scale 1/16), "
                    "10 classes, a stratified 80/20 split; no download.", "data = digits"),
    "fashion_mnist": Entry("Fashion-MNIST from the Debian package (`apt-get install dataset-fashion-mnist`): 60,000 "
                           "train and 10,000 test images 28x28, uint8 pixels 0..255 (scale 1/255), 10 classes.",
                           "data = fashion_mnist", base="images"),
    "breast_cancer": Entry("scikit-learn's bundled breast-cancer set: 569 samples of 30 standardized features, two "
                           "classes.",
                           "model logistic {\n"
                           "    input  x: f32[N, 30]\n"
                           "    target y: i64[N]\n"
                           "    z = dense(x, 1)\n"
                           "    output probability = sigmoid(z)\n"
                           "    loss = binary_cross_entropy(z, reshape(y, [N, 1]))\n"
                           "}\n\n"
                           "train logistic {\n"
                           "    data    = breast_cancer\n"
                           "    metrics = accuracy, f1\n"
                           "}"),
    "diabetes": Entry("scikit-learn's bundled diabetes regression: 442 samples of 10 standardized features and a "
                      "standardized float target.",
                      "model linear {\n"
                      "    input  x: f32[N, 10]\n"
                      "    target y: f32[N]\n"
                      "    output prediction = dense(x, 1)\n"
                      "    loss = mse(prediction, y)\n"
                      "}\n\n"
                      "train linear {\n"
                      "    data    = diabetes\n"
                      "    metrics = mse, mae\n"
                      "}"),
    "mnist": Entry("Not bundled anywhere bmc can rely on: the error names the IDX files to download; pass their "
                   "directory as the data (`data = \"mnist/\"`), or use fashion_mnist, which has the same format.",
                   "data = \"mnist/\"", base="images"),
}
