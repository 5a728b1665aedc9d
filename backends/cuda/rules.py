"""The CUDA rule table for ops that need their own kernels (matrix products, reductions, convolutions, scans, ...),
keyed by op class: `@kernel(Op)` registers a function that writes the node's kernels and launches through the
function writer. The rules live in gemm.py, norm.py, reduce.py and scan.py, which the package imports. Element-wise
and indexed ops have element rules instead (pointwise.py) and are fused.

An op with neither is decomposed (`Op.decompose`) before code generation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bmc.rule_table import RuleTable

if TYPE_CHECKING:
    from bmc.backends.cuda.codegen import FunctionWriter
    from bmc.backends.cuda.memory import Request
    from bmc.backends.cuda.schedule import Item


Emit = Callable[["Item", "FunctionWriter"], None]
Workspace = Callable[["Item", "FunctionWriter"], "list[Request]"]

# options: `workspace` sizes the scratch memory a kernel needs (or None); `skip_unused`: outputs nobody reads get no
# memory (a scan's unused history)
KERNELS: RuleTable[Emit] = RuleTable("cuda", "kernel", workspace=None, skip_unused=False)
kernel = KERNELS.register
