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
    "Abs", "Add", "Cast", "Clip", "Compare", "Const", "Div", "Erf", "Exp", "Gelu", "GeluGrad", "HardSigmoid",
    "HardSwish", "LeakyRelu", "Log", "Maximum", "Minimum", "Mul", "Neg", "Pow", "Relu", "Sigmoid", "Sign", "Sqrt",
    "Sub", "Tanh", "Where",
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


@dataclass(frozen=True)
class LeakyRelu(Unary):
    """x where x > 0, alpha x elsewhere (ONNX LeakyRelu, PyTorch's F.leaky_relu: the gradient at 0 is alpha)."""

    name: ClassVar[str] = "leaky_relu"
    alpha: float = 0.01

    def vjp(self, b, node, grads):  # dx where x > 0, alpha dx elsewhere
        x, g = node.inputs[0], grads[0]
        return (E.where(b, E.greater(b, x, E.like(b, 0.0, x)), g, E.mul(b, E.like(b, self.alpha, g), g)),)

    def decompose(self, b, x):
        return E.where(b, E.greater(b, x, E.like(b, 0.0, x)), x, E.mul(b, E.like(b, self.alpha, x), x))


@dataclass(frozen=True)
class HardSigmoid(Unary):
    """max(0, min(1, alpha x + beta)) (ONNX HardSigmoid; PyTorch's Hardsigmoid is alpha = 1/6, beta = 0.5)."""

    name: ClassVar[str] = "hard_sigmoid"
    alpha: float = 0.2
    beta: float = 0.5

    def vjp(self, b, node, grads):  # alpha dx strictly inside the ramp, 0 where it is flat or at its ends (PyTorch)
        y, g = node.outputs[0], grads[0]
        zero = E.like(b, 0.0, g)
        inside = E.where(b, b.emit(Compare("<"), y, E.like(b, 1.0, y)), E.mul(b, E.like(b, self.alpha, g), g), zero)
        return (E.where(b, E.greater(b, y, E.like(b, 0.0, y)), inside, zero),)

    def decompose(self, b, x):
        ramp = E.add(b, E.mul(b, E.like(b, self.alpha, x), x), E.like(b, self.beta, x))
        return b.emit(Maximum(), E.like(b, 0.0, x), b.emit(Minimum(), E.like(b, 1.0, x), ramp))


@dataclass(frozen=True)
class HardSwish(Unary):
    """x hard_sigmoid(x, 1/6, 0.5) = x max(0, min(1, x/6 + 0.5)) (ONNX HardSwish, PyTorch's F.hardswish)."""

    name: ClassVar[str] = "hard_swish"

    def vjp(self, b, node, grads):  # 0 for x <= -3, x/3 + 1/2 inside, 1 from x = 3 on (PyTorch's choice at the ends)
        x, g = node.inputs[0], grads[0]
        slope = E.add(b, E.div(b, x, E.like(b, 3.0, x)), E.like(b, 0.5, x))
        inside = E.where(b, E.greater(b, x, E.like(b, -3.0, x)), E.mul(b, g, slope), E.like(b, 0.0, g))
        return (E.where(b, b.emit(Compare(">="), x, E.like(b, 3.0, x)), g, inside),)

    def decompose(self, b, x):
        return E.mul(b, x, b.emit(HardSigmoid(1.0 / 6.0, 0.5), x))


@dataclass(frozen=True)
class Clip(Unary):
    """x limited to [min, max] (either bound may be None: no limit), as ONNX Clip and torch.clamp. The gradient
    passes where min <= x <= max, the bounds included, as torch.clamp's does (0 elsewhere and for nan)."""

    name: ClassVar[str] = "clip"
    min: float | None = None
    max: float | None = None

    def infer(self, x: TensorType) -> TensorType:
        if self.min is None and self.max is None:
            raise TypeError_("clip needs a min, a max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise TypeError_(f"clip's min {self.min} is greater than its max {self.max}")
        return super().infer(x)

    def vjp(self, b, node, grads):
        x, g = node.inputs[0], grads[0]
        zero = E.like(b, 0.0, g)
        if self.max is not None:
            g = E.where(b, b.emit(Compare("<="), x, E.like(b, self.max, x)), g, zero)
        if self.min is not None:
            g = E.where(b, b.emit(Compare(">="), x, E.like(b, self.min, x)), g, zero)
        return (g,)

    def decompose(self, b, x):  # nan stays nan (np.maximum and np.minimum propagate it)
        if self.min is not None:
            x = b.emit(Maximum(), x, E.like(b, self.min, x))
        if self.max is not None:
            x = b.emit(Minimum(), x, E.like(b, self.max, x))
        return x


# W. J. Cody's rational Chebyshev approximations of erf and erfc (Math. Comp. 23 (1969), 631-637; his CALERF), as
# polynomials with the highest power first, numerator and denominator: erf(x) = x P(x^2) / Q(x^2) for |x| <= 0.46875,
# erfc(y) = exp(-y^2) P(y) / Q(y) for 0.46875 < y <= 4 and exp(-y^2) (1/sqrt(pi) - z P(z) / Q(z)) / y with z = 1/y^2
# beyond. bmc/reference/kernels.py:_erf holds the same numbers (the generated NumPy module copies its source).
ERF_SMALL = ((1.85777706184603153e-1, 3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
              3.20937758913846947e03),
             (1.0, 2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03))
ERFC_MIDDLE = ((2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
                2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03,
                1.23033935479799725e03),
               (1.0, 1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
                3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03))
ERFC_TAIL = ((1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
              1.60837851487422766e-2, 6.58749161529837803e-4),
             (1.0, 2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
              2.33520497626869185e-3))
ERF_SMALL_END, ERF_TAIL_START = 0.46875, 4.0
INV_SQRT_PI = 0.56418958354775628695  # 1 / sqrt(pi)


def _rational(b, t, coefficients):
    """P(t) / Q(t) by Horner's rule, in Cody's order of operations."""
    parts = []
    for poly in coefficients:
        acc = t if poly[0] == 1.0 else E.mul(b, E.like(b, poly[0], t), t)
        for k, c in enumerate(poly[1:], start=2):
            acc = E.add(b, acc, E.like(b, c, t))
            if k < len(poly):
                acc = E.mul(b, acc, t)
        parts.append(acc)
    return E.div(b, *parts)


@dataclass(frozen=True)
class Erf(Unary):
    """The error function 2/sqrt(pi) * integral of exp(-t^2) from 0 to x (ONNX Erf, torch.erf). The decomposition is
    Cody's approximation in elementwise ops (relative error about 1e-16): what an ONNX model of f64 computes, as
    onnxruntime has no double Erf."""

    name: ClassVar[str] = "erf"

    def vjp(self, b, node, grads):  # d erf(x) = 2/sqrt(pi) exp(-x^2) dx
        x = node.inputs[0]
        slope = E.mul(b, E.like(b, 2.0 * INV_SQRT_PI, x), E.exp(b, E.neg(b, E.mul(b, x, x))))
        return (E.mul(b, grads[0], slope),)

    def decompose(self, b, x):
        # each range's formula reads x clamped into its range, so no range overflows where another one is picked
        def clamp(v, low, high):
            return b.emit(Minimum(), b.emit(Maximum(), v, E.like(b, low, x)), E.like(b, high, x))

        y = b.emit(Abs(), x)
        xs = clamp(x, -ERF_SMALL_END, ERF_SMALL_END)
        small = E.mul(b, xs, _rational(b, E.mul(b, xs, xs), ERF_SMALL))
        ym = b.emit(Minimum(), y, E.like(b, ERF_TAIL_START, x))
        middle = E.mul(b, E.exp(b, E.neg(b, E.mul(b, ym, ym))), _rational(b, ym, ERFC_MIDDLE))
        yt = clamp(y, ERF_TAIL_START, 27.0)  # erfc(27) is 0 in f64 already
        yt2 = E.mul(b, yt, yt)
        z = E.div(b, E.like(b, 1.0, x), yt2)
        tail = E.div(b, E.sub(b, E.like(b, INV_SQRT_PI, x), E.mul(b, z, _rational(b, z, ERFC_TAIL))), yt)
        tail = E.mul(b, E.exp(b, E.neg(b, yt2)), tail)
        erfc = E.where(b, b.emit(Compare("<="), y, E.like(b, ERF_TAIL_START, x)), middle, tail)
        half = E.like(b, 0.5, x)
        large = E.mul(b, b.emit(Sign(), x), E.add(b, E.sub(b, half, erfc), half))  # (0.5 - erfc) + 0.5, as Cody
        return E.where(b, b.emit(Compare("<="), y, E.like(b, ERF_SMALL_END, x)), small, large)


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
