"""Running exported models in onnxruntime: inference sessions, and a trainer that keeps the parameters and the
optimizer state in onnxruntime's memory (on the GPU with the CUDA execution provider) across steps.

The trainer binds every parameter and state tensor as an OrtValue with I/O binding. Each has two buffers; a step
reads one and writes the other (`params/<name>` outputs are bound to the second buffer), and the next step swaps
them, so nothing is copied between steps except the batch in and the loss and outputs out.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from .models import evaluation_model, inference_model, train_step_model

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_cuda_starts: bool | None = None

ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int32)": np.int32,
             "tensor(int64)": np.int64, "tensor(bool)": np.bool_}


def providers() -> list[str]:
    """CUDA (then CPU for what it lacks) when this onnxruntime is a GPU build whose CUDA provider starts here;
    else CPU."""
    if ort.get_device() == "GPU" and CUDA in ort.get_available_providers() and _cuda_usable():
        return [CUDA, CPU]
    return [CPU]


def _cuda_usable() -> bool:
    """Whether the CUDA provider actually starts (a GPU build on a machine without a GPU or without CUDA's libraries
    cannot); probed once on a one-node model, with onnxruntime's logging silenced so a failure prints nothing."""
    global _cuda_starts
    if _cuda_starts is None:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
        probe = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y]),
                                  opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
        ort.set_default_logger_severity(4)
        try:
            session = ort.InferenceSession(probe.SerializeToString(), _options(4), providers=[CUDA])
            _cuda_starts = CUDA in session.get_providers()
        except Exception:  # any failure to start means: not usable
            _cuda_starts = False
        finally:
            ort.set_default_logger_severity(2)
    return _cuda_starts


def threads() -> int:
    """The CPU threads a session gets: `OMP_NUM_THREADS`, which `bmc ... --threads N` sets (default 1) for BLAS too;
    0 (onnxruntime's default: one per core) when it is unset."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() else 0


def _options(severity: int = 3, thread_count: int | None = None) -> ort.SessionOptions:
    """Errors only (no warnings about nodes placed on the CPU), all graph optimizations, and `thread_count` intra-op
    and inter-op threads (default `threads()`) that sleep when idle: spinning threads steal the cores that the
    training loop's own Python and BLAS work needs between steps."""
    options = ort.SessionOptions()
    options.log_severity_level = severity
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    count = threads() if thread_count is None else thread_count
    options.intra_op_num_threads = count
    options.inter_op_num_threads = count
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def session(model: onnx.ModelProto | bytes | str | Path,
            provider_list: list[str] | None = None) -> ort.InferenceSession:
    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    elif isinstance(model, Path):
        model = str(model)
    return ort.InferenceSession(model, _options(), providers=provider_list or providers())


def _array(value: ort.OrtValue) -> np.ndarray:
    """A NumPy copy of an OrtValue (`numpy()` of a CPU OrtValue is a view of memory onnxruntime may reuse or free)."""
    return np.array(value.numpy(), copy=True)


def _device(s: ort.InferenceSession) -> str:
    return "cuda" if s.get_providers()[0] == CUDA else "cpu"


def _feed(s: ort.InferenceSession, values: dict) -> dict[str, np.ndarray]:
    """Arrays in the dtypes the session's inputs declare (a Python float for a f32 scalar, ...)."""
    types = {i.name: ORT_TYPES[i.type] for i in s.get_inputs()}
    unknown = set(values) - set(types)
    if unknown:
        raise KeyError(f"the model has no input(s) {', '.join(sorted(unknown))}; inputs: {', '.join(types)}")
    return {k: _contiguous(v, types[k]) for k, v in values.items()}


def _contiguous(value, dtype) -> np.ndarray:
    """`value` as a C-contiguous array of `dtype`, keeping its rank (np.ascontiguousarray makes a scalar [1])."""
    array = np.asarray(value, dtype=dtype)
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


class Predictor:
    """An inference session: `Predictor("model.onnx")(image=x)` -> {"probs": ...}."""

    def __init__(self, model, provider_list: list[str] | None = None):
        self.session = session(model, provider_list)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, *args: np.ndarray, **named: np.ndarray) -> dict[str, np.ndarray]:
        feeds = _feed(self.session, dict(zip(self.inputs, args, strict=False)) | named)
        return dict(zip(self.outputs, self.session.run(self.outputs, feeds), strict=True))


class Trainer:
    """Runs an exported train step (`train_step_model`) again and again with the parameters and optimizer state kept
    in onnxruntime's memory; `step(batch, lr=..., rng=...)` returns the loss and the model's outputs."""

    def __init__(self, model, params: dict[str, np.ndarray], state: dict[str, np.ndarray],
                 provider_list: list[str] | None = None):
        self.session = session(model, provider_list)
        self.device = _device(self.session)
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        given = {**params, **state}
        # an output params/<name> or state/<name> replaces the input <name> for the next step
        self.carried = {o.split("/", 1)[1]: o for o in outputs
                        if o.split("/", 1)[0] in ("params", "state") and o.split("/", 1)[1] in inputs}
        self.fixed = {k: self._value(v) for k, v in given.items() if k in inputs and k not in self.carried}
        missing = [k for k in self.carried if k not in given]
        if missing:
            raise KeyError(f"no initial value for {', '.join(missing)}")
        self.names = {"params": [k for k in params if k in inputs], "state": [k for k in state if k in inputs]}
        self.returns = [o for o in outputs if o not in self.carried.values()]
        first = {k: self._value(given[k]) for k in self.carried}
        second = {k: ort.OrtValue.ortvalue_from_shape_and_type(v.shape(), ORT_TYPES[v.data_type()], self.device, 0)
                  for k, v in first.items()}
        self.buffers = [first, second]
        self.bindings = [self._binding(first, second), self._binding(second, first)]
        self.turn = 0  # buffers[turn] holds the current values
        self.batch_inputs = [k for k in inputs if k not in given]

    def _value(self, array: np.ndarray) -> ort.OrtValue:
        # a copy: on the CPU an OrtValue shares the array's memory, and the trainer writes into its buffers
        return ort.OrtValue.ortvalue_from_numpy(np.array(array, order="C", copy=True), self.device, 0)

    def _binding(self, read: dict, write: dict) -> ort.IOBinding:
        b = self.session.io_binding()
        for k, v in self.fixed.items():
            b.bind_ortvalue_input(k, v)
        for k, out in self.carried.items():
            b.bind_ortvalue_input(k, read[k])
            b.bind_ortvalue_output(out, write[k])
        for out in self.returns:
            b.bind_output(out, "cpu")
        return b

    def step(self, batch: dict[str, np.ndarray], **hyper) -> dict[str, np.ndarray]:
        """One training step on a batch; `hyper` are the scalar inputs (`lr`, and `rng` for models with dropout)."""
        b = self.bindings[self.turn]
        feeds = _feed(self.session, {**batch, **hyper})
        missing = [k for k in self.batch_inputs if k not in feeds]
        if missing:
            raise KeyError(f"the train step needs the input(s) {', '.join(missing)}")
        for k, v in feeds.items():
            b.bind_cpu_input(k, v)
        for out in self.returns:  # unallocated again: the last batch of an epoch may be smaller
            b.bind_output(out, "cpu")
        self.session.run_with_iobinding(b)
        self.turn ^= 1
        results = b.get_outputs()
        bound = [*self.carried.values(), *self.returns]  # the order the outputs were bound in
        return {k: _array(v) for k, v in zip(bound, results, strict=True) if k in self.returns}

    def values(self) -> dict[str, ort.OrtValue]:
        """The current parameters and state, as OrtValues (on the device)."""
        return {**self.fixed, **self.buffers[self.turn]}

    def params(self) -> dict[str, np.ndarray]:
        current = self.values()
        return {k: _array(current[k]) for k in self.names["params"]}

    def state(self) -> dict[str, np.ndarray]:
        current = self.values()
        return {k: _array(current[k]) for k in self.names["state"]}


class _Bound:
    """A session whose parameter inputs are bound to a trainer's current OrtValues."""

    def __init__(self, model, trainer: Trainer, provider_list: list[str] | None):
        self.session = session(model, provider_list)
        self.trainer = trainer
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.params = [i.name for i in self.session.get_inputs() if i.name in trainer.values()]

    def __call__(self, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        b = self.session.io_binding()
        current = self.trainer.values()
        for k in self.params:
            b.bind_ortvalue_input(k, current[k])
        for k, v in _feed(self.session, data).items():
            b.bind_cpu_input(k, v)
        for o in self.outputs:
            b.bind_output(o, "cpu")
        self.session.run_with_iobinding(b)
        return {k: _array(v) for k, v in zip(self.outputs, b.get_outputs(), strict=True)}


class OrtTrainModule:
    """What `bmc.train.loop.fit` calls, backed by onnxruntime: it has the generated NumPy module's INPUTS, OUTPUTS,
    PARAMS and HYPER, and its `train_step`, `forward` and `evaluate`, which read the trainer's device-resident values
    (the `params`/`state` dicts passed in are not read or updated per step; `write_back` copies the values into them
    once, at the end)."""

    def __init__(self, model, params: dict[str, np.ndarray], state: dict[str, np.ndarray],
                 provider_list: list[str] | None = None):

        compiled = model.compiled
        train = compiled.train_step()
        inference = compiled.inference()
        self.INPUTS = _signature(inference.inputs_with_role("input"))
        self.OUTPUTS = {k: (v.type.dtype, list(v.type.shape)) for k, v in inference.outputs.items()}
        self.PARAMS = _signature(train.params)
        self.HYPER = _signature(train.inputs_with_role("hyper"))
        self.providers = provider_list or providers()
        self.trainer = Trainer(train_step_model(model), params, state, self.providers)
        self._forward = _Bound(inference_model(model, params_as_inputs=True), self.trainer, self.providers)
        self._evaluation_model = evaluation_model if compiled.model.loss is not None else None
        self._model = model
        self._evaluate: _Bound | None = None

    def train_step(self, params, state, batch, *hyper) -> dict[str, np.ndarray]:
        return self.trainer.step(batch, **dict(zip(self.HYPER, hyper, strict=True)))

    def forward(self, params, *inputs) -> dict[str, np.ndarray]:
        return self._forward(dict(zip(self.INPUTS, inputs, strict=True)))

    def evaluate(self, params, batch) -> dict[str, np.ndarray]:
        if self._evaluate is None:
            self._evaluate = _Bound(self._evaluation_model(self._model), self.trainer, self.providers)
        return self._evaluate(batch)

    def write_back(self, params: dict[str, np.ndarray], state: dict[str, np.ndarray]) -> None:
        params.update(self.trainer.params())
        state.update(self.trainer.state())

    download = write_back  # what the training loop reads device-resident values with (as from a CUDA module)


def _signature(values) -> dict:
    return {v.name: (v.type.dtype, list(v.type.shape)) for v in values}


def fit(model, config, params: dict[str, np.ndarray], state: dict[str, np.ndarray], task, log=print,
        progress: bool = True, provider_list: list[str] | None = None, watch=None, run=None):
    """`bmc.train.loop.fit` through onnxruntime: the same loop, schedule, metrics and history; `params` and `state`
    are updated in place when it returns (or fails)."""
    from bmc.train.loop import fit as loop_fit

    module = OrtTrainModule(model, params, state, provider_list)
    try:
        return loop_fit(module, config, params, state, task, log=log, progress=progress, watch=watch, run=run)
    finally:
        module.write_back(params, state)


class InferenceModule:
    """A loaded ONNX build's model.onnx in onnxruntime, with the face of a generated module's inference half
    (INPUTS, OUTPUTS, forward), so `Build.predict` and `Build.evaluate` run it as they run the others."""

    def __init__(self, path, manifest: dict, provider_list: list[str] | None = None):
        self.session = ort.InferenceSession(str(path), _options(), providers=provider_list or providers())
        self.INPUTS = {k: (v["dtype"], v["shape"]) for k, v in manifest["inputs"].items()}
        self.OUTPUTS = {k: (v["dtype"], v["shape"]) for k, v in manifest["outputs"].items()}

    def forward(self, params, *inputs: np.ndarray) -> dict[str, np.ndarray]:
        feeds = dict(zip(self.INPUTS, inputs, strict=True))
        return dict(zip(self.OUTPUTS, self.session.run(list(self.OUTPUTS), feeds), strict=True))
