"""Making a model and its data agree before training, with errors that name both shapes and the `.bm` line.

A sample shape with the same number of elements as the model's input is reshaped ([28, 28] -> [784]). If the
input's feature dim is a model parameter (`input image: f32[N, features]`), the data sets that parameter, as if
`-D features=64` had been given, unless the user set it explicitly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bmc.data import Dataset
from bmc.diagnostics import BmcError
from bmc.frontend.model_ir import ModelIR
from bmc.frontend.preprocess import Preprocess
from bmc.ir.types import INT_DTYPES, NUMPY_NAMES, TensorType, shape_str
from bmc.ops.losses import CrossEntropy
from bmc.syntax import ast


@dataclass
class Binding:
    defines: dict[str, int]  # model parameters the data sets
    notes: list[str]


def bind_from_data(model: ModelIR, module: ast.Module, data: Dataset, explicit: set[str]) -> Binding:
    """Model parameters to set from the data's sample shape (empty if the shapes already agree)."""
    inputs = model.data_inputs
    if len(inputs) != 1:
        names = [v.name for v in inputs]
        missing = [n for n in names if n not in data.inputs]
        if missing:
            raise BmcError(f"model '{model.name}' has {len(inputs)} inputs ({', '.join(names)}), and {data.name} "
                           f"has no arrays for {', '.join(missing)}", model.span,
                           notes=("give each input its arrays by name in a .npz: np.savez(path, "
                                  + ", ".join(f"{n}_train=..., {n}_test=..." for n in names)
                                  + ", y_train=..., y_test=...)",))
        return Binding({}, [])
    x = inputs[0]
    sample = data.sample_shape
    static = x.type.shape[1:]
    if all(isinstance(d, int) for d in static) and math.prod(static) == math.prod(sample):
        return Binding({}, [])
    decl = next(s for s in module.models[model.name].body if isinstance(s, ast.InputDecl) and s.name == x.name)
    dim_exprs = decl.type.dims[1:]
    free = [(i, e.id) for i, e in enumerate(dim_exprs)
            if isinstance(e, ast.Name) and e.id in model.constants and e.id not in explicit]
    if len(free) == 1 and len(dim_exprs) in (1, len(sample)):
        i, name = free[0]
        others = math.prod(d for j, d in enumerate(static) if j != i)
        total = math.prod(sample)
        if isinstance(others, int) and total % others == 0:
            value = total // others
            note = f"{name} = {value}, from the data ({data.name} samples are {shape_str(sample)})"
            return Binding({name: value}, [note])
    size = static[-1] if static and isinstance(static[-1], int) else 784
    raise BmcError(
        f"{data.name} samples have shape {shape_str(sample)} ({math.prod(sample)} values), but input '{x.name}' is "
        f"{x.type}, which wants samples of shape {shape_str(static)}",
        model.input_spans.get(x.name),
        notes=(f"to let the data set the size, make it a model parameter: model {model.name}(features = {size}) "
               f"with 'input {x.name}: {x.type.dtype}[N, features]'",),
    )


def to_dtype(a: np.ndarray, dtype: str, what: str, span=None) -> np.ndarray:
    """Data in a model input's dtype. Floats given to an integer input (ids, classes) must be whole numbers in range:
    casting 0.3125 to 0 would be a silent wrong result."""
    a = np.asarray(a)
    if dtype in ("i32", "i64", "bool") and a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            sample = a[bad].flat[0]
            raise BmcError(f"{what} is {dtype} (whole numbers such as ids or classes), but the data holds "
                           f"fractional values such as {sample:g}", span,
                           notes=("declare the input f32 if it takes real values, or give it integer data",))
    if dtype in ("i32", "i64") and a.dtype.kind in "iuf" and a.size:
        info = np.iinfo(NUMPY_NAMES[dtype])
        if a.min() < info.min or a.max() > info.max:
            raise BmcError(f"{what} is {dtype}, but the data holds values out of its range "
                           f"({a.min():g} .. {a.max():g})", span)
    return a.astype(NUMPY_NAMES[dtype], copy=False)


def shape_batch(model: ModelIR, data: Dataset) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Train and test feeds {input/target name: array} in the model's shapes and dtypes; the inputs are raw samples
    (the model's prologue scales and standardizes them: see `preprocessing`)."""
    feeds = []
    for split, (xs, ys) in enumerate(((data.x_train, data.y_train), (data.x_test, data.y_test))):
        feed = {}
        for x in model.data_inputs:
            arr = data.inputs[x.name][split] if len(model.data_inputs) > 1 else xs
            feed[x.name] = to_dtype(_shaped(arr, x, model), x.type.dtype, f"input '{x.name}'",
                                    model.input_spans.get(x.name))
        for t in model.targets[:1]:
            feed[t.name] = _target(model, t, ys, data)
        feeds.append(feed)
    return feeds[0], feeds[1]


def _shaped(arr: np.ndarray, x, model: ModelIR) -> np.ndarray:
    want = x.type.shape[1:]
    if all(isinstance(d, int) for d in want) and math.prod(arr.shape[1:]) != math.prod(want):
        raise BmcError(f"the data's samples for input '{x.name}' have shape {shape_str(arr.shape[1:])}, but it is "
                       f"{x.type}", model.input_spans.get(x.name))
    return arr.reshape((len(arr), *want))


def _target(model: ModelIR, t, y: np.ndarray, data: Dataset) -> np.ndarray:
    want = t.type
    if want.dtype in ("i32", "i64") and data.num_classes is None:
        raise BmcError(f"target '{t.name}' is {want} (class indices) but {data.name} is a regression data set",
                       t.span)
    per_sample = want.shape[1:]
    if y.ndim == 2 and tuple(per_sample) == y.shape[1:]:  # a class per position, as the target declares
        return y.astype(NUMPY_NAMES[want.dtype])
    if y.ndim == 2:
        raise BmcError(f"target '{t.name}' is {want}; the data gives a value per position: [n, {y.shape[1]}] "
                       f"(declare it {want.dtype}[N, {y.shape[1]}])", t.span)
    if not all(isinstance(d, int) for d in per_sample) or math.prod(per_sample) != 1:
        raise BmcError(f"target '{t.name}' is {want}; the data gives one value per sample "
                       f"(declare it {want.dtype}[N] or {want.dtype}[N, 1])", t.span)
    return y.reshape((len(y), *per_sample)).astype(NUMPY_NAMES[want.dtype])


def check_task(model: ModelIR, data: Dataset) -> None:
    """The model predicts what the data labels: as many classes as a classification set has (scores [N, C] with
    C = classes, or one probability for two classes; every cross-entropy's logits covering every label, even in a
    model without an output), one number per sample for a regression set. A model without a target (an
    autoencoder) uses the samples alone and is not checked against the labels."""
    if not model.targets:
        return
    k = data.num_classes
    if model.outputs:
        _check_output(model, data)
    if k is not None:
        for node in (n for n in model.graph.nodes if isinstance(n.op, CrossEntropy)):
            logits, labels = node.inputs
            if labels.type.dtype in INT_DTYPES and isinstance(logits.type.shape[-1], int) and logits.type.shape[-1] < k:
                raise BmcError(f"cross_entropy's logits have {logits.type.shape[-1]} classes, but {data.name} has "
                               f"{k} (labels 0 to {k - 1})", node.span,
                               notes=(f"the logits need one column per class: {logits.type.dtype}[N, {k}]",))


def _check_output(model: ModelIR, data: Dataset) -> None:
    name = model.outputs[0]
    out = model.graph.outputs[name]
    wrong = output_mismatch(name, out.type, data)
    if wrong is not None:
        raise BmcError(wrong[0], out.span, notes=(wrong[1],))


def output_mismatch(name: str, t: TensorType, data: Dataset) -> tuple[str, str] | None:
    """Why an output of type `t` cannot be scored against `data`'s labels (message, hint), or None if it can."""
    k = data.num_classes
    per_sample = t.shape[1:]
    if k is not None and data.y_train.ndim == 2:  # a class per position of a sequence: scores [N, T, C]
        positions = data.y_train.shape[1]
        if t.rank == 3 and t.shape[1] in (positions,) and t.shape[2] == k:
            return None
        return (f"output '{name}' is {t}, but {data.name} has a class of {k} per position of {positions}",
                f"the output needs one column per class at every position: {t.dtype}[N, {positions}, {k}]")
    values = math.prod(per_sample) if all(isinstance(d, int) for d in per_sample) else None
    if k is not None and values is not None and values > 1 and (t.rank != 2 or values != k):
        return (f"output '{name}' has {values} classes but {data.name} has {k}",
                f"the output needs one column per class: {t.dtype}[N, {k}]")
    if k is not None and k > 2 and values == 1:
        return (f"output '{name}' gives one number per sample, but {data.name} has {k} classes",
                f"a classifier outputs one score per class: {t.dtype}[N, {k}] (with cross_entropy); one number per "
                "sample is a regression or a binary probability")
    if k is None and values != 1:
        return (f"output '{name}' is {t}, but {data.name} is a regression data set with one number per sample",
                f"predict one number per sample: {t.dtype}[N] or {t.dtype}[N, 1]")
    return None


def check_augment(config, model: ModelIR) -> None:
    """Augmentation shifts and flips images: the input's last two axes, which must be static and larger than the
    shift (a shift of the whole image would only blank it, and a huge one would pad it without bound)."""
    aug = config.augment
    if not aug:
        return
    x = model.data_inputs[0]
    image = x.type.shape[1:][-2:]
    span = config.spans.get("augment")
    if len(image) < 2 or not all(isinstance(d, int) for d in image):
        raise BmcError(f"augment shifts and flips images [..., height, width], but input '{x.name}' is {x.type}",
                       span, notes=(f"declare the input as images (e.g. input {x.name}: {x.type.dtype}[N, 8, 8]) and "
                                    "flatten them in the model",))
    if aug.shift >= min(image):
        raise BmcError(f"shift({aug.shift}) moves the {image[0]}x{image[1]} images of input '{x.name}' entirely out "
                       "of view", span, notes=(f"shift by fewer pixels than the image's size (at most "
                                               f"{min(image) - 1})",))


# ---- preprocessing ----------------------------------------------------------------------------------------------


def preprocessing(config, model: ModelIR, data: Dataset) -> Preprocess:
    """The build's preprocessing contract: its input takes the data set's raw samples, scaled by the data set's
    `scale`, then standardized when the train block says `normalize` (with the training set's mean and std of the
    scaled values, or the given ones)."""
    x = model.data_inputs[0]
    mean, std = 0.0, 1.0
    if len(model.data_inputs) > 1:
        if config.normalize:
            raise BmcError(f"normalize standardizes a model's one input; model '{model.name}' has "
                           f"{len(model.data_inputs)}", config.spans.get("normalize"),
                           notes=("standardize the arrays before saving them",))
        return Preprocess(x.name, data.scale, mean, std, data.raw_format)
    if isinstance(config.normalize, tuple):
        mean, std = config.normalize
    elif config.normalize:
        raw = data.x_train  # the raw values' statistics (in float64), scaled: no scaled copy of the data is made
        mean = float(raw.mean(dtype=np.float64)) * data.scale
        std = float(raw.std(dtype=np.float64)) * data.scale
    if config.normalize and std <= 0:
        raise BmcError("cannot normalize: the inputs' standard deviation is 0", config.spans.get("normalize"))
    return Preprocess(x.name, data.scale, mean, std, data.raw_format)


def hold_out(train: dict[str, np.ndarray], fraction: float, seed: int, span=None) -> tuple[dict, dict]:
    """Split a seeded random `fraction` of the training set off for validation (at least one sample each way)."""
    n = len(next(iter(train.values())))
    held_count = max(1, round(n * fraction))
    if held_count >= n:
        raise BmcError(f"validation = {fraction:g} holds out all {n} training samples; at least one must remain to "
                       "train on", span, notes=(f"use a fraction below {(n - 1) / n:.4g}",))
    order = np.random.default_rng([seed, 7]).permutation(n)
    cut = n - held_count
    keep, held = np.sort(order[:cut]), np.sort(order[cut:])
    return {k: v[keep] for k, v in train.items()}, {k: v[held] for k, v in train.items()}


# ---- text ----------------------------------------------------------------------------------------------------------


def text_inputs(model: ModelIR):
    """A language model's token input and next-token target: integer [N, T] each."""
    inputs, targets = model.data_inputs, model.targets
    ok = (len(inputs) == 1 and len(targets) == 1 and inputs[0].type.dtype in ("i32", "i64")
          and inputs[0].type.rank == 2 and targets[0].type.shape == inputs[0].type.shape)
    if not ok:
        raise BmcError(f"text data trains a language model: one input of token ids i64[N, T] and one target "
                       f"i64[N, T] (the next character at each position); model '{model.name}' does not have them",
                       model.span)
    return inputs[0], targets[0]


def check_window(model: ModelIR, tokens, window: int, span=None) -> None:
    """A text model's training window must fit the bounds the model puts on the sequence length (learned_positions'
    max_len)."""
    length = tokens.type.shape[1]
    for limit in model.graph.dim_limits():
        if limit.symbol == length and window > limit.limit:
            raise BmcError(f"the training window is {window} characters, but this model takes sequences of at most "
                           f"{limit.limit}", limit.span,
                           notes=(f"set sequence = {limit.limit} (or less) in the train block, or raise the limit "
                                  "here",))


def text_window(model: ModelIR, tokens) -> int:
    """The training window: the input's static length, else the model's `context` parameter."""
    length = tokens.type.shape[1]
    if isinstance(length, int):
        return length
    context = model.constants.get("context")
    if isinstance(context, int) and context > 0:
        return context
    raise BmcError(f"'{tokens.name}' has a symbolic length; set the training window with sequence = ... in the "
                   "train block, or give the model a `context` parameter", model.input_spans.get(tokens.name))
