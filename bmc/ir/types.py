"""Tensor types of the IR: a dtype and a shape whose dims are ints or symbols (`N`, bound at run time)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

Dim = int | str  # a static size, or the name of a symbolic dim such as "N"

DTYPES = ("f32", "f64", "i32", "i64", "bool")
FLOAT_DTYPES = ("f32", "f64")
INT_DTYPES = ("i32", "i64")
NUMPY_NAMES = {"f32": "float32", "f64": "float64", "i32": "int32", "i64": "int64", "bool": "bool_"}


class TypeError_(Exception):  # noqa: N801, N818 - the IR's own TypeError
    """A shape or dtype rule was violated. Lowering turns it into a `BmcError` at the offending span."""


@dataclass(frozen=True)
class TensorType:
    dtype: str
    shape: tuple[Dim, ...]

    def __post_init__(self) -> None:
        assert self.dtype in DTYPES, self.dtype
        assert all(isinstance(d, int | str) for d in self.shape), self.shape

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)

    @property
    def size(self) -> int | None:
        """Number of elements, or None if a dim is symbolic."""
        n = 1
        for d in self.shape:
            if not isinstance(d, int):
                return None
            n *= d
        return n

    def with_shape(self, shape: tuple[Dim, ...]) -> TensorType:
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: str) -> TensorType:
        return TensorType(dtype, self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"


def scalar(dtype: str) -> TensorType:
    return TensorType(dtype, ())


def shape_str(shape: tuple[Dim, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


@functools.lru_cache(maxsize=4096)  # the verifier asks again after every pass
def broadcast_shapes(*shapes: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """NumPy broadcasting with symbolic dims: equal dims match, 1 stretches, anything else is an error."""
    rank = max(len(s) for s in shapes)
    out: list[Dim] = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise TypeError_(f"shapes {' and '.join(shape_str(s) for s in shapes)} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def normalize_axes(axes: tuple[int, ...] | None, rank: int) -> tuple[int, ...]:
    """Turn negative axes into positive ones; None means all axes."""
    if axes is None:
        return tuple(range(rank))
    out = []
    for a in axes:
        if not -rank <= a < rank:
            raise TypeError_(f"axis {a} is out of range for a tensor of rank {rank}")
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise TypeError_(f"repeated axis in {list(axes)}")
    return tuple(sorted(out))


def promote(a: str, b: str) -> str:
    """Result dtype of a binary arithmetic op. Mixing int and float tensors is explicit (cast) except for scalars."""
    if a == b:
        return a
    raise TypeError_(f"dtypes {a} and {b} do not match (use cast(x, {a}) to convert)")
