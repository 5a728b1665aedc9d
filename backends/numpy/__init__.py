"""The NumPy backend: a readable, standalone Python module per model (see codegen.py)."""

from __future__ import annotations

from bmc.backends.numpy.codegen import INPUT_ERROR, ModuleContext, function_source, render_module

from bmc.frontend.preprocess import Preprocess
from bmc.ir.graph import Graph
from bmc.ir.types import NUMPY_NAMES
from bmc.reference.rules import prepare
from bmc.version import __version__


def _signature(values) -> dict:
    return {v.name: (v.type.dtype, list(v.type.shape)) for v in values}


def generate(name: str, source: str, source_hash: str, inference: Graph, train: Graph | None,
             dtype: str = "f32", evaluation: Graph | None = None, preprocess: Preprocess | None = None,
             split: tuple[Graph, Graph] | None = None) -> str:
    """The source of the generated module for a model's inference graph and (optionally) its train step, the train
    step's two halves `split` (gradients, then the optimizer's apply: what data-parallel training runs) and its
    inference-mode loss on a labelled batch. `preprocess` (the build's contract, which the graphs already compute)
    is stated in the module's docstring and kept as PREPROCESS, as the manifest records it."""
    module = ModuleContext()
    inference = prepare(inference)
    fwd = function_source(
        "forward", inference, module,
        [("params", inference.params), ("", inference.inputs_with_role("input"))],
        doc=f"Inference: {', '.join(inference.outputs)} of model {name}.",
    )
    train_src = ""
    hyper_args = ""
    state, hyper_sig = {}, {}
    if train is not None:
        train = prepare(train)
        hyper = train.inputs_with_role("hyper")
        hyper_args = ", ".join(v.name for v in hyper)
        write_back = {k: ("params", k.split("/", 1)[1]) for k in train.outputs if k.startswith("params/")}
        write_back.update({k: ("state", k.split("/", 1)[1]) for k in train.outputs if k.startswith("state/")})
        returns = [k for k in train.outputs if "/" not in k]
        train_src = function_source(
            "train_step", train, module,
            [("params", train.params), ("state", train.inputs_with_role("state")),
             ("batch", train.inputs_with_role("input", "target")), ("", hyper)],
            doc="One training step on a batch: forward, backward, optimizer update.\n\n"
                "    Updates `params` and `state` in place; returns the loss and the model's outputs.",
            write_back=write_back, returns=returns,
        )
        state = _signature(train.inputs_with_role("state"))
        hyper_sig = _signature(hyper)
    halves = _halves(split, module) if split is not None else ""
    eval_src = ""
    if evaluation is not None:
        evaluation = prepare(evaluation)
        eval_src = function_source(
            "evaluate", evaluation, module,
            [("params", evaluation.params), ("batch", evaluation.inputs_with_role("input", "target"))],
            doc="The loss and outputs on a labelled batch, in inference mode (no dropout, running statistics).",
        )
    return render_module(
        model=name, version=__version__, dtype=dtype, np_dtype=NUMPY_NAMES[dtype], source=source,
        source_hash=source_hash,
        inputs=_signature(inference.inputs_with_role("input")),
        outputs={k: (v.type.dtype, list(v.type.shape)) for k, v in inference.outputs.items()},
        params=_signature(inference.params), state=state, hyper=hyper_sig,
        forward_args=", ".join(v.name for v in inference.inputs_with_role("input")),
        hyper_args=hyper_args, has_train=train is not None, helpers=module.helper_source(), input_error=INPUT_ERROR,
        forward=fwd.rstrip(), train_step=train_src.rstrip(), halves=halves.rstrip(), evaluate=eval_src.rstrip(),
        preprocess=preprocess.as_json() if preprocess else None,
        preprocess_formula=preprocess.as_json()["computes"] if preprocess else "",
    )


def _halves(split: tuple[Graph, Graph], module: ModuleContext) -> str:
    """`gradients(params, batch, ...)` and `apply(params, state, grads, lr)`: train_step in two calls, with room
    between them to combine the gradients of several workers (bmc/train/replicas.py)."""
    grads, apply = (prepare(g) for g in split)
    write_back = {k: ("params", k.split("/", 1)[1]) for k in grads.outputs if k.startswith("params/")}
    grads_src = function_source(
        "gradients", grads, module,
        [("params", grads.params), ("batch", grads.inputs_with_role("input", "target")),
         ("", grads.inputs_with_role("hyper"))],
        doc="The first half of train_step: the loss, the model's outputs and the gradient of the batch's mean loss"
            "\n    for every trainable parameter, as 'grad/<name>'. Updates the running statistics in `params` in "
            "place;\n    the trainable parameters are only read.",
        write_back=write_back, returns=[k for k in grads.outputs if not k.startswith("params/")],
    )
    write_back = {k: ("params", k.split("/", 1)[1]) for k in apply.outputs if k.startswith("params/")}
    write_back.update({k: ("state", k.split("/", 1)[1]) for k in apply.outputs if k.startswith("state/")})
    apply_src = function_source(
        "apply", apply, module,
        [("params", apply.params), ("state", apply.inputs_with_role("state")),
         ("grads", apply.inputs_with_role("grad")), ("", apply.inputs_with_role("hyper"))],
        doc="The second half of train_step: the optimizer update from `grads` (what gradients() returns, or "
            "the\n    gradients of several workers combined). Updates `params` and `state` in place.",
        write_back=write_back, returns=[],
    )
    return grads_src + "\n\n" + apply_src


def compile_function(graph: Graph, name: str = "run"):
    """Compile any graph into a Python function `f(feeds: dict) -> dict of outputs` (tests and tools)."""
    from bmc.runtime import load_source

    module = ModuleContext()
    graph = prepare(graph)
    src = function_source(name, graph, module, [("feeds", graph.inputs)], doc=f"Graph {graph.name}.")
    text = "import numpy as np\n\n\n" + INPUT_ERROR + "\n\n" + module.helper_source() + "\n\n" + src
    fn = getattr(load_source(text, f"<bmc {graph.name}>"), name)
    fn.source = text
    return fn
