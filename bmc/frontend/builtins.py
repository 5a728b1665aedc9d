"""The functions a `.bm` expression can call, each with its signature: every parameter's name, default and domain
(bmc/frontend/domains.py).

A handler gets the lowerer, the call (for spans) and the arguments as their domains took them: tensors lowered,
sizes checked, initializers built, each error already at its argument's `.bm` location. What a handler still checks
is what no single argument shows: a rank, a dtype, one argument against another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from bmc import ops
from bmc.diagnostics import BmcError
from bmc.frontend.domains import (
    FINITE,
    INTEGER,
    SIZE,
    Axes,
    Choice,
    Dtype,
    Flag,
    Initializer,
    Items,
    Operand,
    OrNone,
    Shape,
    Tensor,
)
from bmc.frontend.signature import REQUIRED, Args, Param, Signature
from bmc.init import Init
from bmc.ir.graph import Value
from bmc.ir.types import INT_DTYPES, TensorType
from bmc.ops import emit as E
from bmc.ops.elementwise import Unary
from bmc.syntax import ast

Handler = Callable[[Any, ast.Call, Args], Any]
BUILTINS: dict[str, tuple[Signature, Handler]] = {}
PARAM_OWNERS = {"dense"}  # builtins that create parameters, named after the statement that calls them
TENSOR = Tensor()


def builtin(name: str, *params: str | Param):
    """Register a handler; a parameter given by name alone is a required tensor."""
    sig = Signature(name, tuple(Param(p, REQUIRED, TENSOR) if isinstance(p, str) else p for p in params))

    def register(handler: Handler) -> Handler:
        BUILTINS[name] = (sig, handler)
        return handler

    return register


# ---- elementwise math ---------------------------------------------------------------------------------------------

# every unary op that says it is a builtin, by its name: a new one needs no line here. Its attributes (leaky_relu's
# alpha) are keyword arguments with the op's defaults, any finite number; clip has a handler of its own, below.
UNARY = {name: op for name, op in sorted(ops.REGISTRY.items()) if issubclass(op, Unary) and op.builtin}


def _unary(op_type):
    attrs = [f.name for f in dataclasses.fields(op_type)]

    def handler(lw, call, a):
        return lw.emit(op_type(**{k: float(a[k]) for k in attrs}), a["x"], span=call.span)

    return handler


for _name, _op in UNARY.items():
    if _op not in (ops.Clip, ops.Gelu):
        builtin(_name, "x", *(Param(f.name, f.default, FINITE) for f in dataclasses.fields(_op)))(_unary(_op))


@builtin("gelu", "x", Param("approximate", "tanh", Choice(("tanh", "none"))))
def _gelu(lw, call, a):
    """GELU: its tanh form (one op, as GPT-2), or exactly, 0.5 x (1 + erf(x / √2)) (PyTorch's and ONNX's default)."""
    x = a["x"]
    if a["approximate"] == "tanh":
        return lw.emit(ops.Gelu(), x, span=call.span)
    b = lw.at(call)
    scaled = E.mul(b, x, E.like(b, 0.7071067811865476, x))
    one_plus = E.add(b, E.like(b, 1.0, x), b.emit(ops.Erf(), scaled))
    return E.mul(b, E.mul(b, E.like(b, 0.5, x), x), one_plus)


@builtin("clip", "x", Param("min", None, OrNone(FINITE)), Param("max", None, OrNone(FINITE)))
def _clip(lw, call, a):
    low, high = a["min"], a["max"]
    if low is None and high is None:
        raise BmcError("clip() needs a min, a max or both", call.span,
                       notes=("give the bounds by name: clip(x, min = -1, max = 1)",))
    if low is not None and high is not None and low > high:
        raise BmcError(f"clip's min {low} is greater than its max {high}", a.span("max"))
    bounds = {k: None if v is None else float(v) for k, v in (("min", low), ("max", high))}
    return lw.emit(ops.Clip(**bounds), a["x"], span=call.span)


def _binary(op_type):
    def handler(lw, call, a):
        x, y = a["x"], a["y"]
        if not isinstance(x, Value) and not isinstance(y, Value):
            raise BmcError(f"{call.func}() needs at least one tensor", call.span)
        x, y = lw.promote_literal(x, y, call.span), lw.promote_literal(y, x, call.span)
        return lw.emit(op_type(), x, y, span=call.span)

    return handler


OPERANDS = (Param("x", domain=Operand()), Param("y", domain=Operand()))
builtin("maximum", *OPERANDS)(_binary(ops.Maximum))
builtin("minimum", *OPERANDS)(_binary(ops.Minimum))


@builtin("where", "condition", *OPERANDS)
def _where(lw, call, a):
    c, x, y = a["condition"], a["x"], a["y"]
    if not isinstance(x, Value) and not isinstance(y, Value):
        x = lw.emit(ops.Const(float(x), "f32"), span=call.span)
    x, y = lw.promote_literal(x, y, call.span), lw.promote_literal(y, x, call.span)
    return lw.emit(ops.Where(), c, x, y, span=call.span)


@builtin("cast", "x", Param("dtype", domain=Dtype()))
def _cast(lw, call, a):
    return lw.emit(ops.Cast(a["dtype"]), a["x"], span=call.span)


@builtin("matmul", "x", "y")
def _matmul(lw, call, a):
    return lw.emit(ops.MatMul(), a["x"], a["y"], span=call.span)


# ---- reductions ---------------------------------------------------------------------------------------------------


def _reduction(op_type):
    def handler(lw, call, a):
        if a["axis"] == ():
            raise BmcError(f"{call.func}'s axis lists no axis", a.span("axis"),
                           notes=("leave it out to reduce over every axis",))
        return lw.emit(op_type(a["axis"], a["keepdims"]), a["x"], span=call.span)

    return handler


for _name, _op in {"sum": ops.Sum, "mean": ops.Mean, "max": ops.Max}.items():
    builtin(_name, "x", Param("axis", None, Axes()), Param("keepdims", False, Flag()))(_reduction(_op))


# ---- shapes ------------------------------------------------------------------------------------------------------


@builtin("reshape", "x", Param("shape", domain=Shape()))
def _reshape(lw, call, a):
    return lw.emit(ops.Reshape(a["shape"]), a["x"], span=call.span)


@builtin("flatten", "x", Param("start", 1, INTEGER))
def _flatten(lw, call, a):
    """Keep the dims before `start` (the batch), merge the rest: [N, 28, 28] -> [N, 784]."""
    x, start = a["x"], a["start"]
    if not 0 <= start < max(x.type.rank, 1):
        raise BmcError(f"flatten start {start} is out of range for {x.type}", a.span("start"))
    return lw.emit(ops.Reshape((*x.type.shape[:start], -1)), x, span=call.span)


@builtin("transpose", "x", Param("perm", None, Items(INTEGER)))
def _transpose(lw, call, a):
    x, perm = a["x"], a["perm"]
    if perm is None:
        perm = (*range(x.type.rank - 2), x.type.rank - 1, x.type.rank - 2) if x.type.rank >= 2 else (0,)
    return lw.emit(ops.Transpose(perm), x, span=call.span)


@builtin("concat", Param("tensors", domain=Items(TENSOR)), Param("axis", -1, INTEGER))
def _concat(lw, call, a):
    return lw.emit(ops.Concat(a["axis"]), *a["tensors"], span=call.span)


# ---- neural-network layers -------------------------------------------------------------------------------------


@builtin("causal_mask", "scores")
def _causal_mask(lw, call, a):
    x = a["scores"]
    if x.type.rank < 2 or x.type.shape[-1] != x.type.shape[-2] or not x.type.is_float:
        raise BmcError(f"causal_mask takes float scores [..., T, T], got {x.type}", call.span)
    return lw.emit(ops.CausalMask(), x, span=call.span)


@builtin("softmax", "x", Param("axis", -1, INTEGER))
def _softmax(lw, call, a):
    return lw.emit(ops.Softmax(a["axis"]), a["x"], span=call.span)


@builtin("log_softmax", "x", Param("axis", -1, INTEGER))
def _log_softmax(lw, call, a):
    return lw.emit(ops.LogSoftmax(a["axis"]), a["x"], span=call.span)


@builtin("one_hot", "labels", Param("depth", domain=SIZE))
def _one_hot(lw, call, a):
    return lw.emit(ops.OneHot(a["depth"], "f32"), a["labels"], span=call.span)


@builtin("dense", "x", Param("units", domain=SIZE), Param("bias", True, Flag()),
         Param("init", Init("glorot_uniform"), Initializer()), Param("bias_init", Init("zeros"), Initializer()))
def _dense(lw, call, a):
    """A fully connected layer owning W [in, units] (Glorot-uniform, as Keras) and b [units] (zeros)."""
    x, units = a["x"], a["units"]
    if x.type.rank < 1 or not isinstance(x.type.shape[-1], int):
        raise BmcError(f"dense's input must end in a static feature dim, got {x.type}", call.span)
    if not x.type.is_float:
        raise BmcError(f"dense's input must be floating-point, got {x.type}", a.span("x"),
                       notes=(f"convert it with cast({a.span('x').text()}, f32)",))
    prefix = lw.owner_prefix("dense")
    dt = x.type.dtype
    w = lw.add_param(f"{prefix}.W", TensorType(dt, (x.type.shape[-1], units)), a["init"], decay=True,
                     span=call.span)
    if not a["bias"]:
        return lw.emit(ops.MatMul(), x, w, span=call.span) if x.type.rank >= 2 else lw.emit(
            ops.Reshape((units,)), lw.emit(ops.MatMul(), lw.emit(ops.Reshape((1, -1)), x, span=call.span), w,
                                           span=call.span), span=call.span)
    b = lw.add_param(f"{prefix}.b", TensorType(dt, (units,)), a["bias_init"], decay=False, span=call.span)
    return lw.emit(ops.Dense(), x, w, b, span=call.span)


# ---- losses and penalties -------------------------------------------------------------------------------------------


@builtin("cross_entropy", "logits", "labels")
def _cross_entropy(lw, call, a):
    return lw.emit(ops.CrossEntropy(), a["logits"], a["labels"], span=call.span)


@builtin("binary_cross_entropy", "logits", "labels")
def _binary_cross_entropy(lw, call, a):
    logits, labels = a["logits"], a["labels"]
    if labels.type.dtype in INT_DTYPES or labels.type.dtype == "bool":
        labels = lw.emit(ops.Cast(logits.type.dtype), labels, span=call.span)
    return lw.emit(ops.BinaryCrossEntropy(), logits, labels, span=call.span)


@builtin("mse", "prediction", "target")
def _mse(lw, call, a):
    p, t = a["prediction"], a["target"]
    if t.type.dtype != p.type.dtype and p.type.is_float:
        t = lw.emit(ops.Cast(p.type.dtype), t, span=call.span)
    if t.type.shape != p.type.shape and p.type.shape[-1:] == (1,) and t.type.shape == p.type.shape[:-1]:
        t = lw.emit(ops.Reshape(p.type.shape), t, span=call.span)  # targets [N] against predictions [N, 1]
    return lw.emit(ops.MeanSquaredError(), p, t, span=call.span)


@builtin("l2", "x")
def _l2(lw, call, a):
    """sum(x^2): add `lambda * l2(W)` to a loss for an L2 penalty."""
    x = a["x"]
    return E.sum_(_at(lw, call), E.mul(_at(lw, call), x, x))


@builtin("l1", "x")
def _l1(lw, call, a):
    """sum(|x|)."""
    return E.sum_(_at(lw, call), lw.emit(ops.Abs(), a["x"], span=call.span))


def _at(lw, call):
    return lw.at(call)


