"""What an ONNX tensor is while its graph is imported: a `Tensor` (computed by the model, written as an expression)
or a `Known` value (an initializer, a Constant, or a shape computation folded at import, possibly holding
symbolic dims such as N)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bmc.ir.types import Dim
from bmc.onnx_import.expr import Expr

# ONNX TensorProto element types the language has
DTYPES = {1: "f32", 11: "f64", 7: "i64", 6: "i32", 9: "bool"}
NUMPY = {"f32": np.float32, "f64": np.float64, "i64": np.int64, "i32": np.int32, "bool": np.bool_}


@dataclass(eq=False)
class Tensor:
    expr: Expr
    dtype: str
    shape: tuple[Dim, ...]
    onnx: str  # the ONNX tensor name
    nodes: list[str] = field(default_factory=list)  # the ONNX nodes its expression folds in, for the comment
    line: int = 0  # where its statement is, once it has one
    tag: str = ""  # what a later rule may fuse it with: "matmul" (a dense without bias), "gap" (global pooling)
    inner: bool = False  # a step of a rule on the way to the node's output (context.py Context.result)
    base_shape: tuple[Dim, ...] | None = None  # for a transpose or reshape written inline: its operand's shape
    view: tuple | None = None  # an inline chain of reshapes and transposes: (root expr, root shape, steps)

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass(eq=False)
class Known:
    """A value known at import. `value` is an ndarray; a shape computation's has dtype object, with symbolic dims
    (strings) among its ints. `initializer` names the ONNX initializer it is, when it is one."""

    value: np.ndarray
    initializer: str | None = None

    @property
    def symbolic(self) -> bool:
        return self.value.dtype == object


@dataclass(eq=False)
class Filled:
    """A tensor of one value whose shape holds symbolic dims: a ConstantOfShape of a computed shape, as PyTorch
    exports an RNN's zero initial state. Only a rule that knows what to do with it (the recurrent layers take zero
    states) reads it; as an operand anywhere else it is not importable."""

    fill: float | int | bool
    dtype: str
    shape: tuple[Dim, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)


Value = Tensor | Known | Filled
