"""IR graph -> ONNX ModelProto, and writing it atomically.

Inputs and outputs keep their `.bm` names; symbolic dims become named dynamic dims (dim_param), so a model runs at
any batch size. Parameters are initializers (the inference model) or graph inputs (the train step, and the
inference graph a trainer evaluates with). The opset and IR version are pinned:

* opset 21 (ONNX 1.16): the first opset with everything the rules use (ScatterND/ScatterElements with
  reduction "add" (16), LayerNormalization (17), BitwiseAnd/Xor and axes as inputs of Reduce* and Pad (18),
  Gelu with approximate="tanh" (20)), and one that onnxruntime has implemented completely since 1.18, so the
  models also load in older runtimes. Later opsets add nothing our IR needs (Attention (23) would need an attention
  op in the IR; it is decomposed there before lowering).
* IR version 10, the one released with opset 21.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from bmc.diagnostics import BmcError, UsageError
from bmc.ir.graph import Graph
from bmc.ops.scan import Scan
from bmc.passes import decompose
from bmc.version import __version__

from . import fuse
from .emitter import Emitter, Names
from .rules import RULES, supports

OPSET = 21
IR_VERSION = 10


def check_lowerable(graph: Graph) -> None:
    """Every op has a rule or a decomposition (else a BmcError at its `.bm` location, before anything is built)."""
    for node in graph.nodes:
        if isinstance(node.op, Scan):
            check_lowerable(node.op.body)
        elif not supports(node.op) and not node.op.has_decomposition():
            raise BmcError(f"op '{node.op.name}' has no ONNX lowering and no decomposition; the ONNX target cannot "
                           "export this model", node.span)


def _input_doc(graph: Graph, v) -> str:
    where = f", declared at {v.span}" if v.span is not None else ""
    return f"{graph.roles[v]} {v.name}: {v.type}{where}"


def _output_doc(graph: Graph, key: str) -> str:
    v = graph.outputs[key]
    where = f", defined at {v.span}" if v.span is not None else ""
    return graph.doc.get(key) or f"{key}: {v.type}{where}"


def graph_to_model(graph: Graph, *, name: str | None = None, params: dict[str, np.ndarray] | None = None,
                   metadata: dict[str, str] | None = None, doc: str = "", fold: bool = True,
                   preprocess: dict | None = None, clean_up: bool = True) -> onnx.ModelProto:
    """The ONNX model of an IR graph. With `params`, parameters are initializers holding those values (and constant
    subexpressions of them are folded: batch norm into the convolution before it); else they are graph inputs.
    `preprocess` ({"input", "mean", "std"}, as a trained build's manifest has it) standardizes that input inside
    the model, so it takes raw data. `clean_up=False` leaves the lowered nodes as the rules made them (no `fuse`
    clean-ups or folding), so tests can check that the clean-ups change nothing but the graph's size."""
    check_lowerable(graph)
    if preprocess and preprocess["input"] not in {v.name for v in graph.inputs_with_role("input")}:
        raise UsageError(f"cannot standardize '{preprocess['input']}': the model has no such input")
    graph = decompose.run(graph, supports)
    names = Names()
    em = Emitter(names)
    for v in graph.inputs:
        if params is not None and graph.roles[v] == "param":
            if v.name not in params:
                raise UsageError(f"no value for parameter '{v.name}'")
            em.param(v, params[v.name])
        elif preprocess and v.name == preprocess["input"]:
            standardize(em, v, names.reserve(v.name), preprocess, _input_doc(graph, v))
        else:
            em.add_input(v, names.reserve(v.name), _input_doc(graph, v))
    for key in graph.outputs:
        if key not in names.used:
            names.reserve(key)
    for key, v in graph.outputs.items():
        if v not in em.values and v not in em.preferred:
            em.preferred[v] = key
    em.used.update(graph.outputs.values())
    em.lower(graph.nodes, RULES)
    outputs = em.output_infos([(k, v, _output_doc(graph, k)) for k, v in graph.outputs.items()])
    protected = set(graph.outputs)
    if clean_up:
        fuse.simplify(em, protected)
        if params is not None and fold:
            fuse.fold_batch_norm(em, protected)
            fuse.fold_standardize(em, protected)
        fuse.drop_unused_constants(em)
    proto = em.graph(name or graph.name, outputs, doc)
    model = helper.make_model(proto, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="bmc", producer_version=__version__, doc_string=doc)
    helper.set_model_props(model, metadata or {})
    return model


def standardize(em: Emitter, v, name: str, preprocess: dict, doc: str) -> None:
    """The input `name`, raw, then (x - mean) / std: the value the graph reads as v."""
    mean, std = preprocess["mean"], preprocess["std"]
    em.add_input(v, name, f"{doc}; raw, standardized inside the model as (x - {mean!r}) / {std!r}")
    em.span = v.span
    centered = em.op("Sub", name, em.const(mean, v.type.dtype, hint="mean"))
    em.values[v] = em.op("Div", centered, em.const(std, v.type.dtype, hint="std"), hint=f"{name}.standardized")


def model_metadata(compiled, extra: dict | None = None) -> dict[str, str]:
    """bmc's version, the model, its source file and hash; its constants and `extra` values (a vocabulary, a
    window) as JSON."""
    m = compiled.model
    meta = {"bmc_version": __version__, "model": m.name, "source": m.source.name,
            "source_sha256": compiled.source_hash, "constants": json.dumps(m.constants)}
    meta.update({k: json.dumps(v) for k, v in (extra or {}).items()})
    return meta


def check(model: onnx.ModelProto) -> None:
    """The full checker, with strict shape inference (what every export must pass)."""
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def write_atomic(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write beside the destination, then rename: a failed write never leaves a partial model."""
    path = Path(path)
    data = model.SerializeToString()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from None
    return path
