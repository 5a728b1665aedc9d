"""Resource limits: the memory a model needs, checked when it is compiled, before anything is allocated.

A `.bm` file can declare `param W: f32[4, 100000000000000]` (1.6 PB) or `one_hot(labels, 2147483647)` (8 GiB per
sample) in one line. `check` adds up what training needs, in the build's precision: every parameter, the optimizer
state the train block's optimizer keeps for them, and the activations of one batch (every value of the forward graph
that has a batch dim, per sample, times the batch; symbolic dims other than the batch counted as 1, so this is a
lower bound), and compares it with a limit: `--memory-limit` / `memory_limit=`, by default the memory this process
may use (see machine_memory). Past it, the error points at the largest parameter or activation and says how big it is.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from bmc.diagnostics import BmcError, Span, UsageError
from bmc.frontend.model_ir import ModelIR
from bmc.ir.graph import Value
from bmc.ir.types import TensorType

UNLIMITED = 2**256  # `--memory-limit none`
ITEMSIZE = {"f32": 4, "f64": 8, "i32": 4, "i64": 8, "bool": 1}
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50, "e": 2**60}


def machine_memory() -> int:
    """This machine's physical memory, or if smaller the memory limit of the cgroup (container) it runs in, or what
    the process's address-space limit (`ulimit -v`), which no allocation can pass, leaves beyond what it maps."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no default limit
        return UNLIMITED
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    try:
        import resource
    except ImportError:
        return total
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    # an address-space limit counts what this process has mapped already (Python, NumPy, their libraries)
    return total if soft == resource.RLIM_INFINITY or soft <= 0 else min(total, max(soft - _mapped(), 0))


def _mapped() -> int:
    """The bytes of address space this process maps now (Linux's VmSize; 0 where it cannot be read)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def parse_size(text: str) -> int:
    """`64G`, `512MiB`, `1.5T`, `1000000` (bytes; K, M, G, T, P and E are powers of 1024), or `none`."""
    t = text.strip().lower()
    if t in ("none", "unlimited"):
        return UNLIMITED
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgtpe]?)(?:i?b)?", t)
    if not m:
        raise UsageError(f"memory limit '{text}' is not a size: write e.g. 64G, 512M or 1000000 (bytes), or none")
    size = int(float(m[1]) * _UNITS[m[2]])
    if size < 1:
        raise UsageError(f"memory limit '{text}' must be at least 1 byte")
    return size


def resolve_limit(limit: int | str | None) -> int:
    """A limit in bytes from an API or command-line value; None: machine_memory()."""
    if limit is None:
        return machine_memory()
    if isinstance(limit, str):
        return parse_size(limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UsageError(f"memory_limit must be a positive number of bytes or a size such as '64G', not {limit!r}")
    return limit


def show_bytes(n: int) -> str:
    """1.6 PiB, 512 MiB, 12 bytes."""
    if n < 1024:
        return f"{n} bytes"
    for unit, size in (("EiB", 2**60), ("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            value = n / size
            return f"{value:.3g} {unit}" if value < 1e4 else f"{float(n):.3g} bytes"
    raise AssertionError(n)  # pragma: no cover


def nbytes(t: TensorType, dtype: str, symbol_size: int = 1) -> int:
    """Bytes of a value of type `t` in a build of precision `dtype` (an f64 build keeps every float in f64), with
    symbolic dims of `symbol_size`."""
    item = ITEMSIZE[dtype] if t.dtype == "f32" else ITEMSIZE[t.dtype]
    return item * math.prod(d if isinstance(d, int) else symbol_size for d in t.shape)


@dataclass(frozen=True)
class Need:
    """What one part of training needs: the total and its largest item (a parameter or value), to point at."""

    total: int = 0
    largest: int = 0
    name: str = ""
    type: TensorType | None = None
    span: Span | None = None

    def add(self, size: int, name: str, t: TensorType, span: Span | None) -> Need:
        if size > self.largest:
            return Need(self.total + size, size, name, t, span)
        return Need(self.total + size, self.largest, self.name, self.type, self.span)


def check(model: ModelIR, config, dtype: str, limit: int, batch: int = 1) -> None:
    """Raise a located error if training `model` under `config` on batches of `batch` samples needs more than
    `limit` bytes. Compiling checks one sample (the batch may still change on the command line); training checks
    its real batch."""
    g = model.graph
    params = Need()
    for p in g.params:
        params = params.add(nbytes(p.type, dtype), p.name, p.type, g.param_info[p].span or p.span)
    if params.largest > limit:
        raise BmcError(f"parameter '{params.name}' ({params.type}) needs {show_bytes(params.largest)}, more than the "
                       f"memory limit of {show_bytes(limit)}", params.span, notes=_limit_notes(limit))
    state = Need()
    if model.loss is not None:
        from bmc.train.freeze import frozen
        from bmc.train.optimizers import make_optimizer

        constant = frozen(model, config.freeze)
        trainable = [p for p in g.params if g.param_info[p].trainable and p.name not in constant]
        for spec in make_optimizer(config.optimizer).state(trainable):
            state = state.add(nbytes(spec.type, dtype), spec.name, spec.type, None)
    per_sample, fixed = Need(), 0
    for v in _values(model):
        if any(isinstance(d, str) for d in v.type.shape):
            per_sample = per_sample.add(nbytes(v.type, dtype), v.name or str(v.type), v.type, v.span)
        elif g.roles.get(v) != "param":
            fixed += nbytes(v.type, dtype)
    activations = per_sample.total * batch + fixed
    total = params.total + state.total + activations
    if total <= limit:
        return
    parts = [f"parameters {show_bytes(params.total)}"]
    if state.total:
        parts.append(f"{config.optimizer.kind} state {show_bytes(state.total)}")
    parts.append(f"activations at least {show_bytes(activations)}" + (
        f" ({show_bytes(per_sample.total)} per sample, batch {batch})" if batch > 1 else " for one sample"))
    if per_sample.largest * batch >= params.largest:
        where, what = per_sample.span, (f"the largest activation is {per_sample.type} here, "
                                        f"{show_bytes(per_sample.largest)} per sample")
    else:
        where, what = params.span, f"the largest parameter is '{params.name}' ({params.type}), " \
                                   f"{show_bytes(params.largest)}"
    raise BmcError(f"training this model needs {show_bytes(total)}, more than the memory limit of "
                   f"{show_bytes(limit)}", where, notes=(", ".join(parts), what, *_limit_notes(limit)))


def _values(model: ModelIR):
    """The values a forward pass holds: the data inputs, every node's results and what its op holds meanwhile."""
    yield from model.graph.inputs_with_role("input", "target")
    for node in model.graph.nodes:
        yield from node.outputs
        for t in node.op.working_set(*(v.type for v in node.inputs)):
            yield Value(t, f"{node.op.name}'s working set", span=node.span)


def _limit_notes(limit: int) -> tuple[str, ...]:
    where = "the memory this process may use" if limit == machine_memory() else "the limit given"
    return (f"{show_bytes(limit)} is {where}; set another with --memory-limit SIZE (memory_limit= in Python), e.g. "
            "--memory-limit 2T",)
