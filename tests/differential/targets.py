"""Running a program through bmc: compile the `.bm` text, draw parameters and data, and run every target.

A target returns what it can compute of a `Result`: the NumPy modules everything, ONNX the inference outputs and the
train steps, the CUDA emulator everything. Each target's failure to compile or run a well-typed program is a
finding, reported with the program.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx
from bmc.backends.numpy import compile_function

import bmc
from bmc import ops
from bmc.passes import precision
from bmc.passes.pipeline import optimize
from bmc.runtime import load_source
from bmc.train.step import gradient_graph
from tests.differential.program import Program
from tests.differential.reference import STEPS, Result

FILENAME = "program.bm"
NUMPY = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}


@dataclass
class Case:
    """A program compiled by bmc, with the parameters and data every target starts from."""

    program: Program
    text: str
    models: dict[str, bmc.Model]  # "f32" and "f64" builds
    params: dict[str, np.ndarray]  # float32 values (the f64 targets and the reference widen them)
    tables: dict[str, np.ndarray]  # fixed tables (sinusoidal positions) as an f64 build initializes them
    data: dict[str, np.ndarray]
    keys: list[int]
    salts: dict[str, int] = field(default_factory=dict)

    @property
    def lr(self) -> float:
        return float(self.program.optimizer_args["lr"])


def compile_case(program: Program, seed: int = 0) -> Case:
    text = program.render()
    models = {d: bmc.compile_string(text, dtype=d, filename=FILENAME) for d in ("f32", "f64")}
    rng = np.random.default_rng(seed)
    params, _ = models["f32"].init_params(seed)
    specs = dict(program.all_params())
    for name, a in params.items():
        if name not in specs:
            raise AssertionError(f"bmc made a parameter '{name}' the program does not expect "
                                 f"(expected: {', '.join(sorted(specs))})")
        if specs[name].trainable or name.endswith(("running_mean", "running_var")):
            a = a + (0.1 * rng.standard_normal(a.shape)).astype(a.dtype)  # move off zeros and ones
            if specs[name].positive:
                a = np.abs(a) + np.asarray(0.5, a.dtype)
        params[name] = np.asarray(a)
    missing = set(specs) - set(params)
    if missing:
        raise AssertionError(f"bmc made no parameter(s) {', '.join(sorted(missing))}; it made {', '.join(params)}")
    data = {v.name: _data(v, program.data_shape(v), rng) for v in program.inputs + program.targets}
    fixed = [name for name, spec in specs.items() if not spec.trainable and not name.endswith(("running_mean",
                                                                                              "running_var"))]
    wide = models["f64"].init_params(seed)[0]
    case = Case(program, text, models, params, {k: wide[k] for k in fixed}, data,
                [1000 + 7 * i for i in range(STEPS)])
    graph = models["f32"].compiled.train_step()
    lines = {program.line_of(s.name): s.name for s in program.stmts if s.random}
    for node in graph.nodes:
        if isinstance(node.op, ops.RandomUniformLike):
            case.salts[lines[node.span.line]] = node.op.salt
    return case


def _data(v, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if v.ids is not None:
        return rng.integers(0, v.ids, shape).astype(NUMPY[v.dtype])
    if v.dtype == "bool":
        return rng.random(shape) < 0.5
    if v.positive:  # probabilities along the last axis
        e = np.exp(rng.standard_normal(shape))
        return (e / e.sum(axis=-1, keepdims=True)).astype(NUMPY[v.dtype])
    return rng.standard_normal(shape).astype(NUMPY[v.dtype])


def _as(dtype: str, arrays: dict[str, np.ndarray], tables: dict[str, np.ndarray] | None = None) -> dict:
    """Float arrays at a build's precision (an f64 build makes every float f64, and has its own fixed tables)."""
    if dtype == "f32":
        return {k: np.array(v) for k, v in arrays.items()}
    out = {k: v.astype(np.float64) if v.dtype.kind == "f" else np.array(v) for k, v in arrays.items()}
    return {**out, **{k: v for k, v in (tables or {}).items() if k in out}}


# ---- NumPy -----------------------------------------------------------------------------------------------------


def numpy_target(case: Case, dtype: str) -> Result:
    model = case.models[dtype]
    module = load_source(model.generate())
    program = case.program
    params = _as(dtype, case.params, case.tables)
    data = _as(dtype, case.data)
    inputs = [data[v.name] for v in program.inputs]
    outputs = module.forward(dict(params), *inputs)

    grad_fn = gradient_function(model, dtype)
    lr = NUMPY[module.HYPER["lr"][0]](case.lr) if "lr" in module.HYPER else None  # as bmc train feeds it
    feeds = {**data, **params, "lr": lr, "rng": np.int64(case.keys[0])}
    got = grad_fn({k: feeds[k] for k in grad_fn.inputs})
    grads = {k.removeprefix("grad/"): v for k, v in got.items() if k.startswith("grad/")}

    state = {k: v for k, v in model.init_params(0)[1].items()}
    p = dict(params)
    losses = []
    hyper = list(module.HYPER)
    for step in range(STEPS):
        values = {"lr": lr, "rng": np.int64(case.keys[step])}
        out = module.train_step(p, state, dict(data), *(values[h] for h in hyper))
        losses.append(float(out["loss"]))
    return Result(outputs, float(got["loss"]), grads, losses, p)


def gradient_function(model: bmc.Model, dtype: str):
    """d loss / d every trainable parameter, in training mode (bmc's gradient graph, optimized as builds are)."""
    graph = gradient_graph(model.compiled.model)
    trainable = {p.name for p in graph.params if graph.param_info[p].trainable}
    graph.outputs = {k: v for k, v in graph.outputs.items() if k == "loss" or k.removeprefix("grad/") in trainable}
    if dtype != "f32":
        graph = precision.run(graph, dtype)
    graph = optimize(graph)
    fn = compile_function(graph)
    fn.inputs = [v.name for v in graph.inputs]
    return fn


# ---- ONNX ------------------------------------------------------------------------------------------------------


def onnx_models(case: Case, dtype: str):
    from bmc.backends import onnx as onnx_backend

    model = case.models[dtype]
    params = _as(dtype, case.params, case.tables)
    inference = None
    if model.compiled.model.outputs:
        inference = onnx_backend.inference_model(model, params)
        onnx_backend.check(inference)
    step = onnx_backend.train_step_model(model)
    onnx_backend.check(step)
    return inference, step


class Unsupported(Exception):  # noqa: N818 - a statement about the target
    """The target cannot run this program for a reason outside bmc (onnxruntime lacks a kernel for a dtype)."""


def onnx_target(case: Case, dtype: str, runner: str) -> Result:
    """`runner`: "onnxruntime" or "reference" (onnx.reference.ReferenceEvaluator)."""
    try:
        return _onnx_target(case, dtype, runner)
    except Exception as e:
        text = str(e)
        if "NOT_IMPLEMENTED" in text or "does not support double" in text:
            raise Unsupported(text.split(" : ")[-1].split("Status Message: ")[-1]) from None
        raise


def _onnx_target(case: Case, dtype: str, runner: str) -> Result:
    program = case.program
    inference, step = onnx_models(case, dtype)
    data = _as(dtype, case.data)
    outputs = {}
    if inference is not None:
        run_inference = _runner(inference, runner, dtype == "f64")
        outputs = run_inference({v.name: data[v.name] for v in program.inputs})
    if runner == "reference" and _reversed_scan(step.graph):
        return Result(outputs, math.nan, {}, None, None)  # its Scan runs forwards only: no train steps there
    run_step = _runner(step, runner, dtype == "f64")
    model = case.models[dtype]
    p = _as(dtype, case.params, case.tables)
    state = model.init_params(0)[1]
    names = {i.name for i in step.graph.input}
    lr_type = next((onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in step.graph.input
                    if i.name == "lr"), NUMPY[dtype])
    losses = []
    for k in range(STEPS):
        feeds = {**data, **p, **state, "lr": np.asarray(case.lr, lr_type), "rng": np.asarray(case.keys[k])}
        out = run_step({n: feeds[n] for n in names})
        losses.append(float(out["loss"]))
        for key, value in out.items():
            group, _, name = key.partition("/")
            if group == "params":
                p[name] = value
            elif group == "state":
                state[name] = value
    return Result(outputs, math.nan, {}, losses, p)


def _reversed_scan(graph) -> bool:
    return any(any(_ints(node, "scan_input_directions")) for node in _nodes(graph))


def _interleaved(pads: list[int]) -> list[int]:
    """ONNX's pads (every begin, then every end) as onnx.reference's MaxPool reads them (begin, end per axis)."""
    k = len(pads) // 2
    return [p for i in range(k) for p in (pads[i], pads[k + i])]


def _nodes(graph):
    """Every node of the graph, those in subgraphs (Scan bodies) included."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == attr.GRAPH:
                yield from _nodes(attr.g)


def _ints(node, name: str) -> list[int]:
    return next((list(a.ints) for a in node.attribute if a.name == name), [])


def _asymmetric_max_pool(node) -> bool:
    """A MaxPool whose pads onnx.reference misreads: it takes them as (begin, end) per axis."""
    return node.op_type == "MaxPool" and _interleaved(_ints(node, "pads")) != _ints(node, "pads")


def _max_pool_indices_on_unit_strides(node) -> bool:
    """A MaxPool whose Indices onnx.reference computes on its path for unit strides and dilations, which numbers
    them wrongly (onnx's own `_max_pool` path, taken for any other stride, numbers them as the standard does)."""
    return (node.op_type == "MaxPool" and len(node.output) > 1 and bool(node.output[1])
            and set(_ints(node, "strides")) <= {1} and set(_ints(node, "dilations")) <= {1})


# onnx.reference's known faults (onnx 1.23), each a node predicate and what it does; onnxruntime and PyTorch agree
# with bmc there. tests/test_differential.py checks that each is still present, so the skip goes when onnx fixes it.
REFERENCE_FAULTS = [
    (_asymmetric_max_pool, "onnx.reference's MaxPool reads pads as (begin, end) per axis (onnx 1.23: pads "
                           "[1, 0, 1, 1] on [1, 3, 2, 3] gives [1, 3, 1, 4]; onnxruntime gives [1, 3, 2, 3])"),
    (_max_pool_indices_on_unit_strides, "onnx.reference's MaxPool numbers its Indices wrongly for unit strides "
                                        "(onnx 1.23: size [2, 2] on [1, 1, 2, 4] gives [4, 3, 6]; onnxruntime and "
                                        "the standard give [5, 5, 7])"),
]


def reference_fault(graph) -> str | None:
    """Why onnx.reference cannot be trusted on this graph, or None."""
    return next((why for node in _nodes(graph) for fault, why in REFERENCE_FAULTS if fault(node)), None)


def exact_sigmoids(proto):
    """A copy of the model with each Sigmoid written as 1 / (1 + exp(-x)). onnxruntime's float32 Sigmoid is an
    approximation (MLAS: 6% relative error at -13.75, zero below -17) that bmc does not control; with it replaced,
    a float32 onnxruntime disagreement is bmc's graph. Its float64 runs and onnx.reference keep the real op."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    count = iter(range(1 << 30))  # names unique in the whole model: ONNX's SSA spans its subgraphs

    def rewrite(graph) -> None:
        nodes = []
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == attr.GRAPH:
                    rewrite(attr.g)
            if node.op_type != "Sigmoid":
                nodes.append(node)
                continue
            x, (y,) = node.input[0], node.output
            t = f"bmc_test_sigmoid{next(count)}_"
            make = onnx.helper.make_node
            nodes += [make("Neg", [x], [t + "neg"]), make("Exp", [t + "neg"], [t + "exp"]),
                      make("Constant", [], [t + "one"], value_float=1.0),
                      make("CastLike", [t + "one", x], [t + "one_like"]),
                      make("Add", [t + "one_like", t + "exp"], [t + "den"]),
                      make("Div", [t + "one_like", t + "den"], [y])]
        del graph.node[:]
        graph.node.extend(nodes)

    rewrite(proto.graph)
    return proto


def _runner(proto, runner: str, wide: bool):
    """A function of the feeds returning the outputs by their IR names (ONNX names an output that is also an input
    `NAME.output`)."""
    names = [o.name for o in proto.graph.output]
    inputs = {i.name for i in proto.graph.input} | {i.name for i in proto.graph.initializer}
    keys = [n.removesuffix(".output") if n.removesuffix(".output") in inputs else n for n in names]
    if runner == "reference":
        from onnx.reference import ReferenceEvaluator

        if fault := reference_fault(proto.graph):
            raise Unsupported(fault)
        evaluator = ReferenceEvaluator(proto)
        return lambda feeds: dict(zip(keys, evaluator.run(None, feeds), strict=True))
    import onnxruntime as ort

    if not wide:
        proto = exact_sigmoids(proto)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    if wide:
        # onnxruntime's graph fusions carry float32 attributes (FusedMatMul's alpha: attention's 1/sqrt(d) rounded
        # to float32), which is its business, not the exported graph's: f64 models run as exported
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda feeds: dict(zip(keys, session.run(names, feeds), strict=True))


# ---- the CUDA backend, through its CPU emulator -----------------------------------------------------------------


def cuda_target(case: Case, dtype: str) -> Result:
    from bmc.backends import cuda
    from bmc.backends.cuda.runtime import Library

    from tests.cuda_emulator import emulate

    model = case.models[dtype]
    c = model.compiled
    grads = gradient_function_graph(model, dtype)
    functions = {"forward": c.inference(), "gradients": grads, "train_step": c.train_step()}
    prog = cuda.generate("program", FILENAME, "", functions)
    session = Library(emulate.build(prog.source), prog.manifest).session()
    program = case.program
    params = _as(dtype, case.params, case.tables)
    data = _as(dtype, case.data)
    state = model.init_params(0)[1]
    session.load(params, state)
    outputs = session.run("forward", {v.name: data[v.name] for v in program.inputs})
    hyper = {"lr": case.lr, "rng": case.keys[0]}
    names = {v.name for v in grads.inputs_with_role("hyper")}
    got = session.run("gradients", data, {k: v for k, v in hyper.items() if k in names})
    losses = []
    step_hyper = {v.name for v in functions["train_step"].inputs_with_role("hyper")}
    for k in range(STEPS):
        values = {"lr": case.lr, "rng": case.keys[k]}
        out = session.run("train_step", data, {n: values[n] for n in step_hyper})
        losses.append(float(out["loss"]))
    after = {name: session.read(name) for name in params}
    return Result(outputs, float(got["loss"]), {k.removeprefix("grad/"): v for k, v in got.items()
                                                 if k.startswith("grad/")}, losses, after)


def gradient_function_graph(model: bmc.Model, dtype: str):
    graph = gradient_graph(model.compiled.model)
    trainable = {p.name for p in graph.params if graph.param_info[p].trainable}
    graph.outputs = {k: v for k, v in graph.outputs.items() if k == "loss" or k.removeprefix("grad/") in trainable}
    if dtype != "f32":
        graph = precision.run(graph, dtype)
    return optimize(graph)
