"""The reference: a program computed by PyTorch (float64, or float32 to measure how much rounding the program
amplifies), with torch.autograd for gradients and torch.optim for the optimizer steps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tests.differential.program import Ctx, Program

STEPS = 3


@dataclass
class Result:
    outputs: dict[str, np.ndarray]  # inference mode, initial parameters
    loss: float  # training mode, initial parameters, the first key
    grads: dict[str, np.ndarray]  # d loss / d trainable parameter
    losses: list[float] | None  # the objective (loss + train-block penalties) of each optimizer step
    params: dict[str, np.ndarray] | None  # after STEPS steps (running statistics included); None: not run


def _tensor(a: np.ndarray, declared: str, dtype: torch.dtype) -> torch.Tensor:
    """Floats in `dtype`, whatever their declared precision: the reference computes everything in float64, and its
    twin everything in float32, to measure how much the whole program amplifies rounding."""
    t = torch.from_numpy(np.array(a))
    return t.to(dtype) if t.is_floating_point() else t


def run(program: Program, params: dict[str, torch.Tensor], data: dict[str, torch.Tensor], training: bool,
        key: int, salts: dict[str, int], dtype: torch.dtype):
    ctx = Ctx(dict(data), params, "", training, key, salts, float_dtype=dtype)
    for s in program.stmts:
        ctx.prefix, ctx.stmt = ("" if s.decl else f"{s.name}."), s.name
        ctx.values[s.name] = s.compute(ctx)
    ctx.prefix, ctx.stmt = "loss.", "loss"
    return ctx.values, program.loss.compute(ctx)


def evaluate(program: Program, params: dict[str, np.ndarray], data: dict[str, np.ndarray], keys: list[int],
             salts: dict[str, int], dtype: torch.dtype = torch.float64) -> Result:
    declared = {name: "f64" if a.dtype == np.float64 else "f32" for name, a in params.items()}  # as bmc declared
    specs = dict(program.all_params())

    def fresh() -> dict[str, torch.Tensor]:
        out = {}
        for name, a in params.items():
            t = _tensor(a, declared[name], dtype)
            out[name] = t.requires_grad_(True) if specs[name].trainable else t
        return out

    feeds = {v.name: _tensor(data[v.name], v.dtype, dtype) for v in program.inputs + program.targets}
    with torch.no_grad():
        values, _ = run(program, fresh(), feeds, False, keys[0], salts, dtype)
        outputs = {k: values[k].detach().numpy() if k in values else params[k] for k in program.outputs}

    p = fresh()
    _, loss = run(program, p, feeds, True, keys[0], salts, dtype)
    trainable = [n for n in p if specs[n].trainable]
    grads = [None] * len(trainable)
    if trainable and loss.requires_grad:
        grads = torch.autograd.grad(loss, [p[n] for n in trainable], allow_unused=True)
    grad_arrays = {n: (g if g is not None else torch.zeros_like(p[n])).detach().numpy()
                   for n, g in zip(trainable, grads, strict=True)}

    p = fresh()
    optimizer = _optimizer(program, p, specs) if trainable else None
    losses = []
    for step in range(STEPS):
        _, loss_t = run(program, p, feeds, True, keys[step], salts, dtype)
        objective = loss_t + _penalties(program, p, specs)
        losses.append(float(objective))
        if optimizer is None:
            continue
        optimizer.zero_grad()
        if objective.requires_grad:
            objective.backward()
        if program.clip:
            torch.nn.utils.clip_grad_norm_([p[n] for n in trainable], program.clip)
        for n in trainable:  # a parameter the loss does not reach still takes a step (zero gradient)
            if p[n].grad is None:
                p[n].grad = torch.zeros_like(p[n])
        optimizer.step()
    return Result(outputs, float(loss), grad_arrays, losses, {k: v.detach().numpy() for k, v in p.items()})


def _penalties(program: Program, p: dict, specs: dict):
    total = 0.0
    for kind, strength in program.penalties.items():
        for name, spec in specs.items():
            if spec.decay and spec.trainable:
                w = p[name]
                total = total + strength * ((w * w).sum() if kind == "l2" else w.abs().sum())
    return total


def _optimizer(program: Program, p: dict, specs: dict) -> torch.optim.Optimizer:
    a = program.optimizer_args
    trainable = [n for n in p if specs[n].trainable]
    tensors = [p[n] for n in trainable]
    kind = program.optimizer
    if kind == "gd" or (kind == "sgd" and not a.get("momentum")):
        return torch.optim.SGD(tensors, lr=a["lr"])
    if kind == "sgd":
        return torch.optim.SGD(tensors, lr=a["lr"], momentum=a["momentum"], nesterov=bool(a.get("nesterov")))
    betas = (a.get("beta1", 0.9), a.get("beta2", 0.999))
    if kind == "adam":
        return torch.optim.Adam(tensors, lr=a["lr"], betas=betas, eps=a["eps"])
    decay = [p[n] for n in trainable if specs[n].decay]
    rest = [p[n] for n in trainable if not specs[n].decay]
    groups = [{"params": decay, "weight_decay": a["weight_decay"]}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW([grp for grp in groups if grp["params"]], lr=a["lr"], betas=betas, eps=a["eps"])
