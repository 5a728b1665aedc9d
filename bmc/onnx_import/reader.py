"""Reading an ONNX file for import: the model, its opset, its graph inputs with their dims as the language's
(a `dim_param` is a symbolic dim; an unnamed dynamic dim becomes N on axis 0, D1, D2, ... elsewhere)."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import numpy_helper

from bmc.diagnostics import BmcError, UsageError
from bmc.onnx_import import expr as X
from bmc.onnx_import.names import Names
from bmc.onnx_import.values import DTYPES, Known, Tensor


def read(path: str | Path) -> onnx.ModelProto:
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a directory; give the .onnx file")
    if not path.is_file():
        raise UsageError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path))
    except Exception as e:
        raise BmcError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
    if not model.graph.node and not model.graph.output:
        raise BmcError(f"{path}: the ONNX model has an empty graph")
    return model


def opset(model: onnx.ModelProto) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 1


def initializers(graph: onnx.GraphProto) -> dict[str, Known]:
    out = {}
    for init in graph.initializer:
        out[init.name] = Known(numpy_helper.to_array(init), initializer=init.name)
    for sparse in graph.sparse_initializer:
        raise BmcError(f"initializer '{sparse.values.name}' is sparse; bmc imports dense initializers")
    return out


def inputs(graph: onnx.GraphProto, names: Names, skip: set[str]) -> tuple[dict[str, Tensor], list[str]]:
    """The graph inputs that are not initializers, as tensors named in the model, and the problems found."""
    values, problems = {}, []
    symbols: dict[str, str] = {}
    for i, vi in enumerate(graph.input):
        if vi.name in skip:
            continue
        t = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or t.elem_type not in DTYPES:
            problems.append(f"input '{vi.name}' has type {onnx.helper.printable_type(vi.type)}; bmc imports "
                            f"tensors of {', '.join(onnx.helper.tensor_dtype_to_np_dtype(k).name for k in DTYPES)}")
            continue
        if not t.HasField("shape"):
            problems.append(f"input '{vi.name}' has no shape; give it one (with named dims for dynamic ones)")
            continue
        shape = []
        if any(d.HasField("dim_value") and d.dim_value <= 0 for d in t.shape.dim):
            problems.append(f"input '{vi.name}' has a dim of size 0; the language's tensors are not empty")
            continue
        for k, d in enumerate(t.shape.dim):
            if d.HasField("dim_value"):
                shape.append(int(d.dim_value))
            else:
                key = d.dim_param or ("N" if k == 0 else f"D{k}")
                if key not in symbols:
                    symbols[key] = names.identifier(key, "dim", "N")
                shape.append(symbols[key])
        name = names.identifier(vi.name, "value", f"input{i}")
        values[vi.name] = Tensor(X.Ref(name), DTYPES[t.elem_type], tuple(shape), vi.name)
    return values, problems
