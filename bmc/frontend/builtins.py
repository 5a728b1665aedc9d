"""The functions a `.bm` expression can call, each with its signature.

A handler gets the lowerer, the call (for spans) and the bound arguments (AST expressions or defaults); it
evaluates them through the lowerer, which gives every argument error its `.bm` location.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bmc import ops
from bmc.diagnostics import BmcError
from bmc.frontend.signature import REQUIRED, Signature
from bmc.init import Init
from bmc.ir.graph import Value
from bmc.ir.types import DTYPES, INT_DTYPES, TensorType
from bmc.ops import emit as E
from bmc.syntax import ast

Handler = Callable[[Any, ast.Call, dict[str, Any]], Any]
BUILTINS: dict[str, tuple[Signature, Handler]] = {}
PARAM_OWNERS = {"dense"}  # builtins that create parameters, named after the statement that calls them


def builtin(name: str, *params: str | tuple[str, Any]):
    sig = Signature(name, tuple((p, REQUIRED) if isinstance(p, str) else p for p in params))

    def register(handler: Handler) -> Handler:
        BUILTINS[name] = (sig, handler)
        return handler

    return register


# ---- elementwise math ---------------------------------------------------------------------------------------------

UNARY = {"exp": ops.Exp, "log": ops.Log, "sqrt": ops.Sqrt, "tanh": ops.Tanh, "sigmoid": ops.Sigmoid,
         "relu": ops.Relu, "gelu": ops.Gelu, "abs": ops.Abs, "sign": ops.Sign}


def _unary(op_type):
    def handler(lw, call, a):
        return lw.emit(op_type(), lw.tensor(a["x"]), span=call.span)

    return handler


for _name, _op in UNARY.items():
    builtin(_name, "x")(_unary(_op))


def _binary(op_type):
    def handler(lw, call, a):
        x, y = lw.expr(a["x"]), lw.expr(a["y"])
        if not isinstance(x, Value) and not isinstance(y, Value):
            raise BmcError(f"{call.func}() needs at least one tensor", call.span)
        fake = ast.BinOp("+", a["x"], a["y"], call.span)
        x, y = lw.promote_literal(x, y, fake), lw.promote_literal(y, x, fake)
        return lw.emit(op_type(), x, y, span=call.span)

    return handler


builtin("maximum", "x", "y")(_binary(ops.Maximum))
builtin("minimum", "x", "y")(_binary(ops.Minimum))


@builtin("where", "condition", "x", "y")
def _where(lw, call, a):
    c = lw.tensor(a["condition"], "where's condition")
    x, y = lw.expr(a["x"]), lw.expr(a["y"])
    fake = ast.BinOp("+", a["x"], a["y"], call.span)
    if not isinstance(x, Value) and not isinstance(y, Value):
        x = lw.emit(ops.Const(float(x), "f32"), span=call.span)
    x, y = lw.promote_literal(x, y, fake), lw.promote_literal(y, x, fake)
    return lw.emit(ops.Where(), c, x, y, span=call.span)


@builtin("cast", "x", "dtype")
def _cast(lw, call, a):
    x = lw.tensor(a["x"])
    d = a["dtype"]
    if not isinstance(d, ast.Name) or d.id not in DTYPES:
        raise BmcError(f"cast() expects a dtype: one of {', '.join(DTYPES)}", d.span)
    return lw.emit(ops.Cast(d.id), x, span=call.span)


@builtin("matmul", "x", "y")
def _matmul(lw, call, a):
    return lw.emit(ops.MatMul(), lw.tensor(a["x"]), lw.tensor(a["y"]), span=call.span)


# ---- reductions ---------------------------------------------------------------------------------------------------


def _reduction(op_type):
    def handler(lw, call, a):
        x = lw.tensor(a["x"])
        return lw.emit(op_type(lw.axes(a["axis"]), lw.boolean(a["keepdims"], "keepdims")), x, span=call.span)

    return handler


for _name, _op in {"sum": ops.Sum, "mean": ops.Mean, "max": ops.Max}.items():
    builtin(_name, "x", ("axis", None), ("keepdims", False))(_reduction(_op))


# ---- shapes ------------------------------------------------------------------------------------------------------


@builtin("reshape", "x", "shape")
def _reshape(lw, call, a):
    x = lw.tensor(a["x"])
    shape = []
    for d in lw.int_list(a["shape"], "reshape's shape"):
        if isinstance(d, ast.Neg) and isinstance(d.operand, ast.Num) and d.operand.value == 1:
            shape.append(-1)
        else:
            shape.append(lw.dim(d, allow_symbols=True))
    return lw.emit(ops.Reshape(tuple(shape)), x, span=call.span)


@builtin("flatten", "x", ("start", 1))
def _flatten(lw, call, a):
    """Keep the dims before `start` (the batch), merge the rest: [N, 28, 28] -> [N, 784]."""
    x = lw.tensor(a["x"])
    start = lw.integer(a["start"], "flatten's start")
    if not 0 <= start < max(x.type.rank, 1):
        raise BmcError(f"flatten start {start} is out of range for {x.type}", call.span)
    return lw.emit(ops.Reshape((*x.type.shape[:start], -1)), x, span=call.span)


@builtin("transpose", "x", ("perm", None))
def _transpose(lw, call, a):
    x = lw.tensor(a["x"])
    if a["perm"] is None:
        perm = (*range(x.type.rank - 2), x.type.rank - 1, x.type.rank - 2) if x.type.rank >= 2 else (0,)
    else:
        perm = tuple(lw.integer(p, "a permutation entry") for p in lw.int_list(a["perm"], "transpose's perm"))
    return lw.emit(ops.Transpose(perm), x, span=call.span)


@builtin("concat", "tensors", ("axis", -1))
def _concat(lw, call, a):
    items = [lw.tensor(t) for t in lw.int_list(a["tensors"], "concat's first argument")]
    return lw.emit(ops.Concat(lw.integer(a["axis"], "axis")), *items, span=call.span)


# ---- neural-network layers -------------------------------------------------------------------------------------


@builtin("softmax", "x", ("axis", -1))
def _softmax(lw, call, a):
    return lw.emit(ops.Softmax(lw.integer(a["axis"], "axis")), lw.tensor(a["x"]), span=call.span)


@builtin("log_softmax", "x", ("axis", -1))
def _log_softmax(lw, call, a):
    return lw.emit(ops.LogSoftmax(lw.integer(a["axis"], "axis")), lw.tensor(a["x"]), span=call.span)


@builtin("one_hot", "labels", "depth")
def _one_hot(lw, call, a):
    return lw.emit(ops.OneHot(lw.size(a["depth"], "one_hot's depth"), "f32"), lw.tensor(a["labels"]), span=call.span)


@builtin("dense", "x", "units", ("bias", True), ("init", Init("glorot_uniform")), ("bias_init", Init("zeros")))
def _dense(lw, call, a):
    """A fully connected layer owning W [in, units] (Glorot-uniform, as Keras) and b [units] (zeros)."""
    x = lw.tensor(a["x"], "dense's input")
    units = lw.size(a["units"], "dense's units")
    if x.type.rank < 1 or not isinstance(x.type.shape[-1], int):
        raise BmcError(f"dense's input must end in a static feature dim, got {x.type}", call.span)
    if not x.type.is_float:
        raise BmcError(f"dense's input must be floating-point, got {x.type}", a["x"].span,
                       notes=(f"convert it with cast({a['x'].span.text()}, f32)",))
    prefix = lw.owner_prefix("dense")
    dt = x.type.dtype
    w = lw.add_param(f"{prefix}.W", TensorType(dt, (x.type.shape[-1], units)), lw.initializer(a["init"]),
                     decay=True, span=call.span)
    if not lw.boolean(a["bias"], "bias"):
        return lw.emit(ops.MatMul(), x, w, span=call.span) if x.type.rank >= 2 else lw.emit(
            ops.Reshape((units,)), lw.emit(ops.MatMul(), lw.emit(ops.Reshape((1, -1)), x, span=call.span), w,
                                           span=call.span), span=call.span)
    b = lw.add_param(f"{prefix}.b", TensorType(dt, (units,)), lw.initializer(a["bias_init"]), decay=False,
                     span=call.span)
    return lw.emit(ops.Dense(), x, w, b, span=call.span)


# ---- losses and penalties -------------------------------------------------------------------------------------------


@builtin("cross_entropy", "logits", "labels")
def _cross_entropy(lw, call, a):
    logits, labels = lw.tensor(a["logits"], "logits"), lw.tensor(a["labels"], "labels")
    return lw.emit(ops.CrossEntropy(), logits, labels, span=call.span)


@builtin("binary_cross_entropy", "logits", "labels")
def _binary_cross_entropy(lw, call, a):
    logits, labels = lw.tensor(a["logits"], "logits"), lw.tensor(a["labels"], "labels")
    if labels.type.dtype in INT_DTYPES or labels.type.dtype == "bool":
        labels = lw.emit(ops.Cast(logits.type.dtype), labels, span=call.span)
    return lw.emit(ops.BinaryCrossEntropy(), logits, labels, span=call.span)


@builtin("mse", "prediction", "target")
def _mse(lw, call, a):
    p, t = lw.tensor(a["prediction"], "prediction"), lw.tensor(a["target"], "target")
    if t.type.dtype != p.type.dtype and p.type.is_float:
        t = lw.emit(ops.Cast(p.type.dtype), t, span=call.span)
    if t.type.shape != p.type.shape and p.type.shape[-1:] == (1,) and t.type.shape == p.type.shape[:-1]:
        t = lw.emit(ops.Reshape(p.type.shape), t, span=call.span)  # targets [N] against predictions [N, 1]
    return lw.emit(ops.MeanSquaredError(), p, t, span=call.span)


@builtin("l2", "x")
def _l2(lw, call, a):
    """sum(x^2): add `lambda * l2(W)` to a loss for an L2 penalty."""
    x = lw.tensor(a["x"])
    return E.sum_(_at(lw, call), E.mul(_at(lw, call), x, x))


@builtin("l1", "x")
def _l1(lw, call, a):
    """sum(|x|)."""
    x = lw.tensor(a["x"])
    return E.sum_(_at(lw, call), lw.emit(ops.Abs(), x, span=call.span))


def _at(lw, call):
    return lw.at(call)


from bmc.frontend import layers  # noqa: E402, F401 - registers the neural-network layers
