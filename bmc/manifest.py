"""The build manifest's description of a model: what every build directory's manifest.json says about it, whatever
the target. Targets add their own section (`cuda`, ONNX's `opset`), training adds `training`, and artifacts.py adds
the list of files bmc wrote."""

from __future__ import annotations

import math
from typing import Any

from bmc.version import __version__


def _tensor(v) -> dict[str, Any]:
    return {"dtype": v.type.dtype, "shape": list(v.type.shape)}


def describe(compiled, target: str) -> dict[str, Any]:
    """The manifest of a build of `compiled` (a `bmc.compiler.Compiled`) for `target`."""
    m = compiled.model
    g = m.graph
    return {
        "bmc_version": __version__,
        "model": compiled.name,
        "target": target,
        "dtype": compiled.dtype,
        "source": m.source.name,
        "source_sha256": compiled.source_hash,
        "constants": m.constants,
        "inputs": {v.name: _tensor(v) for v in m.data_inputs},
        "targets": {v.name: _tensor(v) for v in m.targets},
        "outputs": {k: {**_tensor(g.outputs[k]), "doc": f"{k}: {g.outputs[k].type}, defined at {g.outputs[k].span}"}
                    for k in m.outputs},
        "params": {p.name: {**_tensor(p), "init": str(g.param_info[p].init)} for p in g.params},
        "param_count": int(sum(math.prod(p.type.shape) for p in g.params)),
        "metrics": list(compiled.config.metrics),
        **({"preprocess": compiled.preprocess.as_json()} if compiled.preprocess else {}),
    }
