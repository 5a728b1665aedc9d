"""A random program as data: what its `.bm` file says, and how each statement is computed in PyTorch.

Names follow the language's documented rules, which the reference relies on to find parameters: a statement `h`
that makes one parameter-owning call owns `h.W`, `h.b`; one that makes several owns `h.dense.W`, `h.dense_1.W`; a
user layer called from `h` owns `h.<param>` and `h.<statement>.W`; `repeat` copies own `h.0.*`, `h.1.*`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Shape = tuple[int | str, ...]  # ints, and "N" (the batch) or "T" (a symbolic sequence length)
FLOATS = ("f32", "f64")


@dataclass
class Val:
    """A value a statement can use: its `.bm` name, dtype, shape and what is known of its range."""

    name: str
    dtype: str
    shape: Shape
    scale: float = 1.0  # a rough bound on |value|, to keep exp and ** finite
    positive: bool = False  # > 0 everywhere (log, sqrt, division are safe)
    ids: int | None = None  # integer values in [0, ids)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOATS

    @property
    def batched(self) -> bool:
        return "N" in self.shape


@dataclass
class Ctx:
    """What a statement's PyTorch computation sees: earlier values, the parameters, the mode."""

    values: dict[str, Any]
    params: dict[str, Any]  # full bmc names -> torch tensors
    prefix: str  # "h." for statement h; "h.0.blk." inside the first copy of a repeated layer
    training: bool
    key: int = 0  # the step's random key (dropout)
    salts: dict[str, int] = field(default_factory=dict)  # full statement name -> its dropout site's salt
    stmt: str = ""  # the full name of the statement being computed
    float_dtype: Any = None  # every float's torch dtype: float64 in the reference, float32 in its rounding twin

    def torch_dtype(self, dtype: str):
        import torch

        return {"f32": self.float_dtype, "f64": self.float_dtype, "i32": torch.int32, "i64": torch.int64,
                "bool": torch.bool}[dtype]

    def v(self, name: str):
        return self.values[name]

    def p(self, suffix: str):
        return self.params[self.prefix + suffix]

    def child(self, prefix: str, values: dict[str, Any]) -> Ctx:
        return Ctx(dict(values), self.params, prefix, self.training, self.key, self.salts, self.stmt,
                   self.float_dtype)


Compute = Callable[[Ctx], Any]


@dataclass
class Param:
    """A parameter a statement owns, by its name relative to the statement's prefix (`W`, `dense_1.b`)."""

    suffix: str
    decay: bool  # weights decay (L1/L2 in the train block, AdamW); biases, norms and positions do not
    trainable: bool = True
    positive: bool = False  # keep it positive when perturbed (running variances)


@dataclass
class Stmt:
    name: str
    expr: str  # the right-hand side in .bm syntax
    out: Val
    compute: Compute
    kinds: tuple[str, ...]  # the catalog entries it exercises (for the drawn-op counts)
    params: list[Param] = field(default_factory=list)
    decl: str = ""  # a full declaration line instead of `name = expr` (explicit `param` statements)
    random: bool = False  # draws dropout numbers (one site per statement)

    def line(self) -> str:
        return self.decl or f"{self.name} = {self.expr}"


@dataclass
class Layer:
    """A user-defined layer: `layer name(args) { body; return ret }`."""

    name: str
    args: list[str]  # rendered arguments: "x: f32[B, d]", "k: int"
    tensor_args: list[str]  # names of the tensor arguments, in order
    body: list[Stmt]
    ret: str
    ret_compute: Compute

    def render(self) -> str:
        lines = [f"layer {self.name}({', '.join(self.args)}) {{"]
        lines += [f"    {s.line()}" for s in self.body]
        lines += [f"    return {self.ret}", "}"]
        return "\n".join(lines)

    def params(self) -> list[Param]:
        """Parameters relative to the calling statement's prefix."""
        out = []
        for s in self.body:
            out += [Param(s.name if s.decl else f"{s.name}.{p.suffix}", p.decay, p.trainable, p.positive)
                    for p in s.params]
        return out

    def compute(self, ctx: Ctx, args: list[Any]):
        inner = ctx.child(ctx.prefix, dict(zip(self.tensor_args, args, strict=True)))
        for s in self.body:
            inner.prefix = ctx.prefix if s.decl else f"{ctx.prefix}{s.name}."
            inner.values[s.name] = s.compute(inner)
        inner.prefix = ctx.prefix
        return self.ret_compute(inner)


@dataclass
class Program:
    inputs: list[Val]
    targets: list[Val]
    stmts: list[Stmt]  # in dependency order
    outputs: list[str]
    loss: Stmt
    layers: list[Layer] = field(default_factory=list)
    optimizer: str = "sgd"
    optimizer_args: dict[str, float | bool] = field(default_factory=dict)
    penalties: dict[str, float] = field(default_factory=dict)  # train block l1 / l2
    clip: float | None = None
    order: list[int] = field(default_factory=list)  # the order statements are written in (order-free language)
    batch: int = 3  # N at run time
    length: int = 4  # T at run time (when an input has a symbolic length)

    def render(self) -> str:
        lines = [layer.render() for layer in self.layers]
        lines.append("model m() {")
        for v in self.inputs:
            lines.append(f"    input {v.name}: {v.dtype}[{', '.join(map(str, v.shape))}]")
        for v in self.targets:
            lines.append(f"    target {v.name}: {v.dtype}[{', '.join(map(str, v.shape))}]")
        order = self.order or list(range(len(self.stmts)))
        for i in order:
            s = self.stmts[i]
            marker = "output " if s.name in self.outputs and not s.decl else ""
            lines.append(f"    {marker}{s.line()}")
        lines += [f"    output {name}" for name in self.outputs if self._is_decl(name)]
        lines.append(f"    {self.loss.line()}")
        lines.append("}")
        args = ", ".join(f"{k} = {_lit(v)}" for k, v in self.optimizer_args.items())
        settings = [f"optimizer = {self.optimizer}({args})"]
        settings += [f"{k} = {_lit(v)}" for k, v in self.penalties.items()]
        if self.clip:
            settings.append(f"clip = {_lit(self.clip)}")
        lines.append("train m {")
        lines += [f"    {s}" for s in settings]
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _is_decl(self, name: str) -> bool:
        return any(s.name == name and s.decl for s in self.stmts)

    def line_of(self, name: str) -> int:
        """The 1-based line of a model statement in the rendered file (dropout salts are found by line)."""
        for no, text in enumerate(self.render().splitlines(), 1):
            stripped = text.strip().removeprefix("output ")
            if stripped.startswith(f"{name} = ") or stripped.startswith(f"param {name}:"):
                return no
        raise KeyError(name)

    def all_params(self) -> list[tuple[str, Param]]:
        """Every parameter as (full name, Param)."""
        out = [(f"{s.name}.{p.suffix}" if not s.decl else s.name, p) for s in self.stmts for p in s.params]
        return out + [(f"loss.{p.suffix}", p) for p in self.loss.params]

    def kinds(self) -> list[str]:
        out = [k for s in self.stmts for k in s.kinds] + list(self.loss.kinds)
        for layer in self.layers:
            out += [k for s in layer.body for k in s.kinds]
        out.append(f"optimizer:{self.optimizer}")
        out += [f"penalty:{k}" for k in self.penalties]
        if self.clip:
            out.append("clip")
        out += [f"dtype:{v.dtype}" for v in self.inputs + self.targets]
        return out

    def data_shape(self, v: Val) -> tuple[int, ...]:
        return tuple(self.batch if d == "N" else self.length if d == "T" else d for d in v.shape)


def _lit(v: float | bool | int) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v == int(v) and abs(v) < 1e6:
        return f"{v:.1f}"
    return repr(v)


def shape_text(shape: Shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)
