"""The reference semantics of a drawn graph, and comparing outputs with it to the rounding they allow."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bmc.ir.graph import Graph, Value
from bmc.passes import decompose
from bmc.reference.interpret import run_graph
from bmc.reference.rules import supports


def reference(graph: Graph, feeds: dict) -> dict[str, np.ndarray]:
    """The graph on the reference interpreter (after decomposing the few ops without a NumPy rule)."""
    with np.errstate(all="ignore"):
        return run_graph(decompose.run(graph, supports), feeds)


@dataclass(frozen=True)
class Scale:
    """What an output's rounding errors scale with: the largest finite magnitude among the values it is computed
    from (a difference of large values can be small), and the least precise float dtype among them (an f32 value
    cast to f64 keeps its f32 error)."""

    magnitude: float
    dtype: str  # "float32" or "float64"


def output_scales(graph: Graph, feeds: dict) -> dict[str, Scale]:
    graph = decompose.run(graph, supports)
    values = [*graph.inputs, *(o for n in graph.nodes for o in n.outputs)]
    everything = Graph(graph.name, list(graph.inputs), dict(graph.roles), list(graph.nodes),
                       {str(i): v for i, v in enumerate(values)})
    with np.errstate(all="ignore"):
        env = dict(zip(values, run_graph(everything, feeds).values(), strict=True))

    def own(v: Value) -> Scale:
        a = np.asarray(env[v])
        finite = np.abs(a[np.isfinite(a)]) if a.dtype.kind == "f" else np.abs(a.astype(np.float64))
        return Scale(float(finite.max(initial=0.0)), "float32" if v.type.dtype == "f32" else "float64")

    def widest(scales: list[Scale]) -> Scale:
        return Scale(max(s.magnitude for s in scales),
                     "float32" if any(s.dtype == "float32" for s in scales) else "float64")

    scale = {v: own(v) for v in graph.inputs}
    for n in graph.nodes:
        for o in n.outputs:
            scale[o] = widest([own(o), *(scale[v] for v in n.inputs)])
    return {k: scale[v] for k, v in graph.outputs.items()}


TOLERANCE = {"float32": 3e-5, "float64": 1e-11}


def assert_close(got: dict, want: dict, scales: dict[str, Scale], tol: float | None = None,
                 same_dtype: bool = True) -> float:
    """Every output of `want` in `got`, of the same shape (and dtype), equal where integer or bool, close where
    float (rtol tol, atol tol * magnitude; tol by default the tolerance of the scale's dtype) with NaN and
    infinities in the same places. Returns the largest error seen, relative to max(1, magnitude)."""
    worst = 0.0
    for key, w in want.items():
        w, g = np.asarray(w), np.asarray(got[key])
        assert g.shape == w.shape, f"{key}: shape {g.shape}, expected {w.shape}"
        if same_dtype:
            assert g.dtype == w.dtype, f"{key}: dtype {g.dtype}, expected {w.dtype}"
        if w.dtype.kind != "f":
            np.testing.assert_array_equal(g, w, err_msg=key)
            continue
        t = TOLERANCE[scales[key].dtype] if tol is None else tol
        scale = max(1.0, scales[key].magnitude)
        np.testing.assert_allclose(g, w, rtol=t, atol=t * scale, equal_nan=True, err_msg=key)
        finite = np.isfinite(w) & np.isfinite(g)
        if finite.any():
            worst = max(worst, float(np.abs(g[finite].astype(np.float64) - w[finite]).max()) / scale)
    return worst
