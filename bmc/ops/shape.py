"""Ops that move data without arithmetic: reshape, transpose, broadcast, concat, slice; and SizeOf."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bmc.ir import dims
from bmc.ir.types import Dim, TensorType, TypeError_, broadcast_shapes, normalize_axes, scalar, shape_str
from bmc.ops import emit as E
from bmc.ops.base import Op

__all__ = [  # the ops, which bmc.ops re-exports
    "BroadcastTo", "Concat", "PadEnd", "Reshape", "SizeOf", "Slice", "Split", "Transpose",
]


@dataclass(frozen=True)
class Reshape(Op):
    """Reshape to `shape`; the IR never stores -1: the shape rule resolves it (possibly to a product like `N*T`)."""

    name: ClassVar[str] = "reshape"
    shape: tuple[Dim, ...]

    def infer(self, x: TensorType) -> TensorType:
        return x.with_shape(resolve_reshape(x.shape, self.shape))

    def vjp(self, b, node, grads):
        return (E.reshape(b, grads[0], node.inputs[0].type.shape),)


def resolve_reshape(src: tuple[Dim, ...], target: tuple[Dim, ...]) -> tuple[Dim, ...]:
    total = dims.product(src)
    if sum(1 for d in target if d == -1) > 1:
        raise TypeError_("reshape takes at most one -1")
    known = dims.product([d for d in target if d != -1])
    if -1 in target:
        rest = dims.quotient(total, known)
        if rest is None:
            raise TypeError_(f"cannot reshape {shape_str(src)} into {shape_str(target)}")
        return tuple(rest if d == -1 else d for d in target)
    if dims.product(list(target)) != total:
        raise TypeError_(f"cannot reshape {shape_str(src)} ({total} elements) into {shape_str(target)}")
    return tuple(target)


@dataclass(frozen=True)
class Transpose(Op):
    name: ClassVar[str] = "transpose"
    perm: tuple[int, ...]

    def infer(self, x: TensorType) -> TensorType:
        if sorted(self.perm) != list(range(x.rank)):
            raise TypeError_(f"transpose permutation {list(self.perm)} does not fit a tensor of rank {x.rank}")
        return x.with_shape(tuple(x.shape[p] for p in self.perm))

    def vjp(self, b, node, grads):
        inverse = tuple(sorted(range(len(self.perm)), key=lambda i: self.perm[i]))
        return (E.transpose(b, grads[0], inverse),)


@dataclass(frozen=True)
class BroadcastTo(Op):
    name: ClassVar[str] = "broadcast_to"
    shape: tuple[Dim, ...]

    def infer(self, x: TensorType) -> TensorType:
        if broadcast_shapes(x.shape, self.shape) != tuple(self.shape):
            raise TypeError_(f"cannot broadcast {shape_str(x.shape)} to {shape_str(self.shape)}")
        return x.with_shape(self.shape)

    def vjp(self, b, node, grads):  # autodiff sums the gradient back to the input's shape
        return (grads[0],)


@dataclass(frozen=True)
class Concat(Op):
    name: ClassVar[str] = "concat"
    axis: int

    def infer(self, *xs: TensorType) -> TensorType:
        if not xs:
            raise TypeError_("concat needs at least one tensor")
        first = xs[0]
        (axis,) = normalize_axes((self.axis,), first.rank)
        size: list[Dim] = []
        for x in xs:
            if x.rank != first.rank or x.dtype != first.dtype:
                raise TypeError_(f"concat operands {first} and {x} differ in rank or dtype")
            if any(a != c for i, (a, c) in enumerate(zip(x.shape, first.shape, strict=True)) if i != axis):
                raise TypeError_(f"concat operands {first} and {x} differ outside axis {self.axis}")
            size.append(x.shape[axis])
        if not all(isinstance(s, int) for s in size):
            raise TypeError_("concat along a symbolic dim is not supported")
        return first.with_shape(tuple(sum(size) if i == axis else d for i, d in enumerate(first.shape)))

    def vjp(self, b, node, grads):
        (axis,) = normalize_axes((self.axis,), node.outputs[0].type.rank)
        out, start = [], 0
        for x in node.inputs:
            stop = start + x.type.shape[axis]
            out.append(b.emit(Slice(axis, start, stop), grads[0]))
            start = stop
        return tuple(out)


@dataclass(frozen=True)
class Slice(Op):
    """x[..., start:stop:step, ...] along one axis, as NumPy's basic slicing with normalized bounds: a positive step
    takes start, start + step, ... below stop (0 <= start < stop <= size), a negative one start, start + step, ...
    above stop (-1 <= stop < start < size; stop -1 runs through element 0). Bounds are static, except that a slice
    from 0 with step 1 may stop at a symbolic dim (the first T rows of a table of positions, for sequences of any
    length up to its size)."""

    name: ClassVar[str] = "slice"
    axis: int
    start: int
    stop: Dim
    step: int = 1

    @property
    def count(self) -> int:
        """The number of elements taken (static bounds)."""
        assert isinstance(self.stop, int)
        return len(range(self.start, self.stop, self.step))

    def infer(self, x: TensorType) -> TensorType:
        (axis,) = normalize_axes((self.axis,), x.rank)
        n = x.shape[axis]
        if isinstance(self.stop, str):
            if self.start != 0 or self.step != 1:
                raise TypeError_("a slice to a symbolic dim must start at 0 with step 1")
            return x.with_shape(tuple(self.stop if i == axis else d for i, d in enumerate(x.shape)))
        if self.step > 0:
            fits = 0 <= self.start < self.stop and (not isinstance(n, int) or self.stop <= n)
        else:
            fits = self.step < 0 and isinstance(n, int) and -1 <= self.stop < self.start < n
        if not fits:
            step = f":{self.step}" if self.step != 1 else ""
            raise TypeError_(f"slice {self.start}:{self.stop}{step} is out of range for axis {self.axis} of {x}")
        return x.with_shape(tuple(self.count if i == axis else d for i, d in enumerate(x.shape)))

    def dim_limit(self, x: TensorType) -> tuple[str, int] | None:
        if not isinstance(self.stop, str):
            return None
        (axis,) = normalize_axes((self.axis,), x.rank)
        size = x.shape[axis]
        return (self.stop, size) if isinstance(size, int) else None

    def vjp(self, b, node, grads):
        x, g = node.inputs[0], grads[0]
        (axis,) = normalize_axes((self.axis,), x.type.rank)
        n = x.type.shape[axis]
        if isinstance(self.stop, str):
            return (b.emit(PadEnd(axis, n), g),)
        start, step = self.start, self.step
        if step < 0:  # the same elements in increasing order: reverse g, then scatter with step -step
            start, step = start + (self.count - 1) * step, -step
            g = b.emit(Slice(axis, self.count - 1, -1, -1), g)
        if step > 1:  # each element of g, then step - 1 zeros: [.., m, ..] -> [.., m, step, ..] -> [.., m step]
            shape, m = g.type.shape, self.count
            column = E.reshape(b, g, (*shape[:axis], m, 1, *shape[axis + 1:]))
            zeros = E.broadcast_to(b, E.like(b, 0.0, g), (*shape[:axis], m, step - 1, *shape[axis + 1:]))
            spread = E.reshape(b, b.emit(Concat(axis + 1), column, zeros), (*shape[:axis], m * step, *shape[axis + 1:]))
            length = min(m * step, n - start)  # through the last element taken, at most to the end of the axis
            g = spread if length == m * step else b.emit(Slice(axis, 0, length), spread)
        return (_place(b, g, axis, start, n),)


def _place(b, g, axis: int, start: int, n: Dim):
    """g placed at start along `axis` in zeros of size n: the gradient of a slice of step 1."""
    stop = start + g.type.shape[axis]
    parts = []
    zero = E.like(b, 0.0, g)
    for lo, hi in ((0, start), (stop, n)):
        if isinstance(hi, str) or hi > lo:
            if isinstance(hi, str):
                raise TypeError_("the gradient of a slice along a symbolic dim is not supported")
            shape = tuple(hi - lo if i == axis else d for i, d in enumerate(g.type.shape))
            parts.append(E.broadcast_to(b, zero, shape))
    if not parts:
        return g
    pieces = [parts[0], g, *parts[1:]] if start > 0 else [g, *parts]
    return b.emit(Concat(axis), *pieces)


@dataclass(frozen=True)
class SizeOf(Op):
    """The element count of x along `axes` (all if None), as a scalar: how a mean divides by a symbolic N."""

    name: ClassVar[str] = "size_of"
    differentiable: ClassVar[bool] = False
    axes: tuple[int, ...] | None
    dtype: str

    def infer(self, x: TensorType) -> TensorType:
        normalize_axes(self.axes, x.rank)
        return scalar(self.dtype)

    def vjp(self, b, node, grads):
        return (None,)

    def dims_of(self, x: TensorType) -> list[Dim]:
        return [x.shape[a] for a in normalize_axes(self.axes, x.rank)]


@dataclass(frozen=True)
class PadEnd(Op):
    """Zeros appended along one axis up to a static size: the gradient of a slice to a symbolic stop."""

    name: ClassVar[str] = "pad_end"
    axis: int
    size: int

    def infer(self, x: TensorType) -> TensorType:
        (axis,) = normalize_axes((self.axis,), x.rank)
        return x.with_shape(tuple(self.size if i == axis else d for i, d in enumerate(x.shape)))

    def vjp(self, b, node, grads):
        x = node.inputs[0]
        (axis,) = normalize_axes((self.axis,), x.type.rank)
        return (b.emit(Slice(axis, 0, x.type.shape[axis]), grads[0]),)


@dataclass(frozen=True)
class Split(Op):
    """x cut along one axis into consecutive pieces of static sizes (the gates of a recurrent cell); its gradient
    is one concat of the pieces' gradients, instead of a zero-padded tensor per piece summed up."""

    name: ClassVar[str] = "split"
    axis: int
    sizes: tuple[int, ...]

    def infer(self, x: TensorType) -> tuple[TensorType, ...]:
        (axis,) = normalize_axes((self.axis,), x.rank)
        if len(self.sizes) < 2:  # one piece is x itself; every evaluator reads a one-result op as single-valued
            raise TypeError_(f"split cuts into two or more pieces, got sizes {list(self.sizes)}")
        if x.shape[axis] != sum(self.sizes) or min(self.sizes, default=0) < 1:
            raise TypeError_(f"cannot split axis {self.axis} of {x} into {list(self.sizes)}")
        return tuple(x.with_shape(tuple(n if i == axis else d for i, d in enumerate(x.shape))) for n in self.sizes)

    def vjp(self, b, node, grads):
        pieces = [g if g is not None else E.broadcast_to(b, E.like(b, 0.0, o), o.type.shape)
                  for g, o in zip(grads, node.outputs, strict=True)]
        return (b.emit(Concat(self.axis), *pieces),)
