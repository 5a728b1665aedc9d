"""Shapes of the results an import writes: NumPy broadcasting over dims that may be symbolic."""

from __future__ import annotations

from bmc.ir.types import Dim
from bmc.onnx_import.context import Unsupported


def broadcast(*shapes: tuple[Dim, ...]) -> tuple[Dim, ...]:
    rank = max(len(s) for s in shapes)
    out: list[Dim] = []
    for i in range(rank):
        ds = {s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0} - {1}
        if len(ds) > 1:
            raise Unsupported(f"its operands' shapes {[list(s) for s in shapes]} do not broadcast")
        out.append(ds.pop() if ds else 1)
    return tuple(out)


def axis(a: int, rank: int) -> int:
    if not -rank <= a < max(rank, 1):
        raise Unsupported(f"axis {a} is out of range for rank {rank}")
    return a % max(rank, 1)
