"""Every op of the IR, defined once. Importing this package registers them all in `REGISTRY`."""

from bmc.ops import elementwise, linalg, losses, nn, reduce, shape
from bmc.ops.base import REGISTRY, NotDifferentiable, Op
from bmc.ops.elementwise import (
    Abs,
    Add,
    Cast,
    Compare,
    Const,
    Div,
    Exp,
    Gelu,
    GeluGrad,
    Log,
    Maximum,
    Minimum,
    Mul,
    Neg,
    Pow,
    Relu,
    Sigmoid,
    Sign,
    Sqrt,
    Sub,
    Tanh,
    Where,
)
from bmc.ops.linalg import MatMul
from bmc.ops.losses import BinaryCrossEntropy, CrossEntropy, MeanSquaredError
from bmc.ops.nn import Dense, LogSoftmax, OneHot, Softmax
from bmc.ops.reduce import Max, Mean, Sum
from bmc.ops.shape import BroadcastTo, Concat, Reshape, SizeOf, Slice, Transpose

__all__ = [
    "REGISTRY", "Abs", "Add", "BinaryCrossEntropy", "BroadcastTo", "Cast", "Compare", "Concat", "Const",
    "CrossEntropy", "Dense", "Div", "Exp", "Gelu", "GeluGrad", "Log", "LogSoftmax", "MatMul", "Max", "Maximum",
    "Mean", "MeanSquaredError", "Minimum", "Mul", "Neg", "NotDifferentiable", "OneHot", "Op", "Pow", "Relu",
    "Reshape", "Sigmoid", "Sign", "SizeOf", "Slice", "Softmax", "Sqrt", "Sub", "Sum", "Tanh", "Transpose", "Where",
    "elementwise", "linalg", "losses", "nn", "reduce", "shape",
]
