"""The CUDA rule table for ops that need their own kernels (matrix products, reductions, convolutions, scans, ...),
keyed by op class: `@kernel(Op)` registers a function that writes the node's kernels and launches through the
function writer. Element-wise and indexed ops have element rules instead (pointwise.py) and are fused.

An op with neither is decomposed (`Op.decompose`) before code generation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bmc.ops.base import Op

if TYPE_CHECKING:
    from bmc.backends.cuda.codegen import FunctionWriter
    from bmc.backends.cuda.memory import Request
    from bmc.backends.cuda.schedule import Item


@dataclass(frozen=True)
class Rule:
    emit: Callable[[Item, FunctionWriter], None]
    workspace: Callable[[Item, FunctionWriter], list[Request]] | None = None
    skip_unused: bool = False  # outputs nobody reads get no memory (a scan's unused history)


KERNELS: dict[type[Op], Rule] = {}


def kernel(*op_types: type[Op], workspace=None, skip_unused: bool = False):
    def register(emit):
        for t in op_types:
            KERNELS[t] = Rule(emit, workspace, skip_unused)
        return emit

    return register


def _load_rules() -> None:
    from bmc.backends.cuda import gemm, norm, reduce, scan  # noqa: F401 - they register their rules


_load_rules()
