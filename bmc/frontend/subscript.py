"""`x[...]`: NumPy's basic indexing with static bounds, lowered to slices along one axis each.

An integer takes one element and drops the axis; `start:stop:step` takes a range (negative bounds count from the
end, a negative step runs backwards, omitted bounds take the whole axis in the step's direction, and bounds past
the ends clamp, as in NumPy and ONNX Slice); `...` stands for as many `:` as the other indices leave. A symbolic dim
(N) takes only the whole range; a static axis may be cut to a symbolic length, `table[:T]` (the first T rows, for T
up to the axis' size, checked when T is bound). Every error points at the index it is about.
"""

from __future__ import annotations

from bmc import ops
from bmc.diagnostics import BmcError
from bmc.ir.graph import Value
from bmc.syntax import ast


def subscript(lw, e: ast.Subscript) -> Value:
    x = lw.expr(e.value)
    if not isinstance(x, Value):
        raise BmcError(f"only a tensor can be indexed, not {x!r}", e.value.span)
    rank = x.type.rank
    ellipses = [i for i in e.indices if isinstance(i, ast.Ellipsis_)]
    if len(ellipses) > 1:
        raise BmcError("an index has at most one '...'", ellipses[1].span)
    explicit = [i for i in e.indices if not isinstance(i, ast.Ellipsis_)]
    if len(explicit) > rank:
        raise BmcError(f"{len(explicit)} indices for {x.type}, which has {rank} axes", explicit[rank].span)
    per_axis: list[ast.Expr | ast.Range | None] = []  # None: the whole axis
    for i in e.indices:
        per_axis.extend([None] * (rank - len(explicit)) if isinstance(i, ast.Ellipsis_) else [i])
    per_axis.extend([None] * (rank - len(per_axis)))
    y, dropped = x, []
    for axis, index in enumerate(per_axis):
        if index is None:
            continue
        n = x.type.shape[axis]
        if isinstance(index, ast.Range) and _symbolic(lw, index.stop) and isinstance(n, int):
            if (index.start is not None and lw.integer(index.start, "a slice bound") != 0) or index.step is not None:
                raise BmcError("a slice to a symbolic length starts at 0 with step 1: table[:T]", index.span)
            y = lw.emit(ops.Slice(axis, 0, lw.dim(index.stop, allow_symbols=True)), y, span=index.span)
            continue
        if isinstance(index, ast.Range):
            start, stop, step = (None if b is None else lw.integer(b, "a slice bound")
                                 for b in (index.start, index.stop, index.step))
            if step == 0:
                raise BmcError("a slice's step cannot be 0", index.step.span)
            if not isinstance(n, int):
                if start in (None, 0) and stop is None and step in (None, 1):
                    continue
                raise BmcError(f"axis {axis} of {x.type} is the symbolic dim {n}: it can only be taken whole (':')",
                               index.span)
            start, stop, step = slice(start, stop, step).indices(n)
            if len(range(start, stop, step)) == 0:
                raise BmcError(f"this slice takes no elements of axis {axis} (size {n}) of {x.type}", index.span,
                               notes=("tensors have no empty dims",))
            if (start, stop, step) != (0, n, 1):
                y = lw.emit(ops.Slice(axis, start, stop, step), y, span=index.span)
            continue
        k = lw.integer(index, "an index")
        if not isinstance(n, int):
            raise BmcError(f"axis {axis} of {x.type} is the symbolic dim {n}: it can only be taken whole (':')",
                           index.span)
        if not -n <= k < n:
            raise BmcError(f"index {k} is out of range for axis {axis} (size {n}) of {x.type}", index.span)
        k %= n
        if n > 1:
            y = lw.emit(ops.Slice(axis, k, k + 1), y, span=index.span)
        dropped.append(axis)
    if dropped:
        y = lw.emit(ops.Reshape(tuple(d for a, d in enumerate(y.type.shape) if a not in dropped)), y, span=e.span)
    return y


def _symbolic(lw, e) -> bool:
    """e names a symbolic dim (T: of the model's inputs, or bound by a layer's shape pattern), not a number."""
    if not isinstance(e, ast.Name):
        return False
    scope = lw.scope
    if e.id in scope.dim_vars:
        return isinstance(scope.dim_vars[e.id], str)
    taken = e.id in scope.values or e.id in scope.constants or e.id in scope.statements
    return not taken and e.id in lw.graph.symbols()
