"""The module graph's shape (issue 10): no import cycles, and the core reaches the backends only through the target
registry. Imports are read from the source, function-level ones included; those under `if TYPE_CHECKING:` are
annotations only and do not count."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"bmc": ROOT / "bmc", "bmc.backends": ROOT / "backends"}  # pyproject.toml's package-dir


def modules() -> dict[str, Path]:
    out = {}
    for prefix, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join([prefix, *parts])
            if prefix == "bmc" and name.startswith("bmc.backends"):
                continue
            out[name] = path
    return out


def _type_checking_only(tree: ast.Module) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that module `name` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_only(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from . import x` in package a.b is a.b.x, `from .. import x` a.x
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base)
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_has_no_cycles():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_core_imports_no_backend():
    """bmc/targets.py names each target's module as a string; nothing else in the core imports a backend."""
    edges = graph()
    offenders = {m: sorted(d for d in deps if d.startswith("bmc.backends"))
                 for m, deps in edges.items() if not m.startswith("bmc.backends")}
    assert {m: d for m, d in offenders.items() if d} == {}
    assert "bmc.backends.numpy" in edges["bmc.backends.numpy.target"] | {"bmc.backends.numpy"}  # the reader works
    assert "bmc.reference.rules" in edges["bmc.backends.numpy.codegen"]


def test_every_op_is_exported_by_its_module_and_by_bmc_ops():
    """`bmc.ops.<Name>` is every op's one name: each ops module's `__all__` lists exactly the ops it defines, and
    bmc.ops re-exports them all."""
    import importlib

    from bmc import ops

    for cls in ops.REGISTRY.values():
        module = importlib.import_module(cls.__module__)
        assert cls.__name__ in module.__all__, f"{cls.__module__}.__all__ lacks {cls.__name__}"
        assert getattr(ops, cls.__name__) is cls
    for name in ops.__all__:
        value = getattr(ops, name)
        assert not isinstance(value, type) or not issubclass(value, ops.Op) or value is ops.Op \
            or value in ops.REGISTRY.values(), f"bmc.ops exports {name}, which is not a registered op"
