"""Elementwise ops: constants, unary math, binary arithmetic with NumPy broadcasting, comparisons, where, cast."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from bmc.ir.flops import NONE
from bmc.ir.types import DTYPES, TensorType, TypeError_, broadcast_shapes, promote, scalar
from bmc.ops import emit as E
from bmc.ops.base import Op

__all__ = [  # the ops, which bmc.ops re-exports
    "Abs", "Add", "Cast", "Compare", "Const", "Div", "Exp", "Gelu", "GeluGrad", "Log", "Maximum", "Minimum", "Mul",
    "Neg", "Pow", "Relu", "Sigmoid", "Sign", "Sqrt", "Sub", "Tanh", "Where",
]


@dataclass(frozen=True)
class Const(Op):
    """A scalar constant; binary ops broadcast it."""

    name: ClassVar[str] = "const"
    elementwise: ClassVar[bool] = True
    value: float | int
    dtype: str

    def infer(self) -> TensorType:
        return scalar(self.dtype)

    def key(self) -> object:  # -0.0 == 0.0 in Python, but 1 / -0.0 is -inf: keep them apart
        return (Const, repr(self.value), self.dtype)

    def flops(self, inputs, outputs):  # a value, not arithmetic
        return NONE

    def vjp(self, b, node, grads):
        return ()


# ---- unary -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unary(Op):
    elementwise: ClassVar[bool] = True
    float_only: ClassVar[bool] = True
    builtin: ClassVar[bool] = True  # a `.bm` function of its name (bmc/frontend/builtins.py reads this)

    def infer(self, x: TensorType) -> TensorType:
        if self.float_only and not x.is_float:
            raise TypeError_(f"{self.name} expects a floating-point tensor, got {x}")
        no_bool(self.name, x)
        return x


def no_bool(name: str, *types: TensorType) -> None:
    """Arithmetic is on numbers: NumPy refuses -b or computes an integer sum(b), ONNX has no bool kernels for it."""
    if any(t.dtype == "bool" for t in types):
        raise TypeError_(f"{name} expects numbers, got {' and '.join(map(str, types))} (use cast(x, f32) on "
                         "truth values)")


@dataclass(frozen=True)
class Neg(Unary):
    name: ClassVar[str] = "neg"
    float_only: ClassVar[bool] = False
    builtin: ClassVar[bool] = False  # written -x

    def vjp(self, b, node, grads):
        return (E.neg(b, grads[0]),)


@dataclass(frozen=True)
class Exp(Unary):
    name: ClassVar[str] = "exp"

    def vjp(self, b, node, grads):  # d exp(x) = exp(x) dx
        return (E.mul(b, grads[0], node.outputs[0]),)


@dataclass(frozen=True)
class Log(Unary):
    name: ClassVar[str] = "log"

    def vjp(self, b, node, grads):  # d log(x) = dx / x
        return (E.div(b, grads[0], node.inputs[0]),)


@dataclass(frozen=True)
class Sqrt(Unary):
    name: ClassVar[str] = "sqrt"

    def vjp(self, b, node, grads):  # d sqrt(x) = dx / (2 sqrt(x))
        y = node.outputs[0]
        return (E.div(b, grads[0], E.mul(b, E.like(b, 2.0, y), y)),)


@dataclass(frozen=True)
class Abs(Unary):
    name: ClassVar[str] = "abs"
    float_only: ClassVar[bool] = False

    def vjp(self, b, node, grads):  # d |x| = sign(x) dx
        return (E.mul(b, grads[0], b.emit(Sign(), node.inputs[0])),)


@dataclass(frozen=True)
class Sign(Unary):
    name: ClassVar[str] = "sign"
    float_only: ClassVar[bool] = False
    differentiable: ClassVar[bool] = False

    def vjp(self, b, node, grads):  # piecewise constant: zero gradient
        return (None,)


@dataclass(frozen=True)
class Tanh(Unary):
    name: ClassVar[str] = "tanh"

    def vjp(self, b, node, grads):  # d tanh = (1 - y^2) dx
        y = node.outputs[0]
        return (E.mul(b, grads[0], E.sub(b, E.like(b, 1.0, y), E.mul(b, y, y))),)


@dataclass(frozen=True)
class Sigmoid(Unary):
    name: ClassVar[str] = "sigmoid"

    def vjp(self, b, node, grads):  # d sigmoid = y (1 - y) dx
        y = node.outputs[0]
        return (E.mul(b, grads[0], E.mul(b, y, E.sub(b, E.like(b, 1.0, y), y))),)

    def decompose(self, b, x):  # 1 / (1 + exp(-x))
        one = E.like(b, 1.0, x)
        return E.div(b, one, E.add(b, one, E.exp(b, E.neg(b, x))))


@dataclass(frozen=True)
class Relu(Unary):
    name: ClassVar[str] = "relu"

    def vjp(self, b, node, grads):  # pass the gradient where the output is positive
        y = node.outputs[0]
        zero = E.like(b, 0.0, y)
        return (E.where(b, E.greater(b, y, zero), grads[0], zero),)

    def decompose(self, b, x):
        return b.emit(Maximum(), x, E.like(b, 0.0, x))


GELU_K = math.sqrt(2.0 / math.pi)
GELU_C = 0.044715


@dataclass(frozen=True)
class Gelu(Unary):
    """GELU, tanh form: 0.5 x (1 + tanh(k (x + c x^3))), as in ONNX Gelu(approximate="tanh") and GPT-2."""

    name: ClassVar[str] = "gelu"

    def vjp(self, b, node, grads):
        return (b.emit(GeluGrad(), node.inputs[0], grads[0]),)

    def decompose(self, b, x):
        half, one = E.like(b, 0.5, x), E.like(b, 1.0, x)
        inner = E.mul(b, E.like(b, GELU_K, x), E.add(b, x, E.mul(b, E.like(b, GELU_C, x), E.mul(b, x, E.mul(b, x, x)))))
        return E.mul(b, E.mul(b, half, x), E.add(b, one, b.emit(Tanh(), inner)))


@dataclass(frozen=True)
class GeluGrad(Op):
    """dy * d gelu(x)/dx; a separate op so a backend can fuse it, with a decomposition for the rest."""

    name: ClassVar[str] = "gelu_grad"
    elementwise: ClassVar[bool] = True
    differentiable: ClassVar[bool] = False

    def infer(self, x: TensorType, g: TensorType) -> TensorType:
        return x

    def decompose(self, b, x, g):
        # t = tanh(k (x + c x^3));  d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2)
        half, one = E.like(b, 0.5, x), E.like(b, 1.0, x)
        x2 = E.mul(b, x, x)
        t = b.emit(Tanh(), E.mul(b, E.like(b, GELU_K, x), E.add(b, x, E.mul(b, E.like(b, GELU_C, x), E.mul(b, x2, x)))))
        left = E.mul(b, half, E.add(b, one, t))
        dinner = E.mul(b, E.like(b, GELU_K, x), E.add(b, one, E.mul(b, E.like(b, 3 * GELU_C, x), x2)))
        right = E.mul(b, E.mul(b, half, x), E.mul(b, E.sub(b, one, E.mul(b, t, t)), dinner))
        return E.mul(b, g, E.add(b, left, right))


# ---- binary ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binary(Op):
    elementwise: ClassVar[bool] = True

    def infer(self, x: TensorType, y: TensorType) -> TensorType:
        no_bool(self.name, x, y)
        return TensorType(promote(x.dtype, y.dtype), broadcast_shapes(x.shape, y.shape))


@dataclass(frozen=True)
class Add(Binary):
    name: ClassVar[str] = "add"

    def vjp(self, b, node, grads):
        return grads[0], grads[0]


@dataclass(frozen=True)
class Sub(Binary):
    name: ClassVar[str] = "sub"

    def vjp(self, b, node, grads):
        return grads[0], E.neg(b, grads[0])


@dataclass(frozen=True)
class Mul(Binary):
    name: ClassVar[str] = "mul"

    def vjp(self, b, node, grads):
        x, y = node.inputs
        return E.mul(b, grads[0], y), E.mul(b, grads[0], x)


@dataclass(frozen=True)
class Div(Binary):
    name: ClassVar[str] = "div"

    def infer(self, x: TensorType, y: TensorType) -> TensorType:
        if not x.is_float or not y.is_float:
            raise TypeError_(f"'/' divides floating-point tensors, got {x} and {y} (use cast(x, f32))")
        return super().infer(x, y)

    def vjp(self, b, node, grads):  # d(x/y) = dx / y - (x/y) dy / y
        y, out = node.inputs[1], node.outputs[0]
        gx = E.div(b, grads[0], y)
        return gx, E.neg(b, E.mul(b, gx, out))


@dataclass(frozen=True)
class Pow(Binary):
    name: ClassVar[str] = "pow"

    def infer(self, x: TensorType, y: TensorType) -> TensorType:
        if not x.is_float:
            raise TypeError_(f"** expects a floating-point base, got {x}")
        return super().infer(x, y)

    def vjp(self, b, node, grads):  # d x^y = y x^(y-1) dx + x^y log(x) dy
        (x, y), out = node.inputs, node.outputs[0]
        gx = E.mul(b, grads[0], E.mul(b, y, b.emit(Pow(), x, E.sub(b, y, E.like(b, 1.0, y)))))
        if y.producer is not None and isinstance(y.producer.op, Const):
            return gx, None
        # x^y log(x), with 0^y log(0) taken as its limit 0 (not 0 * -inf)
        one = E.like(b, 1.0, x)
        safe = E.where(b, E.equal(b, x, E.like(b, 0.0, x)), one, x)
        return gx, E.mul(b, grads[0], E.mul(b, out, E.log(b, safe)))


@dataclass(frozen=True)
class Maximum(Binary):
    name: ClassVar[str] = "maximum"

    def vjp(self, b, node, grads):  # ties send the gradient to the first argument
        x, y = node.inputs
        zero = E.like(b, 0.0, grads[0])
        ge = b.emit(Compare(">="), x, y)
        return E.where(b, ge, grads[0], zero), E.where(b, ge, zero, grads[0])


@dataclass(frozen=True)
class Minimum(Binary):
    name: ClassVar[str] = "minimum"

    def vjp(self, b, node, grads):
        x, y = node.inputs
        zero = E.like(b, 0.0, grads[0])
        le = b.emit(Compare("<="), x, y)
        return E.where(b, le, grads[0], zero), E.where(b, le, zero, grads[0])


COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


@dataclass(frozen=True)
class Compare(Op):
    name: ClassVar[str] = "compare"
    elementwise: ClassVar[bool] = True
    differentiable: ClassVar[bool] = False
    op: str

    def infer(self, x: TensorType, y: TensorType) -> TensorType:
        assert self.op in COMPARISONS
        if self.op not in ("==", "!="):  # truth values are equal or not, not ordered
            no_bool(f"'{self.op}'", x, y)
        return TensorType("bool", TensorType(promote(x.dtype, y.dtype), broadcast_shapes(x.shape, y.shape)).shape)

    def vjp(self, b, node, grads):
        return None, None


@dataclass(frozen=True)
class Where(Op):
    name: ClassVar[str] = "where"
    elementwise: ClassVar[bool] = True

    def infer(self, c: TensorType, x: TensorType, y: TensorType) -> TensorType:
        if c.dtype != "bool":
            raise TypeError_(f"where expects a bool condition, got {c}")
        return TensorType(promote(x.dtype, y.dtype), broadcast_shapes(c.shape, x.shape, y.shape))

    def vjp(self, b, node, grads):
        c = node.inputs[0]
        zero = E.like(b, 0.0, grads[0])
        return None, E.where(b, c, grads[0], zero), E.where(b, c, zero, grads[0])


@dataclass(frozen=True)
class Cast(Op):
    name: ClassVar[str] = "cast"
    elementwise: ClassVar[bool] = True
    dtype: str

    def infer(self, x: TensorType) -> TensorType:
        if self.dtype not in DTYPES:
            raise TypeError_(f"unknown dtype {self.dtype!r}")
        return x.with_dtype(self.dtype)

    def flops(self, inputs, outputs):  # a conversion, not arithmetic
        return NONE

    def vjp(self, b, node, grads):
        x = node.inputs[0]
        return (E.cast(b, grads[0], x.type.dtype) if x.type.is_float else None,)
