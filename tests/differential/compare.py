"""Comparing a target with the reference, with tolerances the program itself sets.

The reference is computed twice, in float64 and in float32. Their difference measures how much the program
amplifies rounding (a division by a small number, a long chain, Adam normalizing a gradient that is zero up to
rounding). A float32 target may differ from the float64 reference by a small multiple of that, a float64 target by
that scaled down to float64's precision; neither may differ by more than a fixed ceiling, so a program that
drowns in rounding cannot hide a wrong result from the float64 targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tests.differential.reference import Result

F64_FLOOR, F64_CEILING = 1e-10, 1e-6
# float32 targets sum in another order than PyTorch's float32 twin: through three attention layers a gradient
# differs by 3.2e-5 where the twin's own rounding is 5.6e-7 (the float64 targets are the strict check)
F32_FLOOR, F32_FACTOR = 1e-4, 30.0
ILL_CONDITIONED = 0.05  # beyond this float32 rounding error a float32 comparison says nothing
# Values, parameters and gradients are of order one by construction (unit-normal data, parameters around 0.5): a
# quantity far smaller (a gradient that is zero in theory) is compared against this scale, not its own noise.
ABSOLUTE = 1e-3
# A float32 quantity far smaller than its kind's largest may be the cancellation of terms of the kind's size (a
# shift before a batch norm has no gradient in theory, and an L1 term's 0.01 rides on that noise): the noise may
# reach this fraction of the kind's largest (seen: 4.3e-6 and 1.7e-5), whatever the twin's own sample of it.
F32_ZERO = 1e-4
ZERO_IN_THEORY = 1e-9  # a quantity this much smaller than its kind's largest is rounding noise around zero


@dataclass
class Mismatch:
    target: str
    what: str
    error: float
    tolerance: float
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.target}: {self.what}: relative error {self.error:.3g} > {self.tolerance:.3g} {self.detail}"


def relative(got, want, scale: float) -> float:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return math.inf
    both_nan = np.isnan(got) & np.isnan(want)
    diff = np.where(both_nan, 0.0, np.abs(got - want))
    if np.isnan(diff).any():
        return math.inf
    return float(diff.max(initial=0.0)) / scale


def _scale(want, floor: float) -> float:
    want = np.asarray(want, dtype=np.float64)
    finite = np.abs(want[np.isfinite(want)])
    return max(float(finite.max(initial=0.0)), floor, 1e-30)


def tensors(result: Result, parts: tuple[str, ...]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    if "outputs" in parts:
        out.update({f"output {k}": v for k, v in result.outputs.items()})
    if "loss" in parts:
        out["loss"] = np.asarray(result.loss)
    if "grads" in parts:
        out.update({f"grad {k}": v for k, v in result.grads.items()})
    if "steps" in parts and result.params is not None:
        out["losses of the steps"] = np.asarray(result.losses)
        out.update({f"after steps {k}": v for k, v in result.params.items()})
    return out


def noise_driven(ref64: Result, optimizer: str) -> set[str]:
    """Parameters whose gradient is zero in theory (attention's key bias: softmax ignores a shift; a bias before
    batch norm): their float32 gradients are rounding noise, which Adam divides by its own size, so they move by
    up to lr a step in a direction no two float32 computations agree on."""
    if optimizer not in ("adam", "adamw") or not ref64.grads:
        return set()
    largest = max(float(np.abs(g).max(initial=0.0)) for g in ref64.grads.values())
    return {k for k, g in ref64.grads.items()
            if float(np.abs(g).max(initial=0.0)) <= ZERO_IN_THEORY * max(largest, 1.0)}


def compare(target: str, got: Result, ref64: Result, ref32: Result, dtype: str,
            parts: tuple[str, ...], noisy: set[str] = frozenset(), noise: float = 0.0,
            ) -> tuple[list[Mismatch], dict[str, float]]:
    """Mismatches of `got` against the reference, and the largest error per kind of quantity. The parameters in
    `noisy` may differ after the steps by `noise` (see noise_driven)."""
    if "steps" in parts and got.params is None:  # the target cannot run train steps (see targets.py)
        parts = tuple(p for p in parts if p != "steps")
    want, twin, have = tensors(ref64, parts), tensors(ref32, parts), tensors(got, parts)
    # a quantity's scale is at least a thousandth of its kind's largest (a gradient that is zero in theory is noise)
    kinds = {}
    for name, w in want.items():
        kind = name.split(" ")[0]
        kinds[kind] = max(kinds.get(kind, 0.0), _scale(w, 0.0))
    mismatches, largest = [], {}
    for name, w in want.items():
        if name not in have:
            mismatches.append(Mismatch(target, name, math.inf, 0.0, "(missing)"))
            continue
        if np.shape(have[name]) != np.shape(w):
            mismatches.append(Mismatch(target, name, math.inf, 0.0,
                                       f"(shape {list(np.shape(have[name]))}, expected {list(np.shape(w))})"))
            continue
        if not np.isfinite(np.asarray(w, dtype=np.float64)).all():
            continue  # the reference overflowed: the program is outside what can be compared
        scale = _scale(w, max(1e-3 * kinds[name.split(" ")[0]], ABSOLUTE))
        rounding = relative(twin[name], w, scale)
        if dtype == "f64":
            tol = min(max(F64_FLOOR, rounding * 1e-6), F64_CEILING)
            if _scale(w, 0.0) <= ZERO_IN_THEORY * kinds[name.split(" ")[0]]:
                # zero in theory (a shift before batch norm): what remains is the cancellation of terms that may be
                # far larger, which the float32 twin cannot measure when it cancels to exactly zero
                tol = F64_CEILING
        else:
            if rounding > ILL_CONDITIONED:
                continue
            tol = max(F32_FLOOR, F32_FACTOR * rounding, F32_ZERO * kinds[name.split(" ")[0]] / scale)
        err = relative(have[name], w, scale)
        if noisy and name.startswith("after steps "):
            # a noise-driven parameter moves by up to lr a step, in float64 as in float32 (Adam divides a 1e-13
            # gradient by its own size, less eps), and so may everything it feeds after the first step (the running
            # mean of a batch norm after the one whose shift has no gradient): after the steps, `noise` is allowed
            tol = max(tol, noise / scale)
        kind = name.split(" ")[0]
        largest[kind] = max(largest.get(kind, 0.0), err)
        if not err <= tol:
            mismatches.append(Mismatch(target, name, err, tol, f"(float32 rounding alone: {rounding:.3g})"))
    return mismatches, largest
