"""Building one ONNX graph (a model's, or a Scan body) from IR: nodes, constants, and the names of IR values.

Rules (rules.py) receive an `Emitter` and call `op(...)` to add nodes; `const(...)` to add constants (always top-level
initializers, deduplicated; Scan bodies read them from the outer scope); `dim`/`shape` for symbolic sizes, read from
the graph inputs that bind them (`Shape` of an input, once per graph).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from onnx import GraphProto, NodeProto, TensorProto, helper, numpy_helper

from bmc.diagnostics import BmcError, Span, UsageError
from bmc.ir import dims
from bmc.ir.graph import Node, Value
from bmc.ir.types import NUMPY_NAMES, Dim, TensorType
from bmc.rule_table import RuleTable

ONNX_DTYPES = {"f32": TensorProto.FLOAT, "f64": TensorProto.DOUBLE, "i32": TensorProto.INT32,
               "i64": TensorProto.INT64, "bool": TensorProto.BOOL}


def value_info(name: str, t: TensorType, doc: str = ""):
    """A typed graph input or output; symbolic dims (`N`, `N*T`) become named dynamic dims (dim_param)."""
    return helper.make_tensor_value_info(name, ONNX_DTYPES[t.dtype], list(t.shape), doc_string=doc)


class Names:
    """Unique tensor names for a whole model: ONNX forbids a subgraph to reuse a name of its outer graphs."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def reserve(self, name: str) -> str:
        assert name not in self.used, f"name {name!r} taken twice"
        self.used.add(name)
        return name

    def fresh(self, hint: str) -> str:
        name, i = hint, 1
        while name in self.used:
            name, i = f"{hint}_{i}", i + 1
        self.used.add(name)
        return name


class Emitter:
    """The nodes of one graph being built; a Scan body's emitter has the enclosing graph's as its parent."""

    def __init__(self, names: Names, parent: Emitter | None = None):
        self.names = names
        self.parent = parent
        self.nodes: list[NodeProto] = []
        self.inputs: list = []  # ValueInfoProtos
        self.values: dict[Value, str] = {}  # IR value -> tensor name
        self.preferred: dict[Value, str] = {}  # IR value -> reserved name (graph outputs)
        self.bindings: dict[str, tuple[str, int]] = {}  # symbol -> (tensor, axis) it is read from
        self.used: set[Value] = set()  # IR values something reads (rules skip outputs nobody needs)
        self.span: Span | None = None
        self._memo: dict[object, str] = {}
        self._bound: set[str] = set()  # tensor names IR values have
        # constants, shared by every graph of the model
        self.initializers: dict[str, TensorProto] = parent.initializers if parent else {}
        self.constants: dict[str, np.ndarray] = parent.constants if parent else {}
        self._const_keys: dict[tuple, str] = parent._const_keys if parent else {}
        # a constant computed from another at export -> (that constant, how), for naming and documenting it
        self.derived: dict[str, tuple[str, str]] = parent.derived if parent else {}
        self.ranks: dict[str, int] = parent.ranks if parent else {}  # tensor -> rank, for the IR's values

    # ---- names ---------------------------------------------------------------------------------------------------

    def name_of(self, v: Value) -> str:
        """The tensor name an IR value gets: its reserved output name, else its `.bm` name (made unique)."""
        return self.preferred.get(v) or self.names.fresh(v.name or (v.producer.op.name if v.producer else "t"))

    def add_input(self, v: Value, name: str | None = None, doc: str = "") -> str:
        name = name or self.names.fresh(v.name or "input")
        self.inputs.append(value_info(name, v.type, doc))
        self.values[v] = name
        self.ranks[name] = v.type.rank
        for axis, d in enumerate(v.type.shape):
            if isinstance(d, str) and "*" not in d:
                self.bindings.setdefault(d, (name, axis))
        return name

    # ---- nodes and constants -------------------------------------------------------------------------------------

    def op(self, op_type: str, *inputs: str | None, outputs: int | Sequence[bool] = 1, hint: str = "",
           **attrs) -> Any:
        """Append a node; return its output name, or a list of names when `outputs` is a count > 1 or a list of
        flags (False: an optional output left out, None in the list). A None input is an omitted optional one."""
        wanted = [True] * outputs if isinstance(outputs, int) else list(outputs)
        outs = [self.names.fresh(hint or op_type.lower()) if w else "" for w in wanted]
        doc = self.span.location if self.span is not None else None
        names = list(outs)
        while names and not names[-1]:
            names.pop()  # trailing optional outputs are simply absent
        node = helper.make_node(op_type, ["" if i is None else i for i in inputs], names,
                                name=next(o for o in outs if o), doc_string=doc, **attrs)
        self.nodes.append(node)
        if isinstance(outputs, int) and outputs == 1:
            return outs[0]
        return [o or None for o in outs]

    def const(self, value, dtype: str | None = None, hint: str = "const") -> str:
        """A constant tensor (deduplicated), as a top-level initializer."""
        array = np.asarray(value, dtype=NUMPY_NAMES[dtype] if dtype else None)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._const_keys:
            name = self.names.fresh(hint)
            self.initializers[name] = numpy_helper.from_array(array, name)
            self.constants[name] = array
            self._const_keys[key] = name
        return self._const_keys[key]

    def param(self, v: Value, array: np.ndarray) -> str:
        """A parameter stored in the model under its `.bm` name."""
        name = self.names.reserve(v.name)
        array = np.asarray(array, dtype=NUMPY_NAMES[v.type.dtype])
        if array.shape != tuple(v.type.shape):
            raise UsageError(f"parameter '{v.name}' has shape {list(array.shape)}, but the model declares "
                             f"{v.type} (compile with the constants the parameters were trained with, e.g. -D)")
        self.initializers[name] = numpy_helper.from_array(array, name)
        self.constants[name] = array
        self.values[v] = name
        self.ranks[name] = v.type.rank
        return name

    def ints(self, values: Sequence[int]) -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint="ints")

    def constant_value(self, name: str) -> np.ndarray | None:
        return self.constants.get(name)

    def folded(self, name: str, fn, how: str) -> str | None:
        """fn(value of `name`) as a new constant when `name` is a constant (remembering where it came from)."""
        value = self.constant_value(name)
        if value is None:
            return None
        return self.derived_const(fn(value), name, how)

    def derived_const(self, value: np.ndarray, origin: str, how: str) -> str:
        out = self.const(value, hint=origin)
        self.derived.setdefault(out, (origin, how))
        return out

    def unsqueeze(self, x: str, axes: Sequence[int]) -> str:
        folded = self.folded(x, lambda a: np.expand_dims(a, tuple(axes)), f"with new axes {list(axes)}")
        return folded or self.op("Unsqueeze", x, self.ints(axes))

    def memo(self, key: object, make) -> str:
        """A derived tensor computed once per graph (shape reads, masks)."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    # ---- symbolic sizes ------------------------------------------------------------------------------------------

    def _binder(self, symbol: str) -> Emitter:
        """The outermost graph that binds `symbol` (a Scan body reads sizes from the outer scope)."""
        if self.parent is not None and self.parent._can_bind(symbol):
            return self.parent._binder(symbol)
        if symbol not in self.bindings:
            raise ValueError(f"symbolic dim {symbol} is not bound by any input of the graph")
        return self

    def _can_bind(self, symbol: str) -> bool:
        return symbol in self.bindings or (self.parent is not None and self.parent._can_bind(symbol))

    def dim(self, d: Dim) -> str:
        """An int64 [1] tensor holding the size d."""
        if isinstance(d, int):
            return self.ints([d])
        static, syms = dims.factors(d)
        parts = [self._symbol(s) for s in syms]
        if static != 1:
            parts.append(self.ints([static]))
        out = parts[0]
        for p in parts[1:]:
            out = self.op("Mul", out, p, hint=f"size_{d}")
        return out

    def _symbol(self, s: str) -> str:
        binder = self._binder(s)
        tensor, axis = binder.bindings[s]
        return binder.memo(("symbol", s), lambda: binder.op("Shape", tensor, start=axis, end=axis + 1,
                                                            hint=f"size_{s}"))

    def shape(self, shape: Sequence[Dim]) -> str:
        """An int64 [rank] tensor holding a shape (a constant when static)."""
        if all(isinstance(d, int) for d in shape):
            return self.ints(list(shape))
        return self.memo(("shape", tuple(shape)), lambda: self._concat_dims(shape))

    def _concat_dims(self, shape: Sequence[Dim]) -> str:
        parts: list[str] = []
        run: list[int] = []
        for d in shape:
            if isinstance(d, int):
                run.append(d)
                continue
            if run:
                parts.append(self.ints(run))
                run = []
            parts.append(self.dim(d))
        if run:
            parts.append(self.ints(run))
        return parts[0] if len(parts) == 1 else self.op("Concat", *parts, axis=0, hint="shape")

    # ---- lowering ------------------------------------------------------------------------------------------------

    def lower(self, nodes: list[Node], rules: RuleTable) -> None:
        """Lower IR nodes in order through `rules`, naming each result after its IR value."""
        for node in nodes:
            self.used.update(node.inputs)
        for node in nodes:
            self.span = node.span
            start = len(self.nodes)
            try:
                outs = rules[type(node.op)](node, [self.values[v] for v in node.inputs], self)
            except (ValueError, NotImplementedError) as e:
                raise BmcError(f"cannot export {node.op.name} to ONNX: {e}", node.span) from None
            outs = [outs] if isinstance(outs, str) else list(outs)
            for v, name in zip(node.outputs, outs, strict=True):
                if name is not None:
                    self._bind(v, name, start)

    def _bind(self, v: Value, name: str, start: int) -> None:
        """Name the rule's result after the IR value (renaming the temporary the rule made), or alias an existing
        tensor when the rule returned one (a reshape to the same shape, a memoized size)."""
        self.ranks.setdefault(name, v.type.rank)
        fresh = {o for n in self.nodes[start:] for o in n.output} - set(self._memo.values())
        if name not in fresh or name in self._bound:
            self.values[v] = name
            self._bound.add(name)
            return
        new = self.name_of(v)
        for n in self.nodes[start:]:
            n.output[:] = [new if o == name else o for o in n.output]
            n.input[:] = [new if i == name else i for i in n.input]
            if n.name == name:
                n.name = new
        self.names.used.discard(name)
        self.values[v] = new
        self._bound.add(new)
        self.ranks[new] = self.ranks.pop(name)

    # ---- finishing -----------------------------------------------------------------------------------------------

    def output_infos(self, outputs: list[tuple[str, Value, str]]) -> list:
        """Graph outputs named exactly `key`: an Identity where the value already has another name, is a graph input,
        an outer-scope value or another output."""
        infos, taken = [], set()
        inputs = {i.name for i in self.inputs}
        made = {o for n in self.nodes for o in n.output}
        for key, v, doc in outputs:
            name = self.values[v]
            if name != key or name in taken or name in inputs or name not in made:
                self.nodes.append(helper.make_node("Identity", [name], [key], name=key))
            taken.add(key)
            infos.append(value_info(key, v.type, doc))
        return infos

    def graph(self, name: str, outputs: list, doc: str = "") -> GraphProto:
        initializers = list(self.initializers.values()) if self.parent is None else []
        return helper.make_graph(self.nodes, name, self.inputs, outputs, initializer=initializers, doc_string=doc)
