"""Rule tables: how a backend lowers each op, keyed by op class.

Every backend keeps its lowerings in `RuleTable`s, one per kind of rule (the NumPy expressions, the ONNX nodes, the
CUDA element rules, indexed rules and kernels). A rule registers with the table's decorator, in the module that
defines it:

    RULES = RuleTable("numpy")

    @RULES.register(ops.Exp, ops.Log)
    def _unary(node, args, ctx): ...

A table is a leaf module's attribute: rule modules import the table, never the other way round, and the backend's
package imports its rule modules, so every rule is registered once anything of the backend is imported. Options
given at registration (`workspace=...`) travel with the rule. `bmc ops` reads every table to say where each op is
lowered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bmc.ops.base import Op

R = TypeVar("R", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry(Generic[R]):
    rule: R
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """The rule's module and function, as `bmc ops` prints them."""
        return f"{self.rule.__module__}.{self.rule.__qualname__}"


class RuleTable(Generic[R]):
    """Rules of one kind for one backend, by op class; an op class has at most one rule in a table."""

    def __init__(self, backend: str, kind: str = "lowering", **defaults: Any):
        self.backend, self.kind = backend, kind
        self._defaults = defaults
        self._entries: dict[type[Op], Entry[R]] = {}

    def register(self, *op_types: type[Op], **options: Any) -> Callable[[R], R]:
        unknown = set(options) - set(self._defaults)
        assert not unknown, f"{self} takes no option {', '.join(sorted(unknown))}"

        def add(rule: R) -> R:
            for t in op_types:
                assert t not in self._entries, f"{self}: {t.name} has two rules ({self._entries[t].where}, {rule})"
                self._entries[t] = Entry(rule, {**self._defaults, **options})
            return rule

        return add

    def supports(self, op: Op | type[Op]) -> bool:
        return _type(op) in self._entries

    __contains__ = supports

    def __getitem__(self, op: Op | type[Op]) -> R:
        return self._entries[_type(op)].rule

    def entry(self, op: Op | type[Op]) -> Entry[R]:
        return self._entries[_type(op)]

    def option(self, op: Op | type[Op], name: str) -> Any:
        return self._entries[_type(op)].options[name]

    @contextmanager
    def replaced(self, op_type: type[Op], rule: R) -> Iterator[None]:
        """The table with `op_type`'s rule replaced while the block runs (a test that breaks a rule on purpose)."""
        saved = self._entries[op_type]
        self._entries[op_type] = Entry(rule, saved.options)
        try:
            yield
        finally:
            self._entries[op_type] = saved

    def __iter__(self) -> Iterator[type[Op]]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"RuleTable({self.backend!r}, {self.kind!r})"


def _type(op: Op | type[Op]) -> type[Op]:
    return op if isinstance(op, type) else type(op)
