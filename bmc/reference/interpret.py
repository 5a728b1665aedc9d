"""Evaluate IR directly through the NumPy lowering rules: the reference semantics of every op.

Constant folding uses `evaluate_node`; tests use `run_graph` to check graphs without generating a module, and
`bmc train --check-numerics` replays a train step with `run_values` to find the node that made a value non-finite.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bmc.ir import dims
from bmc.ir.graph import Graph, Node, Value
from bmc.ir.types import Dim, TensorType
from bmc.ops.base import Op
from bmc.ops.scan import Scan
from bmc.reference import kernels
from bmc.reference.rules import RULES


class _Context:
    def __init__(self, symbols: dict[str, int]):
        self.symbols = symbols

    def use(self, helper: str) -> str:
        return helper

    def dim(self, d: Dim) -> str:
        if isinstance(d, int):
            return str(d)
        static, syms = dims.factors(d)
        n = static
        for s in syms:
            n *= self.symbols[s]
        return str(n)

    def shape(self, shape: tuple[Dim, ...]) -> str:
        return "(" + "".join(self.dim(d) + ", " for d in shape) + ")"


def _namespace() -> dict[str, Any]:
    ns: dict[str, Any] = {"np": np}
    ns.update({k: getattr(kernels, k) for k in dir(kernels) if k.startswith("_") and not k.startswith("__")})
    return ns


def evaluate_node(op: Op, arrays: list[np.ndarray], types: list[TensorType],
                  symbols: dict[str, int] | None = None) -> list[np.ndarray]:
    if isinstance(op, Scan):
        return _scan(op, arrays)
    inputs = tuple(Value(t, f"a{i}") for i, t in enumerate(types))
    out_types = op.infer(*types)
    out_types = out_types if isinstance(out_types, tuple) else (out_types,)
    node = Node(op, inputs, tuple(Value(t) for t in out_types), None)
    expr = RULES[type(op)](node, [f"a{i}" for i in range(len(arrays))], _Context(symbols or {}))
    env = _namespace()
    env.update({f"a{i}": a for i, a in enumerate(arrays)})
    result = eval(expr, env)
    return list(result) if len(out_types) > 1 else [np.asarray(result)]


def _scan(op: Scan, arrays: list[np.ndarray]) -> list[np.ndarray]:
    k, m = op.num_carries, op.num_xs
    carries, xs, consts = list(arrays[:k]), arrays[k:k + m], arrays[k + m:]
    steps = xs[0].shape[1]
    ys: list[list] = [[None] * steps for _ in range(op.num_ys)]
    history: list[list] = [[None] * steps for _ in range(k)]
    for t in reversed(range(steps)) if op.reverse else range(steps):
        for i in range(k):
            history[i][t] = carries[i]
        outs = run_positional(op.body, [*carries, *(x[:, t] for x in xs), *consts])
        carries = outs[:k]
        for i in range(op.num_ys):
            ys[i][t] = outs[k + i]
    return [*carries, *(np.stack(y, axis=1) for y in ys), *(np.stack(h, axis=1) for h in history)]


def run_positional(graph: Graph, values: list[np.ndarray]) -> list[np.ndarray]:
    out = run_graph(graph, dict(zip(graph.inputs, values, strict=True)))
    return list(out.values())


def run_graph(graph: Graph, feeds: dict) -> dict[str, np.ndarray]:
    """Evaluate a graph whose ops all have NumPy rules, feeding inputs by name (or by input value)."""
    env = run_values(graph, feeds)
    return {k: env[v] for k, v in graph.outputs.items()}


def run_values(graph: Graph, feeds: dict) -> dict[Value, np.ndarray]:
    """Like `run_graph`, but every value of the graph: its inputs and each node's outputs."""
    env: dict[Value, np.ndarray] = {}
    symbols: dict[str, int] = {}
    for v in graph.inputs:
        env[v] = feeds[v] if v in feeds else feeds[v.name]
        for d, n in zip(v.type.shape, np.shape(env[v]), strict=True):
            if isinstance(d, str) and "*" not in d:
                symbols.setdefault(d, n)
    for node in graph.nodes:
        results = evaluate_node(node.op, [env[v] for v in node.inputs], [v.type for v in node.inputs], symbols)
        env.update(zip(node.outputs, results, strict=True))
    return env
