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

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from bmc import artifacts
from bmc.diagnostics import BmcError, UsageError
from bmc.frontend.preprocess import Preprocess
from bmc.ir.graph import Graph
from bmc.ops.scan import Scan
from bmc.passes import decompose
from bmc.version import __version__

from . import fuse
from .emitter import Emitter, Names
from .table import RULES, supports

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


def _input_doc(graph: Graph, v, preprocess: Preprocess | None) -> str:
    where = f", declared at {v.span}" if v.span is not None else ""
    if graph.roles[v] == "grad":  # the second half of a split train step (apply.onnx)
        return f"grad {v.name}: {v.type}, the loss's gradient with respect to {v.name.removeprefix('grad/')}{where}"
    raw = ""
    if preprocess is not None and v.name == preprocess.input:
        raw = f"; raw samples ({preprocess.raw}): the model computes {v.name} = {preprocess.formula()}"
    return f"{graph.roles[v]} {v.name}: {v.type}{where}{raw}"


def _output_doc(graph: Graph, key: str) -> str:
    v = graph.outputs[key]
    where = f", defined at {v.span}" if v.span is not None else ""
    what = f", the loss's gradient with respect to {key.removeprefix('grad/')}" if key.startswith("grad/") else ""
    return graph.doc.get(key) or f"{key}: {v.type}{what}{where}"


def graph_to_model(graph: Graph, *, name: str | None = None, params: dict[str, np.ndarray] | None = None,
                   metadata: dict[str, str] | None = None, doc: str = "", fold: bool = True,
                   preprocess: Preprocess | None = None, clean_up: bool = True) -> onnx.ModelProto:
    """The ONNX model of an IR graph. With `params`, parameters are initializers holding those values (and constant
    subexpressions of them are folded: batch norm into the convolution before it, the input's preprocessing
    prologue into the first layer); else they are graph inputs. `preprocess`, the contract the graph's prologue
    computes, documents its input as raw. `clean_up=False` leaves the lowered nodes as the rules made them (no `fuse`
    clean-ups or folding), so tests can check that the clean-ups change nothing but the graph's size."""
    check_lowerable(graph)
    graph = decompose.run(graph, supports)
    graph = dataclasses.replace(graph, outputs={output_name(k, graph): v for k, v in graph.outputs.items()})
    names = Names()
    em = Emitter(names)
    for v in graph.inputs:
        if params is not None and graph.roles[v] == "param":
            if v.name not in params:
                raise UsageError(f"no value for parameter '{v.name}'")
            em.param(v, params[v.name])
        else:
            em.add_input(v, names.reserve(v.name), _input_doc(graph, v, preprocess))
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
            fuse.fold_input_affine(em, protected)
        fuse.drop_unused_constants(em)
    proto = em.graph(name or graph.name, outputs, doc)
    model = helper.make_model(proto, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="bmc", producer_version=__version__, doc_string=doc)
    helper.set_model_props(model, metadata or {})
    return model


def output_name(key: str, graph: Graph) -> str:
    """ONNX names every tensor once, so an output that is itself an input or parameter (`output W`) is named
    `W.output`."""
    inputs = {v.name for v in graph.inputs}
    name = key
    while name in inputs:
        name += ".output"
    return name


def model_metadata(compiled, extra: dict | None = None) -> dict[str, str]:
    """bmc's version, the model, its source file and hash; its constants, its preprocessing contract (what raw input
    it takes) and `extra` values (a vocabulary, a window) as JSON."""
    m = compiled.model
    meta = {"bmc_version": __version__, "model": m.name, "source": m.source.name,
            "source_sha256": compiled.source_hash, "constants": json.dumps(m.constants)}
    if compiled.preprocess is not None:
        meta["preprocess"] = json.dumps(compiled.preprocess.as_json())
    meta.update({k: json.dumps(v) for k, v in (extra or {}).items()})
    return meta


def check(model: onnx.ModelProto) -> None:
    """The full checker, with strict shape inference (what every export must pass)."""
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def write_atomic(model: onnx.ModelProto, path: str | Path) -> Path:
    """Write beside the destination, then rename: a failed or killed write never leaves a partial model."""
    return artifacts.write_file(path, model.SerializeToString())
