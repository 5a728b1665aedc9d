"""The train step as one graph: forward, loss with penalties, backward (autodiff) and the optimizer update.

Inputs: the batch (inputs and targets), the parameters, the optimizer state and the learning rate `lr`.
Outputs: `loss`, the model's declared outputs, then `params/<name>` and `state/<name>` for every updated value.
A parameter the train block's `freeze` covers (bmc/train/freeze.py) is an input the step reads and never updates.
"""

from __future__ import annotations

import dataclasses

from bmc.diagnostics import BmcError
from bmc.frontend.model_ir import ModelIR
from bmc.init import Init
from bmc.ir.graph import Builder, Graph, ParamInfo, Value
from bmc.ir.types import scalar
from bmc.ops import emit as E
from bmc.ops.base import Op
from bmc.ops.elementwise import Abs, Minimum, Sqrt
from bmc.passes import dce, decompose
from bmc.passes.autodiff import gradients
from bmc.train import freeze
from bmc.train.config import TrainConfig
from bmc.train.optimizers import make_optimizer


def inference_graph(model: ModelIR) -> Graph:
    """The declared outputs only: no targets, no loss."""
    g = model.graph.copy_frame()
    g.nodes = list(model.graph.nodes)
    g.outputs = {k: model.graph.outputs[k] for k in model.outputs}
    dce.run(g)
    used = {v for n in g.nodes for v in n.inputs} | set(g.outputs.values())
    for t in g.inputs_with_role("target"):
        if t in used:
            out = next(k for k, v in g.outputs.items() if v is t or _depends(g, v, t))
            raise BmcError(f"output '{out}' depends on the target '{t.name}', which inference does not have",
                           g.outputs[out].span)
    g.inputs = [v for v in g.inputs if g.roles[v] != "target"]
    return g


def _depends(g: Graph, v, t) -> bool:
    seen, stack = set(), [v]
    while stack:
        x = stack.pop()
        if x is t:
            return True
        if x in seen or x.producer is None:
            continue
        seen.add(x)
        stack.extend(x.producer.inputs)
    return False


def loss_graph(model: ModelIR, keep_outputs: bool = False) -> Graph:
    """Forward graph with the loss as its output (and the declared outputs too, when asked)."""
    if model.loss is None:
        raise BmcError(f"model '{model.name}' has no loss", model.span)
    g = model.graph.copy_frame()
    g.nodes = list(model.graph.nodes)
    g.outputs = {"loss": model.graph.outputs["loss"]}
    if keep_outputs:
        g.outputs.update({k: model.graph.outputs[k] for k in model.outputs})
    return g


def differentiable_form(model: ModelIR) -> tuple[Graph, dict[str, Value]]:
    """The forward graph with every composite op that has no gradient rule of its own (LSTM, layer norm, ...)
    replaced by its decomposition, so the backward pass reuses the forward's intermediate values instead of
    recomputing them; and the running-statistic updates, mapped into that graph."""
    g = model.graph.copy_frame()
    g.nodes = list(model.graph.nodes)
    g.outputs = dict(model.graph.outputs)
    g.outputs.update({f"update/{k}": v for k, v in model.updates.items()})
    g = decompose.run(g, lambda op: has_own_vjp(op) or not op.differentiable or not op.has_decomposition())
    updates = {k.split("/", 1)[1]: g.outputs.pop(k) for k in list(g.outputs) if k.startswith("update/")}
    return g, updates


def has_own_vjp(op) -> bool:
    return type(op).vjp is not Op.vjp


def train_graph(model: ModelIR, config: TrainConfig) -> Graph:
    """The whole train step: forward, loss with penalties, backward and the optimizer update, in one graph."""
    half = _backward(model, config, "train_step")
    g, b = half.graph, half.builder
    params = half.params
    lr = g.add_input(scalar(_step_dtype(half.loss, params)), "lr", "hyper")
    state = _optimizer_state(g, config, params)
    new_params, new_state = _apply(b, config, params, half.grads, state, lr, half.loss)
    forward = g.outputs
    g.outputs = {"loss": forward["loss"], **{k: forward[k] for k in model.outputs}}
    g.outputs.update({f"params/{p.name}": new_params[p] for p in params})
    g.outputs.update({f"params/{name}": forward[f"params/{name}"] for name in half.updates})
    g.outputs.update({f"state/{k}": v for k, v in new_state.items()})
    return g


def gradients_graph(model: ModelIR, config: TrainConfig) -> Graph:
    """The train step's first half, what data-parallel training runs on each shard of a batch: the loss (with its
    penalties), the model's outputs, `grad/<name>` for every trainable parameter, and `params/<name>` for every
    running statistic the forward pass updates (batch norm's averages). Gradients are of the shard's mean loss and
    are not clipped: clipping by the global norm acts on the summed gradients, in `apply_graph`."""
    half = _backward(model, config, "gradients")
    g = half.graph
    forward = g.outputs
    g.outputs = {"loss": forward["loss"], **{k: forward[k] for k in model.outputs}}
    g.outputs.update({f"grad/{p.name}": half.grads[p] for p in half.params})
    g.outputs.update({f"params/{name}": forward[f"params/{name}"] for name in half.updates})
    return g


def apply_graph(model: ModelIR, config: TrainConfig) -> Graph:
    """The train step's second half: the optimizer update (gradient clipping first, when the train block asks)
    from the trainable parameters, their gradients (inputs `grad/<name>`), the optimizer state and `lr`; outputs
    `params/<name>` and `state/<name>`. `gradients_graph` then this graph compute what `train_graph` does."""
    assert model.loss is not None
    src = model.graph
    frozen = freeze.frozen(model, config.freeze)
    g = Graph(f"{src.name}_apply")
    params = []
    for p in src.params:
        info = src.param_info[p]
        if info.trainable and p.name not in frozen:
            params.append(g.add_input(p.type, p.name, "param", p.span))
            g.param_info[params[-1]] = info
    grads = {p: g.add_input(p.type, f"grad/{p.name}", "grad", p.span) for p in params}
    loss = src.outputs["loss"]
    lr = g.add_input(scalar(_step_dtype(loss, params)), "lr", "hyper")
    state = _optimizer_state(g, config, params)
    b = Builder(g)
    new_params, new_state = _apply(b, config, params, grads, state, lr, loss)
    g.outputs = {f"params/{p.name}": new_params[p] for p in params}
    g.outputs.update({f"state/{k}": v for k, v in new_state.items()})
    return g


@dataclasses.dataclass
class _Backward:
    graph: Graph
    builder: Builder
    loss: Value  # the objective: the model's loss with the train block's penalties
    params: list[Value]  # the trainable parameters
    grads: dict[Value, Value]
    updates: dict[str, Value]  # running statistics the forward pass updates, by parameter name


def _backward(model: ModelIR, config: TrainConfig, suffix: str) -> _Backward:
    """The forward graph, the objective (loss and L1/L2 penalties) and its gradients; the graph's outputs are the
    objective, the model's outputs and `params/<name>` for the running statistics."""
    assert model.loss is not None
    src, updates = differentiable_form(model)
    g = src.copy_frame(f"{src.name}_{suffix}")
    g.nodes = list(src.nodes)
    b = Builder(g)
    loss = src.outputs["loss"]
    frozen = freeze.frozen(model, config.freeze)  # constants of the step: not differentiated, never written
    for p in g.params:
        if p.name in frozen:
            g.param_info[p] = dataclasses.replace(g.param_info[p], trainable=False)
    updates = {name: v for name, v in updates.items() if name not in frozen}
    params = [p for p in g.params if g.param_info[p].trainable]
    objective = loss
    b.span = config.spans.get("l2") or config.spans.get("l1") or loss.span
    for strength, penalty in ((config.l2, lambda w: E.mul(b, w, w)), (config.l1, lambda w: b.emit(Abs(), w))):
        if strength:
            for w in (p for p in params if g.param_info[p].decay):
                term = E.mul(b, E.like(b, strength, w), E.sum_(b, penalty(w)))
                objective = E.add(b, objective, E.cast(b, term, objective.type.dtype))
    # the forward values the step returns are outputs before autodiff runs: the gradient of a scan replaces the
    # forward scan by one that also saves residuals, and redirects the graph's outputs to it
    g.outputs = {"loss": objective, **{k: src.outputs[k] for k in model.outputs}}
    g.outputs.update({f"params/{name}": v for name, v in updates.items()})
    g.sections["backward"] = len(g.nodes)
    grads = gradients(b, objective, params)
    return _Backward(g, b, objective, params, grads, updates)


def _step_dtype(loss: Value, params: list[Value]) -> str:
    """The learning rate's dtype: the widest float of the loss and the parameters (an f64 parameter's step is not
    rounded to float32 because the loss is)."""
    return "f64" if "f64" in {loss.type.dtype, *(p.type.dtype for p in params)} else loss.type.dtype


def _optimizer_state(g: Graph, config: TrainConfig, params: list[Value]) -> dict[str, Value]:
    state = {}
    for spec in make_optimizer(config.optimizer).state(params):
        v = g.add_input(spec.type, spec.name, "state")
        g.param_info[v] = ParamInfo(Init("zeros"), trainable=False, decay=False)
        state[spec.name] = v
    return state


def _apply(b: Builder, config: TrainConfig, params: list[Value], grads: dict[Value, Value],
           state: dict[str, Value], lr: Value, loss: Value) -> tuple[dict[Value, Value], dict[str, Value]]:
    """Clipping (when asked) and the optimizer update, appended to b's graph."""
    g = b.graph
    if config.clip:
        b.span = config.spans.get("clip") or loss.span
        grads = clip_by_global_norm(b, grads, config.clip)
    b.span = config.spans.get("optimizer") or loss.span
    g.sections["optimizer"] = len(g.nodes)
    optimizer = make_optimizer(config.optimizer, {p for p in params if g.param_info[p].decay})
    return optimizer.update(b, params, grads, state, lr)


def gradient_graph(model: ModelIR, wrt: str = "params") -> Graph:
    """The loss and its gradient with respect to every parameter (`grad/<name>`), and with respect to every float
    data input too when `wrt` is "all": what gradient checks compare against finite differences."""
    assert model.loss is not None
    src, _ = differentiable_form(model)
    g = src.copy_frame(f"{src.name}_gradients")
    g.nodes = list(src.nodes)
    b = Builder(g)
    loss = src.outputs["loss"]
    targets = list(g.params)
    if wrt == "all":
        targets += [v for v in g.inputs_with_role("input", "target") if v.type.is_float]
    g.outputs = {"loss": loss}  # redirected if autodiff replaces the scan that computes it (see train_graph)
    grads = gradients(b, loss, targets)
    g.outputs = {"loss": g.outputs["loss"], **{f"grad/{v.name}": grads[v] for v in targets}}
    return g


def clip_by_global_norm(b: Builder, grads: dict, limit: float) -> dict:
    """Scale every gradient by min(1, limit / ||all gradients||): the direction is kept, the step bounded."""
    if not grads:
        return grads
    total = None
    widest = "f64" if any(g.type.dtype == "f64" for g in grads.values()) else "f32"
    for g in grads.values():
        sq = E.cast(b, E.sum_(b, E.mul(b, g, g)), widest)
        total = sq if total is None else E.add(b, total, sq)
    norm = b.emit(Sqrt(), total)
    scale = b.emit(Minimum(), E.like(b, 1.0, norm), E.div(b, E.like(b, limit, norm), E.add(b, norm,
                                                                                          E.like(b, 1e-6, norm))))
    return {p: E.mul(b, g, E.cast(b, scale, g.type.dtype)) for p, g in grads.items()}
