"""Parameter initializers: the seed text's zeros, constant, uniform, normal (Gaussian), Xavier/Glorot and He.

An `Init` is a description; `sample` draws values. Each parameter draws from its own generator seeded by
(seed, parameter name), so adding a layer never changes the initial values of the others.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

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


# kind -> (argument names with defaults, aliases)
INITIALIZERS: dict[str, dict[str, float]] = {
    "zeros": {},
    "ones": {},
    "constant": {"value": 0.0},
    "uniform": {"low": -0.05, "high": 0.05},
    "normal": {"mean": 0.0, "std": 0.05},
    "glorot_uniform": {},
    "glorot_normal": {},
    "he_normal": {},
    "he_uniform": {},
    "orthogonal": {"gain": 1.0},
    "sinusoidal": {},
}
ALIASES = {
    "zero": "zeros", "gaussian": "normal", "xavier": "glorot_uniform", "glorot": "glorot_uniform",
    "xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal", "he": "he_normal", "kaiming": "he_normal",
    "random": "uniform",
}


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


def sample(init: Init, shape: tuple[int, ...], dtype: str, rng: np.random.Generator,
           fan: tuple[int, int] | None = None) -> np.ndarray:
    """Draw `shape` values; `fan` is (fan_in, fan_out) where the layout is not the one `fans` assumes."""
    a = {**INITIALIZERS.get(init.kind, {}), **init.args}
    fan_in, fan_out = fan or fans(shape)
    kind = init.kind
    if kind == "zeros":
        out = np.zeros(shape)
    elif kind == "ones":
        out = np.ones(shape)
    elif kind == "constant":
        out = np.full(shape, a["value"])
    elif kind == "uniform":
        out = rng.uniform(a["low"], a["high"], shape)
    elif kind == "normal":
        out = rng.normal(a["mean"], a["std"], shape)
    elif kind == "glorot_uniform":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        out = rng.uniform(-limit, limit, shape)
    elif kind == "glorot_normal":
        out = rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), shape)
    elif kind == "he_normal":
        out = rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
    elif kind == "he_uniform":
        limit = math.sqrt(6.0 / fan_in)
        out = rng.uniform(-limit, limit, shape)
    elif kind == "orthogonal":
        out = a["gain"] * _orthogonal(shape, rng)
    elif kind == "sinusoidal":
        out = _sinusoidal(shape)
    else:  # pragma: no cover - the front end only builds known kinds
        raise ValueError(f"unknown initializer {kind}")
    return np.asarray(out, dtype=NUMPY_NAMES[dtype])


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
