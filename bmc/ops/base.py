"""The `Op` base class and registry.

An op is defined once, backend-neutral, as a frozen dataclass whose fields are its attributes:

* `infer(*types)`: the shape/dtype rule; raises `TypeError_` with a readable message;
* `vjp(b, node, grads)`: the gradient rule, emitting ordinary IR through the builder `b`;
* `decompose(b, *inputs)` (composite ops only): the op in smaller ops, so a backend without a dedicated lowering
  still works;
* `flops(inputs, outputs)`: its cost for the cost report (bmc/cost.py), as polynomials in the symbolic dims.

Backends register lowerings per op class in their own modules; nothing backend-specific lives here.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from bmc.ir.flops import NONE, Flops, elementwise, graph_flops
from bmc.ir.graph import Builder, Graph
from bmc.ir.types import TensorType

if TYPE_CHECKING:
    from bmc.ir.graph import Node, Value

REGISTRY: dict[str, type[Op]] = {}


class NotDifferentiable(Exception):  # noqa: N818 - reads as a statement about an op
    """The op has no gradient rule (autodiff then differentiates its decomposition, if it has one)."""


@dataclasses.dataclass(frozen=True)
class Op:
    name: ClassVar[str] = ""
    elementwise: ClassVar[bool] = False  # output[i] depends only on inputs[i] (after broadcasting): fusable
    pure: ClassVar[bool] = True  # CSE may merge two equal nodes
    differentiable: ClassVar[bool] = True

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.name:
            assert cls.name not in REGISTRY, f"op {cls.name} defined twice"
            REGISTRY[cls.name] = cls

    def infer(self, *types: TensorType) -> TensorType | tuple[TensorType, ...]:
        raise NotImplementedError(self.name)

    def vjp(self, b: Builder, node: Node, grads: tuple[Value | None, ...]) -> tuple[Value | None, ...]:
        raise NotDifferentiable(self.name)

    def decompose(self, b: Builder, *inputs: Value) -> Value | tuple[Value, ...]:
        raise NotImplementedError(f"{self.name} has no decomposition")

    def flops(self, inputs: tuple[TensorType, ...], outputs: tuple[TensorType, ...]) -> Flops:
        """The FLOPs of one application (bmc/ir/flops.py): by default one per output element for an elementwise op,
        a composite's are those of its decomposition, and any other op only moves data (free)."""
        if self.elementwise:
            return elementwise(outputs)
        if self.has_decomposition():
            g = Graph(f"{self.name}_cost")
            args = [g.add_input(t, f"x{i}", "input") for i, t in enumerate(inputs)]
            self.decompose(Builder(g), *args)
            return graph_flops(g)
        return NONE

    def working_set(self, *types: TensorType) -> tuple[TensorType, ...]:
        """Arrays an evaluation of the op holds besides its inputs and outputs (a convolution's unfolded input), for
        the memory check (bmc/memory.py)."""
        return ()

    def dim_limit(self, *types: TensorType) -> tuple[str, int] | None:
        """(symbolic dim, bound) when the op needs that dim to be at most the bound (a slice from 0 to T of a table
        with 64 rows); see `Graph.dim_limits`."""
        return None

    @classmethod
    def has_decomposition(cls) -> bool:
        return cls.decompose is not Op.decompose

    def key(self) -> object:
        """What makes two applications of this op the same computation (CSE merges equal keys)."""
        return self

    def attrs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __str__(self) -> str:
        return self.name
