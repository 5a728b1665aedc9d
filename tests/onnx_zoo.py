"""Models no one here wrote the ONNX for: small PyTorch networks of four families (a ResNet, a MobileNetV3, a
Transformer encoder, an LSTM tagger), exported by PyTorch's own exporter, and the helpers that compare bmc's import
of them with onnxruntime (values) and with PyTorch autograd (gradients).

Every float parameter and buffer is given values that are distinct within its tensor (`distinct_values`), so each
imported parameter is found again in the PyTorch module by value (`param_map`), whatever transposes, slices and gate
reorderings the exporter and the importer did in between: each element of an imported parameter is one element of
one PyTorch tensor, and its gradient is that element's gradient."""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import bmc
import bmc.runtime
from bmc.onnx_import import Imported, import_onnx

# ---- the networks ------------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """ResNet's BasicBlock: conv-bn-relu-conv-bn, plus the input (a strided 1x1 conv-bn when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """ResNet-18's layout at toy widths: a conv-bn-relu-maxpool stem, two stages of two BasicBlocks (the second
    stage strided, with a downsample), global average pooling and a linear head. Input [N, 3, 32, 32]."""

    def __init__(self, width: int = 8, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(width, width), BasicBlock(width, width))
        self.layer2 = nn.Sequential(BasicBlock(width, 2 * width, 2), BasicBlock(2 * width, 2 * width))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class InvertedResidual(nn.Module):
    """MobileNetV3's block: 1x1 expand, depthwise kxk (groups = channels), squeeze-excite, 1x1 project."""

    def __init__(self, cin: int, expand: int, cout: int, kernel: int, stride: int, se: bool, act: type):
        super().__init__()
        self.residual = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != cin:
            layers += [nn.Conv2d(cin, expand, 1, bias=False), nn.BatchNorm2d(expand), act()]
        layers += [nn.Conv2d(expand, expand, kernel, stride, kernel // 2, groups=expand, bias=False),
                   nn.BatchNorm2d(expand), act()]
        if se:
            layers.append(SqueezeExcite(expand, max(8, expand // 4)))
        layers += [nn.Conv2d(expand, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV3(nn.Module):
    """MobileNetV3-Small's layout at toy widths. Input [N, 3, 32, 32]."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.Hardswish())
        self.blocks = nn.Sequential(
            InvertedResidual(8, 8, 8, 3, 2, True, nn.ReLU),
            InvertedResidual(8, 24, 16, 3, 2, False, nn.ReLU),
            InvertedResidual(16, 32, 16, 5, 1, True, nn.Hardswish),
        )
        self.last = nn.Sequential(nn.Conv2d(16, 48, 1, bias=False), nn.BatchNorm2d(48), nn.Hardswish())
        self.head = nn.Sequential(nn.Linear(48, 32), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(32, classes))

    def forward(self, x):
        x = self.last(self.blocks(self.stem(x)))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class TransformerClassifier(nn.Module):
    """Token embedding plus learned positions, a 2-layer nn.TransformerEncoder (batch first), mean pooling over
    the sequence and a linear head. Input int64 tokens [N, T]."""

    def __init__(self, vocab: int = 50, seq: int = 8, d_model: int = 32, heads: int = 4, ff: int = 64,
                 classes: int = 5, activation: str = "relu"):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Parameter(torch.zeros(1, seq, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout=0.0, activation=activation,
                                           batch_first=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # enable_nested_tensor is False with a norm_first=False gelu layer
            self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, tokens):
        h = self.encoder(self.embed(tokens) + self.pos)
        return self.head(h.mean(dim=1))


class LSTMTagger(nn.Module):
    """Embedding, a (bidirectional) batch-first LSTM, and a linear layer on every step. Input int64 [N, T]."""

    def __init__(self, vocab: int = 50, embed: int = 16, hidden: int = 12, tags: int = 6,
                 bidirectional: bool = True):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True, bidirectional=bidirectional)
        self.out = nn.Linear(hidden * (2 if bidirectional else 1), tags)

    def forward(self, tokens):
        h, _ = self.lstm(self.embed(tokens))
        return self.out(h)


# ---- the cases ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One exported network: how to make it, its input, and how to export it."""

    name: str
    make: object  # () -> nn.Module
    input_shape: tuple[int, ...]  # with the batch first
    vocab: int | None = None  # int64 token input below vocab; None: a float input
    fold_constants: bool = True  # False keeps BatchNormalization nodes (the exporter would fold them into convs)
    training: bool = False  # export in TrainingMode.TRAINING
    dynamo: bool = False  # torch.export's exporter (torch.onnx.export's default; needs onnxscript) at opset 20

    def module(self, seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        m = self.make()
        distinct_values(m, seed)
        return m.eval()

    def sample(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        shape = (batch, *self.input_shape[1:])
        if self.vocab is not None:
            return rng.integers(0, self.vocab, shape).astype(np.int64)
        return rng.standard_normal(shape).astype(np.float32)


CASES = {
    "resnet": Case("resnet", ResNet, (2, 3, 32, 32)),
    "resnet_bn": Case("resnet_bn", ResNet, (2, 3, 32, 32), fold_constants=False),
    "mobilenet": Case("mobilenet", MobileNetV3, (2, 3, 32, 32)),
    "mobilenet_bn": Case("mobilenet_bn", MobileNetV3, (2, 3, 32, 32), fold_constants=False),
    "transformer": Case("transformer", TransformerClassifier, (2, 8), vocab=50),
    "transformer_gelu": Case("transformer_gelu", lambda: TransformerClassifier(activation="gelu"), (2, 8),
                             vocab=50),
    "lstm": Case("lstm", LSTMTagger, (2, 7), vocab=50),
    "lstm_forward": Case("lstm_forward", lambda: LSTMTagger(bidirectional=False), (2, 7), vocab=50),
    # the same networks through torch.export's exporter (torch.onnx.export's default), at opset 20
    "resnet_dynamo": Case("resnet_dynamo", ResNet, (2, 3, 32, 32), dynamo=True),
    "mobilenet_dynamo": Case("mobilenet_dynamo", MobileNetV3, (2, 3, 32, 32), dynamo=True),
    "transformer_dynamo": Case("transformer_dynamo", TransformerClassifier, (2, 8), vocab=50, dynamo=True),
    "lstm_dynamo": Case("lstm_dynamo", LSTMTagger, (2, 7), vocab=50, dynamo=True),
}


def distinct_values(module: nn.Module, seed: int) -> None:
    """Give every float parameter and buffer values distinct across the whole module, of about the size PyTorch's
    initialization gives (scales and variances near 1), so each tensor's elements can be found again by value."""
    rng = np.random.default_rng(seed)
    tensors = [(k, t) for k, t in [*module.named_parameters(), *module.named_buffers()] if t.is_floating_point()]
    total = sum(t.numel() for _, t in tensors)
    grid = (rng.permutation(total) + 0.5) / total * 2 - 1  # distinct values in (-1, 1)
    start = 0
    for name, t in tensors:
        g = grid[start:start + t.numel()]
        start += t.numel()
        if name.endswith("running_var"):
            values = 1 + 0.5 * g
        elif t.dim() == 1 and name.endswith("weight"):  # batch and layer norm scales
            values = 1 + 0.25 * g
        elif t.dim() > 1:
            values = g * 2.0 ** np.round(np.log2(np.sqrt(3 / t[0].numel())))
        else:
            values = 0.5 * g
        with torch.no_grad():
            t.copy_(torch.from_numpy(values.reshape(t.shape)).to(t.dtype))


def export(case: Case, module: nn.Module, path: Path) -> Path:
    """The TorchScript exporter at opset 17 (or, for a dynamo case, torch.export's at its default opset), the batch
    dim dynamic."""
    example = torch.from_numpy(case.sample(case.input_shape[0], np.random.default_rng(0)))
    if case.dynamo:
        pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript")
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(path), dynamo=True, input_names=["x"], output_names=["y"],
                              dynamic_shapes=({0: torch.export.Dim("N", min=2, max=1024)},), verbose=False)
        return path
    mode = torch.onnx.TrainingMode.TRAINING if case.training else torch.onnx.TrainingMode.EVAL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
                          do_constant_folding=case.fold_constants, training=mode)
    return path


def onnxruntime_outputs(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: x}), strict=True))


# ---- bmc's side --------------------------------------------------------------------------------------------------


def bmc_forward(imported: Imported, inputs: dict[str, np.ndarray], dtype: str = "f32") -> dict[str, np.ndarray]:
    """The imported model's outputs from bmc's NumPy backend (inference)."""
    model = bmc.compile_string(imported.source, dtype=dtype)
    module = bmc.runtime.load_source(model.generate("numpy", train=False))
    params = {k: v.astype(np.float64 if dtype == "f64" else v.dtype) for k, v in imported.params.items()}
    return module.forward(params, **inputs)


def with_probe_loss(source: str, outputs: dict[str, tuple]) -> str:
    """The source with a scalar loss: sum over the outputs of sum(output * probe), a probe a target per output."""
    body = source.rstrip().removesuffix("}")
    lines, terms = [""], []
    for name, shape in outputs.items():
        dims = ", ".join(["N", *map(str, shape[1:])])
        lines.append(f"    target probe_{name}: f32[{dims}]")
        terms.append(f"sum({name} * probe_{name})")
    lines.append(f"    loss = {' + '.join(terms)}")
    return body + "\n".join(lines) + "\n}\n"


def bmc_gradients(imported: Imported, inputs: dict[str, np.ndarray], probes: dict[str, np.ndarray]):
    """The probe loss and its gradient in float64 w.r.t. every trainable parameter and float input, by bmc's
    autodiff (the train step's: batch norm on the batch's statistics). Returns (loss, {name: gradient}, trainable)."""
    from bmc.backends.numpy import compile_function

    from bmc.passes import precision
    from bmc.passes.pipeline import optimize
    from bmc.train.step import gradient_graph

    source = with_probe_loss(imported.source, {k: v.shape for k, v in probes.items()})
    model = bmc.compile_string(source, dtype="f64")
    graph = model.compiled.model.graph
    trainable = {p.name for p in graph.params if graph.param_info[p].trainable}
    run = compile_function(precision.run(optimize(gradient_graph(model.compiled.model, wrt="all")), "f64"))
    feeds = {**{k: v.astype(np.float64) for k, v in imported.params.items()},
             **{k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in inputs.items()},
             **{f"probe_{k}": v.astype(np.float64) for k, v in probes.items()}}
    out = run(feeds)
    grads = {k.removeprefix("grad/"): v for k, v in out.items() if k.startswith("grad/")}
    return float(out["loss"]), grads, trainable


def torch_gradients(module: nn.Module, x: np.ndarray, probe: np.ndarray, train_mode: bool):
    """The same loss by PyTorch autograd in float64: (loss, {tensor name: gradient}, input gradient or None)."""
    m = _copy(module).double()
    m.train(train_mode)
    for sub in m.modules():
        if isinstance(sub, nn.Dropout):  # the exported graph has none (it is exported for inference)
            sub.eval()
    xt = torch.from_numpy(x.astype(np.float64) if x.dtype.kind == "f" else x)
    if xt.is_floating_point():
        xt.requires_grad_(True)
    loss = (m(xt) * torch.from_numpy(probe.astype(np.float64))).sum()
    loss.backward()
    grads = {k: p.grad.detach().numpy() for k, p in m.named_parameters() if p.grad is not None}
    return float(loss.detach()), grads, xt.grad.detach().numpy() if xt.requires_grad else None


def _copy(module: nn.Module) -> nn.Module:
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@dataclass(frozen=True)
class Found:
    """Where an imported parameter's elements are in the PyTorch module: element i is element index[i] of the
    tensor tensors[which[i]] (LSTM's bias B is PyTorch's two biases side by side)."""

    tensors: tuple[str, ...]
    which: np.ndarray
    index: np.ndarray

    def take(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """The same elements of other arrays of the PyTorch tensors' shapes (their gradients)."""
        flat = [np.asarray(arrays[k]).reshape(-1) for k in self.tensors]
        return np.array([flat[w][i] for w, i in zip(self.which.reshape(-1), self.index.reshape(-1), strict=True)]
                        ).reshape(self.index.shape)


def param_map(imported: Imported, module: nn.Module) -> dict[str, Found]:
    """Each imported parameter found in the PyTorch module by its values (distinct, see `distinct_values`): in one
    tensor when one holds all of them, else element by element. Parameters made by arithmetic (a batch norm folded
    into a convolution) are not found, and are left out."""
    return find_by_value(imported.params, {k: t.detach().numpy() for k, t in
                                           [*module.named_parameters(), *module.named_buffers()]
                                           if t.is_floating_point()})


def find_by_value(params: dict[str, np.ndarray], originals: dict[str, np.ndarray]) -> dict[str, Found]:
    """Each of `params` found among `originals` by its (distinct) values; see `param_map`."""
    tensors = {k: np.asarray(v).astype(np.float32).reshape(-1) for k, v in originals.items()}
    names = tuple(tensors)
    order = {k: np.argsort(v, kind="stable") for k, v in tensors.items()}
    found = {}
    for name, value in params.items():
        flat = np.asarray(value, np.float32).reshape(-1)
        hits = {}  # tensor -> (is each element there, where)
        for k, t in tensors.items():
            sorted_t = t[order[k]]
            pos = np.clip(np.searchsorted(sorted_t, flat), 0, t.size - 1)
            hits[k] = (sorted_t[pos] == flat, order[k][pos])
        whole = [k for k in names if hits[k][0].all()]
        if whole:
            k = whole[0]
            found[name] = Found((k,), np.zeros(flat.shape, np.int64).reshape(np.shape(value)),
                                hits[k][1].reshape(np.shape(value)))
            continue
        counts = {k: int(h.sum()) for k, (h, _) in hits.items()}
        which, index = np.full(flat.shape, -1), np.zeros(flat.shape, np.int64)
        for k in sorted(names, key=lambda k: counts[k]):  # the tensor with most of them decides ambiguities
            there = hits[k][0]
            which[there], index[there] = names.index(k), hits[k][1][there]
        if (which >= 0).all():
            found[name] = Found(names, which.reshape(np.shape(value)), index.reshape(np.shape(value)))
    return found


def probe_gradients(model: bmc.Model, feeds: dict[str, np.ndarray], probes: dict[str, np.ndarray]):
    """Inference-mode gradients (dropout off, running statistics) of sum over outputs of sum(output * probe), in
    float64, w.r.t. every parameter and float input of a model compiled with dtype="f64": {"loss": ..., name: grad}."""
    from bmc.backends.numpy import compile_function

    from bmc.ir.graph import Builder
    from bmc.ops import emit as E
    from bmc.passes import decompose, precision
    from bmc.passes.autodiff import gradients
    from bmc.passes.pipeline import optimize
    from bmc.train.step import has_own_vjp

    src = model.compiled.inference(optimized=False)
    g = src.copy_frame(f"{src.name}_probe")
    g.nodes, g.outputs = list(src.nodes), dict(src.outputs)
    g = decompose.run(g, lambda op: has_own_vjp(op) or not op.differentiable or not op.has_decomposition())
    b = Builder(g)
    total = None
    for name in probes:
        out = g.outputs[name]
        probe = g.add_input(out.type, f"probe_{name}", "input")
        term = E.sum_(b, E.mul(b, out, probe))
        total = term if total is None else E.add(b, total, term)
    wrt = [*g.params, *(v for v in g.inputs_with_role("input") if v.type.is_float and
                        not v.name.startswith("probe_"))]
    grads = gradients(b, total, wrt)
    g.outputs = {"loss": total, **{f"grad/{v.name}": grads[v] for v in wrt}}
    run = compile_function(precision.run(optimize(g), "f64"))
    values = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in feeds.items()}
    out = run({**values, **{f"probe_{k}": v.astype(np.float64) for k, v in probes.items()}})
    return {"loss": float(out["loss"]), **{k.removeprefix("grad/"): v for k, v in out.items() if k != "loss"}}


def gradient_error(got: np.ndarray, expected: np.ndarray, scale: float) -> float:
    """Relative error of a gradient, against its own size or (for a gradient that is zero in exact arithmetic, as a
    bias before a batch norm's is) 1e-6 of the largest gradient's."""
    diff = float(np.max(np.abs(np.asarray(got, np.float64) - expected), initial=0.0))
    return diff / max(float(np.max(np.abs(expected), initial=0.0)), 1e-6 * scale, 1e-300)


def relative_error(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def import_case(case: Case, tmp: Path, seed: int = 0, loss: str | None = None) -> tuple[nn.Module, Path, Imported]:
    module = case.module(seed)
    path = export(case, module, tmp / f"{case.name}.onnx")
    return module, path, import_onnx(path, loss=loss)
