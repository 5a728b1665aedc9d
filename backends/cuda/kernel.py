"""Building one kernel: its parameters (pointers, dims, scalars), its body, and the host lines that launch it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from bmc.backends.cuda.ctext import C_TYPES, comment, dim

from bmc.ir.graph import Node, Value
from bmc.ir.types import Dim

if TYPE_CHECKING:
    from bmc.backends.cuda.codegen import FunctionWriter


def where(node: Node) -> str:
    """`file.bm:7 (dense)`: how errors name the .bm statement a kernel came from."""
    if node.span is None:
        return f"({node.op.name})"
    return f"{node.span.location} ({node.op.name})"


class KernelBuilder:
    """Parameters are added as the body asks for them; `launch` writes the kernel and the host lines."""

    def __init__(self, fn: FunctionWriter, node: Node, hint: str):
        self.fn = fn
        self.node = node
        self.name = fn.module.kernel_name(hint)
        self.params: list[tuple[str, str, str]] = []  # (C type, name, host argument)
        self.by_host: dict[tuple[str, str], str] = {}
        self.symbols: list[str] = []

    def _param(self, ctype: str, host: str, hint: str) -> str:
        key = (ctype, host)
        if key not in self.by_host:
            taken = {p[1] for p in self.params}
            name, k = hint, 1
            while name in taken:
                name, k = f"{hint}_{k}", k + 1
            self.params.append((ctype, name, host))
            self.by_host[key] = name
        return self.by_host[key]

    def input(self, v: Value) -> str:
        """A read-only pointer to v's elements."""
        return self._param(f"const {C_TYPES[v.type.dtype]}* __restrict__", self.fn.pointer(v), self.fn.name(v))

    def output(self, v: Value) -> str:
        return self._param(f"{C_TYPES[v.type.dtype]}* __restrict__", self.fn.pointer(v), self.fn.name(v))

    def pointer(self, ctype: str, host: str, hint: str) -> str:
        return self._param(ctype, host, hint)

    def scalar(self, ctype: str, host: str, hint: str) -> str:
        return self._param(ctype, host, hint)

    def status(self) -> str:
        return self._param("int*", "ctx->status", "bmc_status")

    def dim(self, d: Dim) -> str:
        text = dim(d, self.fn.symbols)
        for s, c in self.fn.symbols.items():
            if s in _symbols_of(d) and c not in self.symbols:
                self.symbols.append(c)
        return text

    def launch(self, body: list[str], grid: str, block: str, threads: int, smem: str = "0",
               notes: list[str] | None = None) -> None:
        """Write the kernel (at most `threads` per block) and the host lines that launch it."""
        for c in self.symbols:
            self.params.append(("int", c, c))
        module = self.fn.module
        params = ", ".join(f"{t} {n}" for t, n, _ in self.params)
        # a kernel identical to one already written is launched again, not written again (the same layer twice, or
        # the optimizer's update in train_step and in apply, which name their arguments differently); one that
        # reports errors by its id (BMC_KERNEL_ID) names its own statement, so it is kept apart
        key = (threads, *_up_to_names(self.params, body))
        launched = self.name  # the host's own names made from self.name stay this launch's
        if key in module.by_body and not any("BMC_KERNEL_ID" in line for line in body):
            launched, index = module.by_body[key]
            module.kernels[index] = module.kernels[index].replace(
                '\nextern "C"', f"\n//   also for {comment(where(self.node))}\nextern \"C\"", 1)
            kernel_id = module.register_kernel(launched, where(self.node))
        else:
            kernel_id = module.register_kernel(self.name, where(self.node))
            head = [f"// bmc: {comment(where(self.node))}"]
            if self.node.span is not None:
                head.append(f"//   {comment(self.node.span.source.line(self.node.span.line).strip())}")
            head += [f"//   {comment(n)}" for n in notes or []]
            signature = f'extern "C" __global__ void __launch_bounds__({threads}) {self.name}({params}) {{'
            text = "\n".join([*head, signature, *("  " + line for line in body), "}"])
            module.by_body[key] = (self.name, len(module.kernels))
            module.kernels.append(text.replace("BMC_KERNEL_ID", str(kernel_id)))
        args = ", ".join(host for _, _, host in self.params)
        self.fn.emit(f"BMC_LAUNCH({launched}, {grid}, {block}, {smem}, ctx->stream)({args});")
        self.fn.emit(f"BMC_CHECK_LAUNCH({kernel_id});")


def _up_to_names(params: list[tuple[str, str, str]], body: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A kernel's parameter types and body with each parameter's name replaced by its position (`@3`, which no C
    text contains): kernels that differ only in their parameters' names are the same kernel."""
    names = {name: f"@{k}" for k, (_, name, _) in enumerate(params)}
    types = tuple(t for t, _, _ in params)
    if not names:
        return types, tuple(body)
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in names) + r")\b")
    return types, tuple(pattern.sub(lambda m: names[m.group(0)], line) for line in body)


def _symbols_of(d: Dim) -> list[str]:
    if isinstance(d, int):
        return []
    return [f for f in d.split("*") if not f.isdigit()]

