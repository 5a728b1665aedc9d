"""The state of one import: the model's values, its statements as they are made, its parameters, and what could not
be imported. Rules (rules_*.py) read operands through `Context` and give back results; the context decides which
results become statements of their own and which are written inline into the one statement that uses them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx

from bmc.ir.types import Dim
from bmc.onnx_import import expr as X
from bmc.onnx_import.names import Names
from bmc.onnx_import.values import NUMPY, Filled, Known, Tensor, Value

INLINE = 3  # an expression of at most this many operations, used once, is written into its user
Rule = Callable[["Context", onnx.NodeProto, list], list]
RULES: dict[str, tuple[Rule, str]] = {}  # ONNX op type -> (rule, where it is)


def rule(*op_types: str):
    """Register the import rule of ONNX op types."""
    def add(fn: Rule) -> Rule:
        for t in op_types:
            assert t not in RULES, f"{t} has two import rules"
            RULES[t] = (fn, f"{fn.__module__}.{fn.__qualname__}")
        return fn
    return add


class Unsupported(Exception):  # noqa: N818 - raised as "Unsupported(reason)" by every rule
    """A node this importer cannot write exactly; the reason says why."""


@dataclass
class Statement:
    name: str
    expr: X.Expr
    nodes: list[str]
    output: bool = False
    params: dict[str, np.ndarray] = field(default_factory=dict)  # full parameter name -> value, of its layer calls


@dataclass
class Declared:
    """An explicit `param` declaration: an initializer used as an operand that no layer call owns."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    value: np.ndarray
    onnx: str


class Context:
    def __init__(self, uses: dict[str, int], outputs: set[str], opset: int, names: Names):
        self.uses, self.outputs, self.opset, self.names = uses, outputs, opset, names
        self.statements: list[Statement] = []
        self.declared: dict[str, Declared] = {}  # by ONNX initializer name
        self.node: onnx.NodeProto | None = None  # the node being imported
        self.shapes: dict[str, tuple[Dim, ...]] = {}  # each statement's shape
        self.created: list[Tensor] = []  # the tensors the rule being run has made

    # ---- operands -------------------------------------------------------------------------------------------------

    def tensor(self, v: Value | None, what: str = "input", twice: bool = False, view: bool = False,
               number: bool = False) -> X.Expr:
        """An operand as an expression: a computed tensor (inline or its statement's name), a number, or an explicit
        parameter for a known float tensor. `twice`: the rule writes it more than once; `view`: the rule moves it
        (a transpose or reshape), which stays inline whatever its size, so that a chain of them can collapse;
        `number`: a broadcasting operand, where a one-value constant of any rank may be a number (the rule keeps the
        result's rank, `keep_rank`)."""
        if v is None:
            raise Unsupported(f"its {what} is missing")
        if isinstance(v, Filled):
            raise Unsupported(f"its {what} is a constant of the symbolic shape {list(v.shape)} (a ConstantOfShape), "
                              "which the language cannot write")
        if isinstance(v, Known):
            return self.constant(v, what, number)
        if twice or not (self.inlinable(v) or (view and v.view is not None and self.inlinable(v, any_size=True))):
            self.materialize(v)
        return v.expr

    def inlinable(self, t: Tensor, any_size: bool = False) -> bool:
        small = any_size or X.size(t.expr) <= INLINE
        if t.inner:  # a rule's step: used once, by the rule
            return not isinstance(t.expr, X.Ref) and small
        return (not isinstance(t.expr, X.Ref) and self.uses.get(t.onnx, 0) <= 1 and t.onnx not in self.outputs
                and small)

    def constant(self, k: Known, what: str, number: bool = False) -> X.Expr:
        if k.symbolic:
            raise Unsupported(f"its {what} is a shape computed from symbolic dims, used as data")
        a = k.value
        if a.size == 1 and (a.ndim == 0 or number):  # exporters store scales and epsilons as [1] initializers
            v = a.reshape(()).item()
            return X.lit(shortest_f32(v) if a.dtype == np.float32 else v)
        if a.dtype.kind != "f":
            raise Unsupported(f"its {what} is a constant {a.dtype} tensor; the language takes constant tensors only "
                              "as float parameters")
        return X.Ref(self.declare(k).name)

    def declare(self, k: Known) -> Declared:
        """An explicit parameter holding a known float tensor (an initializer, or a constant an exporter computed)."""
        key = k.initializer or f"{self.node.output[0] if self.node is not None else 'constant'}:{id(k)}"
        if key not in self.declared:
            a = np.asarray(k.value)
            dtype = "f64" if a.dtype == np.float64 else "f32"
            name = self.names.identifier(k.initializer or (self.node.name if self.node else "constant"), "param",
                                         "w")
            self.declared[key] = Declared(name, dtype, tuple(int(d) for d in a.shape), a.astype(NUMPY[dtype]), key)
        return self.declared[key]

    def as_tensor(self, k: Known, what: str) -> Tensor:
        """A known float tensor as a tensor of the model: its explicit parameter."""
        ref = self.tensor(k, what)
        a = np.asarray(k.value)
        return Tensor(ref, "f64" if a.dtype == np.float64 else "f32", tuple(int(d) for d in a.shape),
                      k.initializer or "constant")

    def known(self, v: Value | None, what: str) -> np.ndarray:
        if isinstance(v, Filled):
            raise Unsupported(f"its {what} is a constant of the symbolic shape {list(v.shape)}; bmc needs it known "
                              "at import")
        if not isinstance(v, Known):
            raise Unsupported(f"its {what} is computed by the model; bmc needs it known at import")
        return v.value

    # ---- results --------------------------------------------------------------------------------------------------

    def result(self, e: X.Expr, dtype: str, shape: tuple[Dim, ...], out: int = 0, tag: str = "",
               inputs: list | None = None) -> Tensor:
        """A tensor a rule computes for the node's output `out`: the output itself, or a step on the way to it. Until
        the rule returns it is a step (`inner`: named apart from the output, used once); `finish` makes the ones
        the rule returns the node's outputs."""
        node = self.node
        folded = [n for v in (inputs or []) if isinstance(v, Tensor) and not isinstance(v.expr, X.Ref)
                  for n in v.nodes]
        labels = list(dict.fromkeys([*folded, _label(node)]))  # a node that gives several outputs is named once
        t = Tensor(e, dtype, tuple(shape), node.output[out], labels, tag=tag, inner=True)
        self.created.append(t)
        return t

    def finish(self, node: onnx.NodeProto, outs: list) -> None:
        """The tensors a rule returned become the node's outputs; one used more than once gets its statement."""
        for name, v in zip(node.output, outs, strict=False):
            if isinstance(v, Tensor) and v in self.created and name:
                v.onnx, v.inner = name, False
                if self.uses.get(name, 0) > 1:
                    self.materialize(v)
        self.created = []

    def materialize(self, t: Tensor, output: bool = False) -> None:
        """Give t a statement of its own (named after its ONNX name) unless it has one."""
        if isinstance(t.expr, X.Ref) and not output:
            return
        name = self.names.identifier(t.onnx, f"step {id(t)}" if t.inner else "value")
        stmt = Statement(name, t.expr, t.nodes, output)
        stmt.params = self.name_params(name, t.expr)
        self.shapes[name] = t.shape
        self.statements.append(stmt)
        t.expr, t.nodes = X.Ref(name), []

    def name_params(self, owner: str, e: X.Expr) -> dict[str, np.ndarray]:
        """The parameters of a statement's layer calls, named as the compiler names them (bmc/frontend/scope.py
        Naming): after the statement when it makes one call, numbered by function when it makes several."""
        owning = [c for c in X.calls(e) if c.owned is not None]
        counts: dict[str, int] = {}
        params = {}
        for c in owning:
            k = counts.get(c.func, 0)
            counts[c.func] = k + 1
            prefix = owner if len(owning) == 1 else f"{owner}.{c.func}" + (f"_{k}" if k else "")
            for suffix, value in c.owned.arrays.items():
                params[f"{prefix}.{suffix}"] = value
        return params


def shortest_f32(v: float) -> float:
    """An f32 value as the shortest decimal that reads back as that f32 (0.1, not 0.10000000149011612)."""
    if not np.isfinite(v):
        return v
    return float(np.format_float_positional(np.float32(v), unique=True, trim="-"))


def _label(node: onnx.NodeProto) -> str:
    return f"{node.name or node.output[0]} ({node.op_type})"


def attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def keep_rank(e: X.Expr, ins: list, shape: tuple) -> X.Expr:
    """e, reshaped to `shape` when a one-value constant written as a number gave the result its rank ([N] + a
    [1, 1] constant is [1, N]): a number broadcasts without adding axes."""
    ranks = [v.rank for v in ins if isinstance(v, Tensor)]
    if ranks and len(shape) > max(ranks):
        return X.Call("reshape", (e, X.shape(shape)))
    return e
