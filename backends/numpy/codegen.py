"""Generate the readable, standalone NumPy module for a model: per-op lines built in Python, a Jinja2 skeleton
around them (templates/module.py.j2).

Every `.bm` name and text reaches the generated source only through pytext.py: as a mangled identifier (dims
included), inside a string literal or docstring, or as a one-line comment, so a `.bm` file cannot inject code.
"""

from __future__ import annotations

import ast
import inspect
import math
from dataclasses import dataclass, field
from importlib import resources

import jinja2
from bmc.backends.numpy.memory import VIEW_OPS, plan
from bmc.backends.numpy.wrap import wrap_source

from bmc.ir import dims
from bmc.ir.graph import Graph, Node, Value
from bmc.ir.names import Namer
from bmc.ir.types import Dim
from bmc.ops import elementwise as ew
from bmc.reference import kernels, pytext
from bmc.reference.rules import RULES, lower_into, prepare

# The exception a generated function raises when its inputs do not fit the model (a sequence longer than a table of
# positions); bmc turns it into a user error.
INPUT_ERROR = inspect.getsource(kernels.InputError)
KERNELS = [k for k in vars(kernels) if k.startswith("_") and not k.startswith("__")]
WEAK_SCALAR_USERS = (ew.Binary, ew.Compare, ew.Where)  # NumPy keeps the array's dtype for Python scalars here


def _literal(value: float | int | bool) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "np.nan" if math.isnan(value) else ("np.inf" if value > 0 else "(-np.inf)")
    text = repr(value)
    return f"({text})" if text.startswith("-") else text


@dataclass
class ModuleContext:
    """What the generated module needs besides its functions: the helpers ops asked for."""

    helpers: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)  # scan bodies and loops, in the order they were made
    names: set[str] = field(default_factory=lambda: set(KERNELS))  # module-level `_` names: helpers, functions
    scans: dict[str, str] = field(default_factory=dict)  # a scan's functions (under placeholder names) -> its loop

    def function_name(self, hint: str) -> str:
        name, i = hint, 1
        while name in self.names:
            name, i = f"{hint}_{i}", i + 1
        self.names.add(name)
        return name

    def use(self, helper: str) -> str:
        if helper not in self.helpers:
            source = inspect.getsource(getattr(kernels, helper))
            for other in KERNELS:  # helpers a helper calls come first
                if other != helper and f"{other}(" in source:
                    self.use(other)
            self.helpers.append(helper)
        return helper

    def helper_source(self) -> str:
        parts = [inspect.getsource(getattr(kernels, h)).rstrip() for h in self.helpers]
        return "\n\n\n".join(parts + [f.rstrip() for f in self.functions])


class FunctionWriter:
    """Writes one Python function that evaluates a graph, one line per op."""

    def __init__(self, graph: Graph, module: ModuleContext, updates: dict[Value, Value] | None = None):
        self.graph = graph
        self.buffers = plan(graph, updates)
        self.module = module
        self.namer = Namer(pytext.identifier)
        self.copied: set[str] = set()  # outputs returned as copies (see function_source)
        self.symbols: dict[str, str] = {}  # symbolic dim -> its Python name, named before the values
        for d in graph.symbols():
            for s in dims.factors(d)[1]:
                self.symbol(s)
        self.namer.name_graph(graph)
        self.users = graph.users()
        self.returned_values = set(graph.outputs.values())

    # -- the Context protocol of the rules --
    def use(self, helper: str) -> str:
        return self.module.use(helper)

    def symbol(self, s: str) -> str:
        if s not in self.symbols:
            self.symbols[s] = self.namer.fresh(s)
        return self.symbols[s]

    def dim(self, d: Dim) -> str:
        if isinstance(d, int):
            return str(d)
        static, syms = dims.factors(d)
        return " * ".join(([str(static)] if static != 1 else []) + [self.symbol(s) for s in syms])

    def shape(self, shape: tuple[Dim, ...]) -> str:
        parts = [self.dim(d) for d in shape]
        return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"

    def scan_function(self, node: Node) -> str:
        """Emit the loop of a scan and its body as module-level functions; return the loop's name."""
        return scan_source(node, self.module, self.users)

    # -- expressions --
    def _is_const(self, v: Value) -> bool:
        return v.producer is not None and isinstance(v.producer.op, ew.Const)

    def arg(self, v: Value, user: Node) -> str:
        if not self._is_const(v):
            return self.namer.name(v)
        const = v.producer.op
        others = [x for x in user.inputs if x is not v and not self._is_const(x)]
        if isinstance(user.op, WEAK_SCALAR_USERS) and others:
            return _literal(const.value)
        return RULES[ew.Const](v.producer, [], self)

    def body(self) -> list[str]:
        lines: list[str] = []
        last_comment = None
        for node in self.graph.nodes:
            if isinstance(node.op, ew.Const):
                continue  # inlined where used
            comment = self._comment(node)
            if comment != last_comment and comment:
                lines.append(comment)
            last_comment = comment
            args = [self.arg(v, node) for v in node.inputs]
            if node in self.buffers:
                expr = lower_into(node, args, self.namer.name(self.buffers[node]))
            else:
                expr = RULES[type(node.op)](node, args, self)
            outs = ", ".join(self.namer.name(o) if len(node.outputs) == 1 or self._read(o) else "_"
                             for o in node.outputs)
            lines.append(f"{outs} = {expr}")
        return lines

    def _read(self, v: Value) -> bool:
        """Whether anything reads v: a node, or the function's results (a result nobody reads is bound to `_`)."""
        return bool(self.users.get(v)) or v in self.returned_values

    def _comment(self, node: Node) -> str:
        if node.span is None:
            return ""
        return pytext.comment(f"{node.span.location}: {node.span.source.line(node.span.line).strip()}")

    def returned(self, key: str) -> str:
        v = self.graph.outputs[key]
        if self._is_const(v):
            return RULES[ew.Const](v.producer, [], self)
        return self.namer.name(v) + (".copy()" if key in self.copied else "")

    def limit_checks(self) -> list[str]:
        """`if T > 64: raise InputError(...)` for every bound the graph puts on a symbolic dim it binds."""
        lines = []
        bound = {d for v in self.graph.inputs for d in v.type.shape if isinstance(d, str) and "*" not in d}
        for limit in self.graph.dim_limits():
            if limit.symbol in bound:
                head, tail = limit.message_parts()
                name = self.symbol(limit.symbol)
                lines += [f"if {name} > {limit.limit}:",
                          f"    raise InputError({pytext.literal(head)} + str({name}) + {pytext.literal(tail)})"]
        return lines

    def bind_symbols(self) -> list[str]:
        """`N = image.shape[0]` for every symbolic dim, from the first input that has it."""
        lines, bound = [], set()
        for v in self.graph.inputs:
            for axis, d in enumerate(v.type.shape):
                if isinstance(d, str) and d not in bound and "*" not in d:
                    bound.add(d)
                    lines.append(f"{self.symbol(d)} = {self.namer.name(v)}.shape[{axis}]")
        return lines


def function_source(
    name: str, graph: Graph, module: ModuleContext, groups: list[tuple[str, list[Value]]], doc: str,
    write_back: dict[str, tuple[str, str]] | None = None, returns: list[str] | None = None,
    tuple_return: bool = False,
) -> str:
    """The source of `def name(...)`.

    groups: (argument name, input values) — a dict argument unpacked by `.bm` name, or "" for positional arguments.
    write_back: graph output key -> (dict argument, key) stored back into that dict (parameter and state updates);
        the arrays of those inputs are the only ones the function may write into, and each ends holding its new
        value.
    returns: the graph outputs returned in a dict.
    """
    by_slot = {(group, v.name): v for group, values in groups if group for v in values}
    updates = {by_slot[slot]: graph.outputs[key] for key, slot in (write_back or {}).items()}
    w = FunctionWriter(graph, module, updates)
    args, lines = [], []
    for group, values in groups:
        if group:
            args.append(group)
            lines += [f"{w.namer.name(v)} = {group}[{pytext.literal(v.name)}]" for v in values]
        else:
            args += [w.namer.name(v) for v in values]
    body_lines = w.limit_checks() + w.body()
    used = {n.id for n in ast.walk(ast.parse("\n".join(body_lines))) if isinstance(n, ast.Name)}  # not comments
    lines += [ln for ln in w.bind_symbols() if ln.split(" = ")[0] in used]
    lines += body_lines
    stored: set[Value] = set()
    for key, (target, target_key) in (write_back or {}).items():
        v = graph.outputs[key]
        shared = v in stored or v in graph.roles or (v.producer is not None and isinstance(v.producer.op, VIEW_OPS))
        stored.add(v)
        # a stored array never shares memory with another slot or with the caller's data, which later steps update
        lines.append(f"{target}[{pytext.literal(target_key)}] = {w.returned(key)}" + (".copy()" if shared else ""))
    keys = returns if returns is not None else list(graph.outputs)
    for k in keys:  # an output that is a parameter or state array (or a view of one) is a copy: a train step updates
        #            those arrays in place, which would change an output the caller still holds
        v = graph.outputs[k]
        while v.producer is not None and isinstance(v.producer.op, VIEW_OPS):
            v = v.producer.inputs[0]
        if graph.roles.get(v) in ("param", "state") and (write_back is None or k not in write_back):
            w.copied.add(k)
    if tuple_return:
        lines.append("return " + ", ".join(w.returned(k) for k in keys))
    else:
        lines.append("return {" + ", ".join(f"{pytext.literal(k)}: {w.returned(k)}" for k in keys) + "}")
    body = "\n".join("    " + ln for ln in lines)
    return f'def {name}({", ".join(args)}):\n    """{pytext.doc(doc)}"""\n{body}\n'


def scan_source(node: Node, module: ModuleContext, users: dict) -> str:
    """A scan as two functions: the body (one step) and the loop that stacks its per-step outputs."""
    op = node.op
    k, m, ny = op.num_carries, op.num_xs, op.num_ys
    body = prepare(op.body)
    body_name, loop_name = "@step@", "@scan@"  # placeholders (no identifier) until the functions are known to be new
    step_source = function_source(body_name, body, module, [("", body.inputs)], doc="One step of the scan below.",
                                  tuple_return=True)
    n_in = len(node.inputs)
    args = [f"c{i}" for i in range(k)] + [f"xs{i}" for i in range(m)] + [f"k{i}" for i in range(n_in - k - m)]
    history = [i for i, h in enumerate(node.outputs[k + ny:]) if h in users]
    order = "reversed(range(steps))" if op.reverse else "range(steps)"
    lines = [f"def {loop_name}({', '.join(args)}):",
             f'    """Scan over axis 1{" backwards" if op.reverse else ""}: carries {k}, sequences {m}."""',
             "    steps = xs0.shape[1]"]
    lines += [f"    ys{i} = [None] * steps" for i in range(ny)]
    lines += [f"    history{i} = [None] * steps" for i in history]
    lines.append(f"    for t in {order}:")
    lines += [f"        history{i}[t] = c{i}" for i in history]
    outs = [f"c{i}" for i in range(k)] + [f"y{i}" for i in range(ny)]
    step_args = [f"c{i}" for i in range(k)] + [f"xs{i}[:, t]" for i in range(m)] + args[k + m:]
    lines.append(f"        {', '.join(outs)}, = {body_name}({', '.join(step_args)})")
    lines += [f"        ys{i}[t] = y{i}" for i in range(ny)]
    results = [f"c{i}" for i in range(k)] + [f"np.stack(ys{i}, axis=1)" for i in range(ny)]
    results += [f"np.stack(history{i}, axis=1)" if i in history else "None" for i in range(k)]
    lines.append(f"    return {', '.join(results)}")
    key = step_source + "\n".join(lines)
    if key in module.scans:  # the same scan again (the forward of the train step and of evaluate): emitted once
        return module.scans[key]
    base = pytext.identifier(op.body.name or "scan")
    step_name, scan_name = module.function_name(f"_{base}_step"), module.function_name(f"_{base}_scan")
    module.functions.append(step_source.replace(f"def {body_name}(", f"def {step_name}(", 1))
    module.functions.append("\n".join(lines).replace(f"def {loop_name}(", f"def {scan_name}(", 1)
                            .replace(f"= {body_name}(", f"= {step_name}(", 1) + "\n")
    module.scans[key] = scan_name
    return scan_name


def render_module(**fields: object) -> str:
    template = resources.files("bmc.backends.numpy").joinpath("templates/module.py.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["literal"] = pytext.literal
    env.filters["doc"] = pytext.doc
    return wrap_source(env.from_string(template).render(**fields))
