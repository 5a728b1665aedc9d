"""The host side of each function of model.cu: `plan_NAME` (slot sizes and offsets, once per batch size),
`steps_NAME` (the device work: every kernel launch and device copy, parameter write-back included, at addresses fixed
for a plan) and `run_NAME` (bind the symbols, write the inputs and hyper inputs into their device buffers, run the
steps, copy the outputs out, check the status word).

`run_NAME` runs the steps through `bmc_steps` (templates/model.cu.j2): directly on the first call with given symbol
values, captured as a CUDA graph on the second, and that graph replayed (one launch) on later calls with the same
values. Hyper inputs (lr, the dropout key) live in device words (`ctx->hyper`) that the kernels read, so a replay sees
each call's values.

`params/<name>` and `state/<name>` outputs are written back into their tensors and not returned; `grad/<name>`
outputs (the split step's `gradients`) are written into their gradient buffers and also returned, so the host gets
them in the same call (or leaves them on the device by not asking for them)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bmc.backends.cuda.codegen import FunctionWriter, ModuleWriter
from bmc.backends.cuda.ctext import C_TYPES, SIZES, c_string, comment
from bmc.backends.cuda.memory import PERSISTENT_ROLES, Slot, byte_size, gradient_buffers, persistent_output

from bmc.ir.graph import Graph, Value


def plan_source(fn: FunctionWriter, index: int, fname: str) -> str:
    """`plan_NAME`: slot sizes and offsets for the symbols' values, computed once per batch size."""
    lines = [f"static int plan_{fname}(bmc_ctx* ctx, const long long* dims) {{",
             f"  if (ctx->plan_valid[{index}] && memcmp(ctx->planned[{index}], dims, "
             f"{max(len(fn.symbol_list), 1)} * sizeof(long long)) == 0) return 0;"]
    lines += [f"  const long long {c} = dims[{k}];" for k, c in enumerate(fn.symbols.values())]
    lines += [f"  size_t* off = ctx->offsets[{index}];", "  size_t at = 0;"]
    checks = set()
    for v in _all_stored(fn):
        if not v.type.is_static and v.type.rank:
            checks.add((byte_size(v.type, fn.symbols), SIZES[v.type.dtype], fn.name(v)))
    for size, item, name in sorted(checks):
        lines.append(f"  if (bmc_check_elements(ctx, {size}, {item}, {c_string(name)})) return -1;")
    lines += _layout(fn.plan.slots, "at", "  ")
    lines += [f"  off[{fn.counter[0]}] = at;",
              f"  ctx->plan_valid[{index}] = 1;"]
    if fn.symbol_list:
        lines.append(f"  memcpy(ctx->planned[{index}], dims, {len(fn.symbol_list)} * sizeof(long long));")
    lines += ["  return bmc_reserve(ctx, at);", "}"]
    return "\n".join(lines)


def _all_stored(fn: FunctionWriter) -> list[Value]:
    out = [v for v, s in fn.plan.storage.items() if s.kind == "slot"]
    for nested in fn.nested.values():
        out += _all_stored(nested)
    return out


def _layout(slots: list[Slot], cursor: str, pad: str) -> list[str]:
    """Offsets of slots laid out from `cursor` (a nested plan inside its workspace slot, recursively)."""
    lines = []
    for slot in slots:
        if slot.nested is not None:
            inner = f"at{slot.index}"
            lines.append(f"{pad}size_t {inner} = {cursor};")
            lines += _layout(slot.nested.slots, inner, pad)
            lines.append(f"{pad}off[{slot.index}] = {cursor};")
            lines.append(f"{pad}{cursor} = {inner};")
            continue
        sizes = list(dict.fromkeys(slot.sizes))
        size = sizes[0]
        for s in sizes[1:]:
            size = f"bmc_max({size}, {s})"
        lines += _holds(slot, pad)
        lines.append(f"{pad}off[{slot.index}] = {cursor}; {cursor} += bmc_align({size});")
    return lines


def _holds(slot: Slot, pad: str, most: int = 3) -> list[str]:
    """What lives in the slot in turn, and so why it is the size of the largest: a comment above its line."""
    holds = list(dict.fromkeys(slot.holds))
    if not holds:
        return []
    more = f", and {len(holds) - most} more" if len(holds) > most else ""
    return [f"{pad}// slot {slot.index}: {comment('; '.join(holds[:most]))}{more}"]


def _frame(fn: FunctionWriter, index: int, body: list[str]) -> list[str]:
    """The locals a function's body uses: its offset table, the arena, the symbols' values."""
    text = "\n".join(body)
    lines = []
    if re.search(r"\boff\[", text):
        lines.append(f"  const size_t* off = ctx->offsets[{index}];")
    if re.search(r"\barena\b", text):
        lines.append("  char* arena = ctx->arena;")
    return lines + [f"  const int {c} = (int)dims[{k}];" for k, c in enumerate(fn.symbols.values())]


def steps_source(fn: FunctionWriter, index: int, fname: str) -> str:
    """`steps_NAME`: the device work of one call, in stream order (what a CUDA graph of the function captures). Batch
    inputs come in `at` (their slots, or the caller's device arrays on a direct call), hyper inputs from their device
    words; the host code between the launches depends only on the dims and the device."""
    g = fn.graph
    body = []
    for k, v in enumerate(g.inputs_with_role("hyper")):
        t = C_TYPES[v.type.dtype]
        body.append(f"  const {t}* {fn.name(v)} = (const {t}*)(ctx->hyper + {8 * k});")
    for k, v in enumerate(g.inputs_with_role("input", "target")):
        if v in fn.plan.pinned:
            t = C_TYPES[v.type.dtype]
            body.append(f"  {t}* {fn.name(v)} = ({t}*)at[{k}];")
    body += fn.lines
    for tensor, v in fn.plan.copies:
        body.append(f"  BMC_CUDA(cudaMemcpyAsync(ctx->tensors[{tensor}], {fn.pointer(v)}, "
                    f"{byte_size(v.type, fn.symbols)}, cudaMemcpyDeviceToDevice, ctx->stream), "
                    f"{c_string('updating ' + v.name)});")
    body.append("  return 0;")
    return "\n".join([f"static int steps_{fname}(bmc_ctx* ctx, const long long* dims, void* const* at) {{",
                      *_frame(fn, index, body), *body, "}"])


def run_source(fn: FunctionWriter, index: int, fname: str) -> str:
    g = fn.graph
    inputs = g.inputs_with_role("input", "target")
    body = [f"  bmc_graph* graph = bmc_graph_for(ctx, {index}, dims, {len(fn.symbol_list)}, flags);  "
            "// NULL: launch directly",
            f"  void* at[{max(len(inputs), 1)}] = {{NULL}};"]
    for k, v in enumerate(g.inputs_with_role("hyper")):
        body.append(f"  if (bmc_hyper(ctx, {k}, hyper[{k}], {SIZES[v.type.dtype]}, {c_string(v.name)})) return -1;")
    for k, v in enumerate(inputs):
        if v in fn.plan.pinned:
            body.append(f"  if (bmc_input(ctx, &at[{k}], arena + off[{fn.plan.storage[v].slot.index}], in[{k}], "
                        f"{byte_size(v.type, fn.symbols)}, flags, graph != NULL, {c_string(v.name)})) return -1;")
    body.append(f"  if (bmc_steps(ctx, {index}, graph, steps_{fname}, dims, at, {c_string(fname)})) return -1;")
    for k, (key, v) in enumerate((k, v) for k, v in g.outputs.items() if not _persistent_key(k)):
        body.append(f"  if (bmc_output(ctx, out[{k}], {_address(fn, v, key)}, {byte_size(v.type, fn.symbols)}, "
                    "flags)) return -1;")
    body.append(f"  return bmc_finish(ctx, {c_string(fname)});")
    return "\n".join([f"static int run_{fname}(bmc_ctx* ctx, const long long* dims, const void* const* in, "
                      "void* const* out, const void* const* hyper, int flags) {",
                      f"  if (plan_{fname}(ctx, dims)) return -1;", *_frame(fn, index, body), *body, "}"])


def _address(fn: FunctionWriter, v: Value, key: str) -> str:
    """Where an output is after the steps (the host code of run_NAME has no pointer variables)."""
    root = fn.schedule.root(v)
    inputs = fn.graph.inputs_with_role("input", "target")
    if root in fn.plan.pinned and root in inputs:
        return f"at[{inputs.index(root)}]"
    s = fn.plan.storage[root]
    if s.kind == "tensor":
        return f"ctx->tensors[{s.tensor}]"
    if s.kind == "slot":
        return f"arena + off[{s.slot.index}]"
    raise NotImplementedError(f"output '{key}' is a {s.kind} input; the CUDA backend cannot return it")


def _persistent_key(key: str) -> bool:
    """An output written back into its tensor and not returned (a gradient buffer is returned too)."""
    return persistent_output(key) is not None


@dataclass
class FunctionSpec:
    """One function of model.cu as the manifest describes it."""

    name: str
    offsets: int
    symbols: list[str]
    inputs: list[dict]
    outputs: list[dict]
    hyper: list[dict]
    kernels: int
    updates: list[str]  # the parameters and state it writes back into their tensors (not returned)


def function_source(module: ModuleWriter, name: str, graph: Graph, index: int,
                    tensors: dict[str, int]) -> tuple[str, FunctionSpec]:
    persistent = {v: tensors[v.name] for v in graph.inputs_with_role(*PERSISTENT_ROLES)}
    sinks = {key: tensors[key] for key in gradient_buffers(graph)}
    if any(v.name in sinks for v in persistent):
        raise NotImplementedError(f"{name} both reads and writes a gradient buffer")
    before = len(module.kernel_info)
    fn = FunctionWriter(module, graph, persistent, sinks=sinks)
    fn.declare()
    fn.body()
    g = fn.graph
    text = "\n\n".join([f"// ---- {name} " + "-" * max(4, 110 - len(name)),
                        plan_source(fn, index, name), steps_source(fn, index, name), run_source(fn, index, name)])

    def describe(v: Value, key: str | None = None) -> dict:
        return {"name": key or v.name, "dtype": v.type.dtype, "shape": list(v.type.shape)}

    spec = FunctionSpec(
        name=name, offsets=fn.counter[0], symbols=list(fn.symbol_list),
        inputs=[describe(v) | {"role": g.roles[v]} for v in g.inputs_with_role("input", "target")],
        outputs=[describe(v, k) for k, v in g.outputs.items() if not _persistent_key(k)],
        hyper=[describe(v) for v in g.inputs_with_role("hyper")],
        kernels=len(module.kernel_info) - before,
        updates=[persistent_output(k)[1] for k in g.outputs if _persistent_key(k)],
    )
    return text, spec
