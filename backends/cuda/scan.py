"""Scans: a host loop over the sequence axis that launches the body's kernels once per step.

The body is compiled like any graph (fusion, its own memory plan laid out inside the scan's workspace). Per step,
cudaMemcpy2DAsync copies step t of each sequence ([N, T, ...], batch-first, so a strided slice) into the body's
input, the carry entering the step into its history when that is used, and afterwards each per-step output into its
sequence and each new carry into the carry buffer for the next step.
"""

from __future__ import annotations

from bmc.backends.cuda.memory import Request, byte_size
from bmc.backends.cuda.rules import kernel

from bmc import ops
from bmc.ir.types import TensorType


def body_writer(item, fn):
    """The nested writer of a scan's body, made when the outer plan asks for the scan's workspace."""
    if item not in fn.nested:
        node = item.node
        op = node.op
        k, m = op.num_carries, op.num_xs
        external = {}
        for inner, outer in zip(op.body.inputs[k + m:], node.inputs[k + m:], strict=True):
            if fn.graph.roles.get(fn.schedule.root(outer)) == "hyper":
                raise NotImplementedError("a scan body that reads a hyper input (lr, rng) is not supported by the "
                                          "CUDA backend yet")
            external[inner] = fn.pointer(outer)
        fn.nested[item] = type(fn)(fn.module, op.body, {}, parent=fn, external=external)
    return fn.nested[item]


def _workspace(item, fn) -> list[Request]:
    return [Request("0", nested=body_writer(item, fn).plan, why="the body's own buffers")]


def _row_bytes(t: TensorType, fn) -> str:
    """Bytes of one step of a [N, T, ...] sequence for one batch entry."""
    return byte_size(TensorType(t.dtype, t.shape[2:]), fn.symbols)


@kernel(ops.Scan, workspace=_workspace, skip_unused=True)
def scan(item, fn) -> None:
    node, op = item.node, item.node.op
    body = body_writer(item, fn)
    k, m, ny = op.num_carries, op.num_xs, op.num_ys
    inputs = body.graph.inputs
    carry_in, x_in = inputs[:k], inputs[k:k + m]
    results = list(body.graph.outputs.values())
    new_carries, y_steps = results[:k], results[k:]
    finals, ys, history = node.outputs[:k], node.outputs[k:k + ny], node.outputs[k + ny:]
    xs = node.inputs[k:k + m]
    length = fn.hdim(xs[0].type.shape[1])
    batch = fn.hdim(xs[0].type.shape[0])

    def copy(dst: str, src: str, v) -> str:
        return (f"BMC_CUDA(cudaMemcpyAsync({dst}, {src}, {byte_size(v.type, fn.symbols)}, cudaMemcpyDeviceToDevice, "
                f"ctx->stream), \"scan: copying a carry\");")

    def strided(dst: str, dst_pitch: str, src: str, src_pitch: str, row: str, what: str) -> str:
        return (f"BMC_CUDA(cudaMemcpy2DAsync({dst}, {dst_pitch}, {src}, {src_pitch}, {row}, {batch}, "
                f"cudaMemcpyDeviceToDevice, ctx->stream), \"scan: {what}\");")

    fn.emit("{")
    fn.indent += 1
    direction = "backwards " if op.reverse else ""
    fn.emit(f"// scan {direction}over axis 1: {k} carries, {m} sequences, {ny} per-step outputs")
    body.indent = fn.indent
    body.lines = []
    body.declare()
    fn.lines += body.lines
    for c, init in zip(carry_in, node.inputs[:k], strict=True):
        fn.emit(copy(body.pointer(c), fn.pointer(init), c))
    fn.emit(f"for (int step = 0; step < {length}; ++step) {{")
    fn.indent += 1
    fn.emit(f"const int tt = {f'{length} - 1 - step' if op.reverse else 'step'};")
    for x_step, x in zip(x_in, xs, strict=True):
        row = _row_bytes(x.type, fn)
        fn.emit(strided(body.pointer(x_step), row, f"(const char*){fn.pointer(x)} + (size_t)tt * {row}",
                        f"(size_t){length} * {row}", row, "reading step t of a sequence"))
    for h, c in zip(history, carry_in, strict=True):
        if h in fn.plan.storage:
            row = _row_bytes(h.type, fn)
            fn.emit(strided(f"(char*){fn.pointer(h)} + (size_t)tt * {row}", f"(size_t){length} * {row}",
                            body.pointer(c), row, row, "recording the carry entering step t"))
    body.indent = fn.indent
    body.lines = []
    body.body()
    fn.lines += body.lines
    for y, y_step in zip(ys, y_steps, strict=True):
        if y in fn.plan.storage:
            row = _row_bytes(y.type, fn)
            fn.emit(strided(f"(char*){fn.pointer(y)} + (size_t)tt * {row}", f"(size_t){length} * {row}",
                            body.pointer(y_step), row, row, "writing step t of an output"))
    for j, (c, new) in enumerate(zip(carry_in, new_carries, strict=True)):
        source = body.schedule.root(new)
        if source is c:
            continue
        if source in carry_in:
            raise NotImplementedError(f"scan body {op.body.name} returns carry {carry_in.index(source)} as carry {j}; "
                                      "the CUDA backend does not permute carries")
        fn.emit(copy(body.pointer(c), body.pointer(new), c))
    fn.indent -= 1
    fn.emit("}")
    for final, c in zip(finals, carry_in, strict=True):
        if final in fn.plan.storage:
            fn.emit(copy(fn.pointer(final), body.pointer(c), c))
    fn.indent -= 1
    fn.emit("}")
