"""The host side of each function of model.cu: `plan_NAME` (slot sizes and offsets, once per batch size) and
`run_NAME` (bind the symbols, take the inputs, launch the kernels, write parameters back, copy the outputs out).

`params/<name>` and `state/<name>` outputs are written back into their tensors and not returned; `grad/<name>`
outputs (the split step's `gradients`) are written into their gradient buffers and also returned, so the host gets
them in the same call (or leaves them on the device by not asking for them)."""

from __future__ import annotations

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


def run_source(fn: FunctionWriter, index: int, fname: str) -> str:
    g = fn.graph
    lines = [f"static int run_{fname}(bmc_ctx* ctx, const long long* dims, const void* const* in, void* const* out, "
             "const void* const* hyper, int flags) {",
             f"  if (plan_{fname}(ctx, dims)) return -1;",
             f"  const size_t* off = ctx->offsets[{index}];",
             "  char* arena = ctx->arena;"]
    lines += [f"  const int {c} = (int)dims[{k}];" for k, c in enumerate(fn.symbols.values())]
    for k, v in enumerate(g.inputs_with_role("hyper")):
        t = C_TYPES[v.type.dtype]
        lines.append(f"  const {t} {fn.name(v)} = *(const {t}*)hyper[{k}];")
    for k, v in enumerate(g.inputs_with_role("input", "target")):
        if v not in fn.plan.pinned:
            continue
        t = C_TYPES[v.type.dtype]
        slot = fn.plan.storage[v].slot.index
        lines.append(f"  {t}* {fn.name(v)};")
        lines.append(f"  if (bmc_input(ctx, (void**)&{fn.name(v)}, arena + off[{slot}], in[{k}], "
                     f"{byte_size(v.type, fn.symbols)}, flags, {c_string(v.name)})) return -1;")
    lines += fn.lines
    for tensor, v in fn.plan.copies:
        lines.append(f"  BMC_CUDA(cudaMemcpyAsync(ctx->tensors[{tensor}], {fn.pointer(v)}, "
                     f"{byte_size(v.type, fn.symbols)}, cudaMemcpyDeviceToDevice, ctx->stream), "
                     f"{c_string('updating ' + v.name)});")
    for k, (key, v) in enumerate((k, v) for k, v in g.outputs.items() if not _persistent_key(k)):
        if fn.storage(v).kind == "hyper":
            raise NotImplementedError(f"output '{key}' is a hyper input; the CUDA backend cannot return it")
        lines.append(f"  if (bmc_output(ctx, out[{k}], {fn.pointer(v)}, {byte_size(v.type, fn.symbols)}, flags)) "
                     "return -1;")
    lines += [f"  return bmc_finish(ctx, {c_string(fname)});", "}"]
    return "\n".join(lines)


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
                        plan_source(fn, index, name), run_source(fn, index, name)])

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
