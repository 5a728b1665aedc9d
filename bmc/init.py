"""Parameter initializers: the seed text's zeros, constant, uniform, normal (Gaussian), Xavier/Glorot and He.

An `Init` is a description; `sample` draws values. Each parameter draws from its own generator seeded by
(seed, parameter name), so adding a layer never changes the initial values of the others. Values are drawn into
an array of the parameter's dtype a block at a time, so a float32 parameter never needs a float64 copy of itself
(the values are those of one float64 draw, rounded).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from bmc.frontend.domains import FINITE, NON_NEGATIVE
from bmc.frontend.signature import Param
from bmc.ir.types import NUMPY_NAMES


@dataclass(frozen=True)
class Init:
    kind: str
    args: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.args:
            return self.kind
        return f"{self.kind}({', '.join(f'{k}={v:g}' for k, v in self.args.items())})"

    def __hash__(self) -> int:
        return hash((self.kind, tuple(sorted(self.args.items()))))


# kind -> its arguments: name, default, domain
INITIALIZERS: dict[str, tuple[Param, ...]] = {
    "zeros": (),
    "ones": (),
    "constant": (Param("value", 0.0, FINITE),),
    "uniform": (Param("low", -0.05, FINITE), Param("high", 0.05, FINITE)),
    "normal": (Param("mean", 0.0, FINITE), Param("std", 0.05, NON_NEGATIVE)),
    "glorot_uniform": (),
    "glorot_normal": (),
    "he_normal": (),
    "he_uniform": (),
    "orthogonal": (Param("gain", 1.0, FINITE),),
    "sinusoidal": (),
}
ALIASES = {
    "zero": "zeros", "gaussian": "normal", "xavier": "glorot_uniform", "glorot": "glorot_uniform",
    "xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal", "he": "he_normal", "kaiming": "he_normal",
    "random": "uniform",
}


def relation_error(kind: str, args: dict[str, float]) -> tuple[str, str] | None:
    """What is wrong between an initializer's arguments, each in its domain: (message, the argument to point at)."""
    if kind == "uniform" and args["low"] > args["high"]:
        return f"uniform's low {args['low']:g} is greater than its high {args['high']:g}", "low"
    if kind == "uniform" and not math.isfinite(args["high"] - args["low"]):
        return "uniform's range high - low is too large for a float", "high"
    return None


def defaults(kind: str) -> dict[str, float]:
    return {p.name: p.default for p in INITIALIZERS.get(kind, ())}


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) from a shape alone: a dense weight is [in, out]; conv kernels [out, in, *kernel] use the
    receptive field. Layers with other layouts give their fans explicitly (ParamInfo.fans)."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def generator(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


BLOCK = 1 << 20  # values drawn at a time: the float64 scratch a float32 parameter needs (8 MiB)


def sample(init: Init, shape: tuple[int, ...], dtype: str, rng: np.random.Generator,
           fan: tuple[int, int] | None = None) -> np.ndarray:
    """Draw `shape` values of `dtype`; `fan` is (fan_in, fan_out) where the layout is not the one `fans` assumes."""
    a = {**defaults(init.kind), **init.args}
    fan_in, fan_out = fan or fans(shape)
    kind = init.kind
    np_dtype = np.dtype(NUMPY_NAMES[dtype])
    if kind in ("zeros", "ones", "constant"):
        return np.full(shape, {"zeros": 0.0, "ones": 1.0}.get(kind, a.get("value")), dtype=np_dtype)
    if kind == "uniform":
        return _draw(rng.uniform, a["low"], a["high"], shape, np_dtype)
    if kind == "normal":
        return _draw(rng.normal, a["mean"], a["std"], shape, np_dtype)
    if kind == "glorot_uniform":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return _draw(rng.uniform, -limit, limit, shape, np_dtype)
    if kind == "glorot_normal":
        return _draw(rng.normal, 0.0, math.sqrt(2.0 / (fan_in + fan_out)), shape, np_dtype)
    if kind == "he_normal":
        return _draw(rng.normal, 0.0, math.sqrt(2.0 / fan_in), shape, np_dtype)
    if kind == "he_uniform":
        limit = math.sqrt(6.0 / fan_in)
        return _draw(rng.uniform, -limit, limit, shape, np_dtype)
    if kind == "orthogonal":
        return np.asarray(a["gain"] * _orthogonal(shape, rng), dtype=np_dtype)
    if kind == "sinusoidal":
        return np.asarray(_sinusoidal(shape), dtype=np_dtype)
    raise ValueError(f"unknown initializer {kind}")  # pragma: no cover - the front end only builds known kinds


def _draw(distribution, a: float, b: float, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """`distribution(a, b, n)` for every value of a new `dtype` array, drawn BLOCK values at a time: the same
    values as one draw of the whole shape (a generator's stream does not depend on how it is split)."""
    out = np.empty(shape, dtype=dtype)
    flat = out.reshape(-1)
    for start in range(0, flat.size, BLOCK):
        stop = min(start + BLOCK, flat.size)
        flat[start:stop] = distribution(a, b, stop - start)
    return out


def _orthogonal(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A (semi-)orthogonal matrix (Saxe et al.), as Keras initializes recurrent weights; higher ranks are
    flattened to [shape[0], rest]."""
    rows, cols = shape[0], math.prod(shape[1:]) if len(shape) > 1 else 1
    q, r = np.linalg.qr(rng.normal(size=(max(rows, cols), min(rows, cols))))
    q *= np.sign(np.diag(r))
    return (q if rows >= cols else q.T).reshape(shape)


def _sinusoidal(shape: tuple[int, ...]) -> np.ndarray:
    """The fixed position encodings of "Attention Is All You Need": [positions, width]."""
    t, d = shape
    position = np.arange(t)[:, None]
    freq = np.exp(-math.log(10000.0) * (np.arange(0, d, 2) / d))
    table = np.zeros((t, d))
    table[:, 0::2] = np.sin(position * freq)
    table[:, 1::2] = np.cos(position * freq[: d // 2])
    return table
