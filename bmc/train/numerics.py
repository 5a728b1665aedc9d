"""Finite numbers in training: what the loop checks after each step, and the replay that names the op at fault.

Cheap by default: after every step the loop checks the loss and the outputs the step returns (a few small arrays),
and at the end the parameters. A non-finite loss stops training; non-finite outputs with a finite loss, and
non-finite parameters at the end, are warnings (and `Build.save` refuses such parameters).

With `check_numerics` (`bmc train --check-numerics`) the parameters and state are copied before every step and
checked after it; the first step that makes anything non-finite is replayed from that copy, on the same batch,
through the reference interpreter (the NumPy rules), and the error points at the `.bm` statement of the node that
made the first non-finite value from finite inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bmc.diagnostics import BmcError, BmcWarning, Span
from bmc.ir.graph import Graph, Node, Value
from bmc.reference.interpret import run_values
from bmc.reference.rules import prepare

Arrays = dict[str, np.ndarray]

# Why an op makes a non-finite value from finite inputs, by op name. Other ops overflow (see `_hints`).
HINTS = {
    "log": "log of a negative number is nan and log(0) is -inf: keep its argument positive",
    "sqrt": "sqrt of a negative number is nan: keep its argument non-negative",
    "div": "a division by zero: x / 0 is inf and 0 / 0 is nan",
    "pow": "a negative base to a fractional power is nan, and large powers overflow",
    "exp": "exp overflows above 88 in f32 (709 in f64): keep its argument small",
}
DIVERGENCE = 10  # the final loss more than this many times the first step's is a diverged run


def describe(a) -> str | None:
    """'nan (3 of 10 values)' for a float array with non-finite values (the first kind found), None when finite."""
    a = np.asarray(a)
    if a.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(a)
    count = int(bad.sum())
    if not count:
        return None
    first = a[bad].flat[0]
    kind = "nan" if np.isnan(first) else "inf" if first > 0 else "-inf"
    return kind if a.size == 1 else f"{kind} ({count} of {a.size} values)"


def nonfinite(arrays: Arrays) -> dict[str, str]:
    """The arrays that hold non-finite values, with what they hold."""
    found = {k: describe(v) for k, v in arrays.items()}
    return {k: d for k, d in found.items() if d is not None}


def require_finite(params: Arrays, state: Arrays, spans: dict[str, Span] | None = None) -> None:
    """Refuse to save parameters (or optimizer state) that are not finite: the build would predict nan."""
    for what, arrays in (("parameter", params), ("optimizer state", state)):
        bad = nonfinite(arrays)
        if bad:
            name, desc = next(iter(bad.items()))
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise BmcError(f"{what} '{name}' holds {desc}{more}: bmc does not save non-finite values",
                           (spans or {}).get(name),
                           notes=("a build with them would compute nan; train with --check-numerics to find the op "
                                  "that produced them",))


# ---- the replay ------------------------------------------------------------------------------------------------


def locate(graph: Graph, feeds: Arrays, bad: list[str]) -> tuple[Node | Value, dict[Value, np.ndarray]] | None:
    """Replay `graph` on `feeds` through the reference interpreter and find where the non-finite values of the
    outputs `bad` come from: following non-finite values back from those outputs, the earliest node whose inputs
    are all finite (or a graph input that is not finite itself). Non-finite values that never reach those outputs
    (a causal mask's -inf before its softmax) are not at fault. None when the replay's outputs are finite."""

    graph = prepare(graph)
    with np.errstate(all="ignore"):
        env = run_values(graph, feeds)
    finite = {v: describe(a) is None for v, a in env.items()}
    producer = {out: node for node in graph.nodes for out in node.outputs}
    order = {node: i for i, node in enumerate(graph.nodes)}
    origins: list[Node | Value] = []
    stack = [graph.outputs[k] for k in bad if k in graph.outputs and not finite[graph.outputs[k]]]
    seen: set = set()
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        node = producer.get(v)
        if node is None:
            origins.append(v)
            continue
        upstream = [u for u in node.inputs if not finite[u]]
        if not upstream:
            origins.append(node)
        stack.extend(upstream)
    if not origins:
        return None
    return min(origins, key=lambda o: -1 if isinstance(o, Value) else order[o]), env


def _hints(node: Node, env: dict[Value, np.ndarray], lr: float | None) -> list[str]:
    floats = [np.asarray(env[v]) for v in node.inputs if np.asarray(env[v]).dtype.kind == "f"]
    notes = []
    if node.op.name in HINTS:
        notes.append(HINTS[node.op.name])
    sizes = [float(np.abs(a).max()) for a in floats if a.size]
    largest = max(sizes, default=0.0)
    if node.op.name in ("log", "sqrt") and floats and floats[0].size:
        notes.append(f"its argument's smallest value is {float(floats[0].min()):.4g}")
    elif node.op.name not in HINTS and largest > 0:
        notes.append(f"an overflow: its inputs reach {largest:.4g} (the largest f32 is 3.4e38)")
    if largest > 1e6 and lr is not None:
        notes.append(f"values this large usually mean training diverged: try a smaller learning rate than {lr:g}, "
                     "or clip = 1.0")
    return notes


def replay_error(graph: Graph, feeds: Arrays, bad: dict[str, str], step: int, epoch: int,
                 lr: float | None, update: Span | None = None) -> BmcError:
    """The error for step `step`, whose results `bad` (name -> what it holds) are not finite."""
    where = summary(bad)
    found = locate(graph, feeds, list(bad))
    if found is None:
        return BmcError(f"step {step} (epoch {epoch}) made {where} non-finite, but its replay in the reference "
                        "interpreter is finite",
                        notes=("the backend computed what the NumPy rules do not: this is a bug in bmc, please "
                               "report it with the .bm file",))
    origin, env = found
    if isinstance(origin, Value):
        return BmcError(f"step {step} (epoch {epoch}): {_label_input(graph, origin)} holds {describe(env[origin])} "
                        "before the step", origin.span, notes=(f"it made {where} non-finite",))
    outputs = [i for i, v in enumerate(origin.outputs) if describe(env[v]) is not None]
    out = origin.outputs[outputs[0]]
    which = f" (output {outputs[0]} of {len(origin.outputs)})" if len(origin.outputs) > 1 else ""
    part = ["in the optimizer's update of the parameters"] if update is not None and origin.span == update else []
    return BmcError(f"step {step} (epoch {epoch}): {origin.op.name} gave {describe(env[out])}{which} from finite "
                    "inputs, the first non-finite value of the train step", origin.span,
                    notes=(*part, *_hints(origin, env, lr), f"it made {where} non-finite"))


def summary(bad: dict[str, str]) -> str:
    """'the loss, output 'pred', 4 parameters and 8 optimizer state values' for the step's non-finite results."""
    params = [k for k in bad if k.startswith("params/")]
    state = [k for k in bad if k.startswith("state/")]
    parts = ["the loss"] if "loss" in bad else []
    parts += [f"output '{k}'" for k in bad if k != "loss" and "/" not in k]
    if len(params) == 1:
        parts.append(f"parameter '{params[0].removeprefix('params/')}'")
    elif params:
        parts.append(f"{len(params)} parameters")
    if state:
        parts.append(f"{len(state)} optimizer state value{'s' * (len(state) > 1)}")
    return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]


def _label_input(graph: Graph, v: Value) -> str:
    role = graph.roles.get(v, "input")
    return {"param": f"parameter '{v.name}'", "state": f"optimizer state '{v.name}'",
            "hyper": f"'{v.name}'"}.get(role, f"the {role} '{v.name}' (the data)")


# ---- what the loop calls -------------------------------------------------------------------------------------------


@dataclass
class Watch:
    """Checks each train step's results. `graph` gives the train step (only asked for when a replay is needed);
    `spans` locates warnings (output names, "optimizer"); `read` returns the current parameters and state."""

    check: bool = False
    graph: Callable[[], Graph] | None = None
    spans: dict[str, Span] = field(default_factory=dict)
    lr: float | None = None
    warnings: list[BmcWarning] = field(default_factory=list)
    first_loss: float | None = None
    _before: tuple[Arrays, Arrays] | None = None
    _warned: set = field(default_factory=set)

    def before(self, values: Callable[[], tuple[Arrays, Arrays]]) -> None:
        """With `check`, keep a copy of the parameters and state the step starts from (to replay it)."""
        if self.check:
            params, state = values()
            self._before = ({k: np.array(v) for k, v in params.items()}, {k: np.array(v) for k, v in state.items()})

    def after(self, result: dict, feed: Arrays, hyper: Arrays, step: int, epoch: int,
              values: Callable[[], tuple[Arrays, Arrays]]) -> None:
        """Raise a `BmcError` when the step made the loss non-finite (or, with `check`, anything)."""
        loss = float(result["loss"])
        if self.first_loss is None:
            self.first_loss = loss
        bad = nonfinite({k: v for k, v in result.items()})
        if self.check:
            params, state = values()
            bad.update(nonfinite({f"params/{k}": v for k, v in params.items()}))
            bad.update(nonfinite({f"state/{k}": v for k, v in state.items()}))
        if not bad:
            return
        if self.check and self.graph is not None and self._before is not None:
            feeds = {**self._before[0], **self._before[1], **feed, **hyper}
            raise replay_error(self.graph(), feeds, bad, step, epoch, self.lr, self.spans.get("optimizer"))
        if not math.isfinite(loss):
            if step == 1:
                hint = "the first step: the initial parameters or the data give it, not the learning rate"
            else:
                hint = f"try a smaller learning rate than {self.lr:g}, or clip = 1.0" if self.lr is not None else ""
            raise BmcError(f"the loss became {loss} at epoch {epoch}, step {step}; training stopped",
                           notes=(*([hint] if hint else []), "bmc train --check-numerics names the op that produced "
                                  "it (Model.train(..., check_numerics=True))"))
        for name, desc in bad.items():
            if name not in self._warned:
                self._warned.add(name)
                self.warnings.append(BmcWarning(
                    f"output '{name}' became {desc} at step {step} (epoch {epoch}), with a finite loss",
                    self.spans.get(name), ("the loss does not use it, so training goes on; --check-numerics names "
                                           "the op that produced it",)))

    def finish(self, params: Arrays, final_loss: float | None) -> None:
        """After training: warnings for non-finite parameters and for a loss that grew far above its start."""
        bad = nonfinite(params)
        if bad:
            name, desc = next(iter(bad.items()))
            more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
            self.warnings.append(BmcWarning(
                f"after training, parameter '{name}'{more} holds {desc}", self.spans.get(f"params/{name}"),
                ("the build would compute nan, so it cannot be saved; --check-numerics names the op that produced "
                 "it",)))
        first = self.first_loss
        if first is not None and final_loss is not None and math.isfinite(final_loss) \
                and final_loss - first > (DIVERGENCE - 1) * max(abs(first), 1e-3):
            lr = f"a smaller learning rate than {self.lr:g}" if self.lr is not None else "a smaller learning rate"
            self.warnings.append(BmcWarning(
                f"training diverged: the loss rose from {first:.4g} (step 1) to {final_loss:.4g} (the last epoch)",
                self.spans.get("optimizer"), (f"try {lr}, or clip = 1.0",)))
