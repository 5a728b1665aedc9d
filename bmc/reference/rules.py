"""The reference rules: one per op class, each returning a NumPy expression over its inputs' expressions. They are
what the interpreter evaluates (interpret.py) and what the NumPy backend writes into its module.

`@lower(Op)` registers a rule. Ops without a rule here are decomposed (`prepare`) first.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Protocol

from bmc import ops
from bmc.ir import dims
from bmc.ir.graph import Graph, Node
from bmc.ir.types import NUMPY_NAMES, Dim
from bmc.ops.base import Op
from bmc.passes import decompose
from bmc.reference import kernels
from bmc.reference.pytext import literal
from bmc.rule_table import RuleTable


class Context(Protocol):
    def shape(self, shape: tuple[Dim, ...]) -> str: ...
    def dim(self, d: Dim) -> str: ...
    def use(self, helper: str) -> str: ...


Rule = Callable[[Node, list[str], Context], str]
RULES: RuleTable[Rule] = RuleTable("numpy", "expression", kernel=None)  # kernel: the function of kernels.py
lower = RULES.register
supports = RULES.supports


def prepare(graph: Graph) -> Graph:
    """The graph with every op that has no rule here decomposed (`Op.decompose`) into ops that do."""
    return decompose.run(graph, supports)


def np_dtype(dtype: str) -> str:
    return f"np.{NUMPY_NAMES[dtype]}"


def _axes(axes: tuple[int, ...] | None) -> str:
    if axes is None:
        return "None"
    return str(axes[0]) if len(axes) == 1 else repr(tuple(axes))


# ---- elementwise -------------------------------------------------------------------------------------------------


@lower(ops.Const)
def _const(node, a, ctx):
    op = node.op
    return f"{np_dtype(op.dtype)}({literal(op.value)})"


# Ops whose NumPy lowering is one ufunc call: its name and any constant arguments after the op's own (relu is
# np.maximum(x, 0)). The memory planner lets exactly these, and matmul, write into a planned buffer (`lower_into`).
UFUNCS: dict[type[Op], tuple[str, ...]] = {
    ops.Add: ("np.add",), ops.Sub: ("np.subtract",), ops.Mul: ("np.multiply",), ops.Div: ("np.divide",),
    ops.Pow: ("np.power",), ops.Maximum: ("np.maximum",), ops.Minimum: ("np.minimum",), ops.Neg: ("np.negative",),
    ops.Exp: ("np.exp",), ops.Log: ("np.log",), ops.Sqrt: ("np.sqrt",), ops.Tanh: ("np.tanh",), ops.Abs: ("np.abs",),
    ops.Sign: ("np.sign",), ops.Relu: ("np.maximum", "0"),
}
# the ufuncs read as Python operators, where an expression is not written into a buffer
OPERATORS = {ops.Add: "{} + {}", ops.Sub: "{} - {}", ops.Mul: "{} * {}", ops.Div: "{} / {}", ops.Pow: "{} ** {}",
             ops.Neg: "-{}"}


def _ufunc_call(node: Node, a: list[str], *out: str) -> str:
    name, *constants = UFUNCS[type(node.op)]
    return f"{name}({', '.join([*a, *constants, *out])})"


@lower(*UFUNCS)
def _ufunc(node, a, ctx):
    operator = OPERATORS.get(type(node.op))
    return operator.format(*a) if operator else _ufunc_call(node, a)


@lower(ops.Sigmoid)
def _sigmoid(node, a, ctx):
    return f"{ctx.use('_sigmoid')}({a[0]})"


@lower(ops.Gelu)
def _gelu(node, a, ctx):
    return f"{ctx.use('_gelu')}({a[0]})"


@lower(ops.GeluGrad)
def _gelu_grad(node, a, ctx):
    return f"{ctx.use('_gelu_grad')}({a[0]}, {a[1]})"


@lower(ops.Erf)
def _erf(node, a, ctx):
    return f"{ctx.use('_erf')}({a[0]})"


@lower(ops.Compare)
def _compare(node, a, ctx):
    return f"{a[0]} {node.op.op} {a[1]}"


def _is_zero(v) -> bool:
    op = v.producer.op if v.producer is not None else None
    return isinstance(op, ops.Const) and op.value == 0 and repr(op.value) != "-0.0"


@lower(ops.Where)
def _where(node, a, ctx):
    # where(c, x, 0) of a float tensor x (a relu's or a dropout's gradient) is `_masked`, a multiply by the mask that
    # falls back to np.where where x is inf or nan (np.where's select is about ten times slower than the multiply)
    _, x, y = node.inputs
    out = node.outputs[0].type
    for value, zero, keep in ((x, y, a[0]), (y, x, f"np.logical_not({a[0]})")):
        if (_is_zero(zero) and out.rank and out.dtype.startswith("f") and value.type.dtype == out.dtype
                and zero.type.dtype == out.dtype):
            return f"{ctx.use('_masked')}({a[1] if value is x else a[2]}, {keep})"
    return f"np.where({a[0]}, {a[1]}, {a[2]})"


@lower(ops.Cast)
def _cast(node, a, ctx):
    if node.inputs[0].type.rank == 0:  # a scalar may be a Python number (the learning rate a caller passes)
        return f"{np_dtype(node.op.dtype)}({a[0]})"
    return f"{a[0]}.astype({np_dtype(node.op.dtype)})"


# ---- shapes ------------------------------------------------------------------------------------------------------


@lower(ops.Reshape)
def _reshape(node, a, ctx):
    return f"{a[0]}.reshape({ctx.shape(node.outputs[0].type.shape)})"


@lower(ops.Transpose)
def _transpose(node, a, ctx):
    return f"{a[0]}.transpose({node.op.perm!r})"


@lower(ops.BroadcastTo)
def _broadcast_to(node, a, ctx):
    return f"np.broadcast_to({a[0]}, {ctx.shape(node.op.shape)})"


@lower(ops.Concat)
def _concat(node, a, ctx):
    return f"np.concatenate([{', '.join(a)}], axis={node.op.axis})"


@lower(ops.Slice)
def _slice(node, a, ctx):
    axis = node.op.axis % node.inputs[0].type.rank
    op = node.op
    if op.step == 1:
        bounds = f"{op.start}:{ctx.dim(op.stop)}"
    else:  # stop -1 of a negative step runs through element 0: NumPy reads -1 as the last, so it is left out
        bounds = f"{op.start}:{'' if op.stop == -1 else op.stop}:{op.step}"
    index = ", ".join([":"] * axis + [bounds])
    return f"{a[0]}[{index}]"


@lower(ops.Split)
def _split(node, a, ctx):
    # a tuple of basic slices (views, as np.split gives, without its Python-level work: a recurrent cell splits its
    # gates at every step)
    axis = node.op.axis % node.inputs[0].type.rank
    bounds = [0, *itertools.accumulate(node.op.sizes)]
    pieces = [f"{a[0]}[{', '.join([':'] * axis + [f'{start}:{stop}'])}]" for start, stop in itertools.pairwise(bounds)]
    return f"({', '.join(pieces)})"


@lower(ops.PadEnd)
def _pad_end(node, a, ctx):
    x = node.inputs[0].type
    axis = node.op.axis % x.rank
    widths = ", ".join("(0, 0)" if i != axis else f"(0, {node.op.size} - {a[0]}.shape[{axis}])"
                       for i in range(x.rank))
    return f"np.pad({a[0]}, [{widths}])"


@lower(ops.SizeOf)
def _size_of(node, a, ctx):
    count = dims.product(node.op.dims_of(node.inputs[0].type))
    return f"{np_dtype(node.op.dtype)}({ctx.dim(count)})"


# ---- reductions and products -------------------------------------------------------------------------------------


@lower(ops.Sum, ops.Mean, ops.Max)
def _reduce(node, a, ctx):
    keep = ", keepdims=True" if node.op.keepdims else ""
    return f"{a[0]}.{node.op.name}(axis={_axes(node.op.axes)}{keep})"


@lower(ops.MatMul)
def _matmul(node, a, ctx):
    x, y = a
    if node.op.transpose_a:
        x = f"{x}.T" if node.inputs[0].type.rank == 2 else f"{x}.mT"
    if node.op.transpose_b:
        y = f"{y}.T" if node.inputs[1].type.rank == 2 else f"{y}.mT"
    return f"{x} @ {y}"


@lower(ops.Dense)
def _dense(node, a, ctx):
    return f"{a[0]} @ {a[1]} + {a[2]}"


# ---- neural-network composites and losses ---------------------------------------------------------------------


@lower(ops.Softmax)
def _softmax(node, a, ctx):
    return f"{ctx.use('_softmax')}({a[0]}, axis={node.op.axis})"


@lower(ops.LogSoftmax)
def _log_softmax(node, a, ctx):
    return f"{ctx.use('_log_softmax')}({a[0]}, axis={node.op.axis})"


@lower(ops.OneHot)
def _one_hot(node, a, ctx):
    return f"{ctx.use('_one_hot')}({a[0]}, {node.op.depth}, {np_dtype(node.op.dtype)})"


LOSSES = {ops.CrossEntropy: "_cross_entropy", ops.BinaryCrossEntropy: "_binary_cross_entropy",
          ops.MeanSquaredError: "_mse"}


@lower(*LOSSES)
def _loss(node, a, ctx):
    return f"{ctx.use(LOSSES[type(node.op)])}({a[0]}, {a[1]})"


# ---- writing into an existing buffer (memory planning) --------------------------------------------------------------


def lower_into(node: Node, a: list[str], out: str) -> str:
    """The op written into the buffer `out` (see backends/numpy/memory.py): a ufunc's or matmul's `out=`."""
    if isinstance(node.op, ops.MatMul):
        x, y = _matmul(node, a, None).split(" @ ")
        return f"np.matmul({x}, {y}, out={out})"
    return _ufunc_call(node, a, f"out={out}")


# ---- images, lookups, randomness, attention, normalization -----------------------------------------------------------


def _helper_call(helper: str, args: list[str], ctx, **attrs) -> str:
    extra = [f"{k}={literal(v)}" for k, v in attrs.items()]
    return f"{ctx.use(helper)}({', '.join([*args, *extra])})"


# Ops whose NumPy implementation is a kernel of the same name (`_conv2d`, `_max_pool2d_grad`, ...) taking the op's
# attributes as keyword arguments.
# ops computed by one function of kernels.py, called with the op's inputs and then its attributes by name
KERNELS: dict[type[Op], Callable] = {
    ops.Conv2d: kernels._conv2d, ops.Conv2dGradInput: kernels._conv2d_grad_input,
    ops.Conv2dGradWeight: kernels._conv2d_grad_weight, ops.MaxPool2d: kernels._max_pool2d,
    ops.MaxPool2dGrad: kernels._max_pool2d_grad, ops.AvgPool2d: kernels._avg_pool2d,
    ops.AvgPool2dGrad: kernels._avg_pool2d_grad, ops.ScatterAdd: kernels._scatter_add,
    ops.RandomUniformLike: kernels._random_uniform_like, ops.CausalMask: kernels._causal_mask,
    ops.LayerNorm: kernels._layer_norm, ops.BatchNormTrain: kernels._batch_norm_train,
    ops.BatchNormTrainGrad: kernels._batch_norm_train_grad, ops.Resize: kernels._resize,
    ops.ResizeGrad: kernels._resize_grad,
}


def _kernel(node, a, ctx):
    return _helper_call(RULES.option(node.op, "kernel").__name__, a, ctx, **node.op.attrs())


for _op, _function in KERNELS.items():
    lower(_op, kernel=_function)(_kernel)


@lower(ops.Gather)
def _gather(node, a, ctx):
    return f"{ctx.use('_gather')}({a[0]}, {a[1]})"


@lower(ops.Scan)
def _scan(node, a, ctx):
    return f"{ctx.scan_function(node)}({', '.join(a)})"
