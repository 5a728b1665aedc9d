"""Parse the IR text form (`bmc.ir.printer`) back into a `Graph`, so tests can write IR by hand.

    graph g(param %x: f64[N, 3], input %w: f64[3]) {
      %y: f64[N, 3] = mul(%x, %w)  # model.bm:4
      return y = %y
    }

A graph-valued attribute (a scan's body) is printed below its node as `body: graph ... { ... }` and parsed the same
way. Value types are read from the text, never inferred, and a value may be used above the line that defines it: such
graphs parse, and the verifier rejects them. `# file:line` comments are ignored (parsed nodes have no span).
Attributes are read back into the op's fields: ints, floats, `true`/`false`, `none`, `[...]` lists as tuples, and
anything else as a string (dtypes, compare's `>`, symbolic dims such as `N*T`).
"""

from __future__ import annotations

import re

from bmc.ir.graph import ROLES, Graph, Node, Value
from bmc.ir.types import DTYPES, Dim, TensorType
from bmc.ops import REGISTRY, Const


class ParseError(ValueError):
    pass


_GRAPH = re.compile(r"\s*graph\s+(\S+?)\s*\((.*?)\)\s*\{(.*)\}\s*", re.S)
_INPUT = re.compile(r"(\w+)\s+%(\S+?)\s*:\s*(.+)")
_NODE = re.compile(r"(%.+?)\s+=\s+(\w+)\((.*)\)")
_VALUE = re.compile(r"%(\S+?)\s*:\s*(.+)")
_TYPE = re.compile(r"(\w+)\[(.*)\]")
_RESULT = re.compile(r"(\S+)\s*=\s*%(\S+)")
_NESTED = re.compile(r"(\w+):\s*(graph\b.*)")


def parse_graph(text: str) -> Graph:
    m = _GRAPH.fullmatch(re.sub(r"#[^\n]*", "", text))
    if m is None:
        raise ParseError("expected 'graph NAME(role %name: type, ...) { ... return ... }'")
    name, header, body = m.groups()
    graph = Graph(name)
    env: dict[str, Value] = {}
    for item in split(header):
        role, vname, type_text = _match(_INPUT, item, "an input 'role %name: type'")
        if role not in ROLES:
            raise ParseError(f"unknown role '{role}' in '{item}' (roles: {', '.join(ROLES)})")
        _define(env, graph.add_input(parse_type(type_text), vname, role))

    statements = _statements([line.strip() for line in body.splitlines() if line.strip()])
    if not statements or not statements[-1][0].startswith("return"):
        raise ParseError("a graph ends with 'return name = %value, ...'")
    # First every node's outputs, then their inputs: a use before the definition parses (the verifier rejects it).
    pending = []
    for line, graphs in statements[:-1]:
        outs, op_name, args = _match(_NODE, line, "'%name: type = op(args)'")
        values = tuple(Value(parse_type(t), n) for n, t in (_match(_VALUE, o, "'%name: type'") for o in split(outs)))
        for v in values:
            _define(env, v)
        pending.append((line, values, op_name, split(args), graphs))
    for line, values, op_name, args, graphs in pending:
        inputs = tuple(_lookup(env, a[1:]) for a in args if a.startswith("%"))
        op = _make_op(line, op_name, [a for a in args if not a.startswith("%")], graphs, values)
        node = Node(op, inputs, values, None)
        for v in values:
            v.producer = node
        graph.nodes.append(node)

    for item in split(statements[-1][0].removeprefix("return")):
        key, vname = _match(_RESULT, item, "an output 'name = %value'")
        graph.outputs[key] = _lookup(env, vname)
    return graph


def parse_type(text: str) -> TensorType:
    dtype, dims = _match(_TYPE, text.strip(), "a type such as 'f32[N, 3]'")
    if dtype not in DTYPES:
        raise ParseError(f"unknown dtype '{dtype}' (dtypes: {', '.join(DTYPES)})")
    return TensorType(dtype, tuple(_dim(d) for d in split(dims)))


def parse_attr(text: str) -> object:
    if text.startswith("[") and text.endswith("]"):
        return tuple(parse_attr(t) for t in split(text[1:-1]))
    if text in ("true", "false", "none"):
        return {"true": True, "false": False, "none": None}[text]
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return text


def split(text: str) -> list[str]:
    """Split at the commas outside brackets, dropping blanks: 'a, f32[N, 3], b' -> ['a', 'f32[N, 3]', 'b']."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += {"[": 1, "(": 1, "]": -1, ")": -1}.get(c, 0)
        if c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _statements(lines: list[str]) -> list[tuple[str, dict[str, Graph]]]:
    """Each node line with the graphs printed below it (a scan's `body: graph ... { ... }`), parsed."""
    out: list[tuple[str, dict[str, Graph]]] = []
    i = 0
    while i < len(lines):
        nested = _NESTED.fullmatch(lines[i])
        if nested is None:
            out.append((lines[i], {}))
            i += 1
            continue
        if not out:
            raise ParseError(f"a nested graph belongs to the node above it: {lines[i]}")
        depth, end, opened = 0, i, False
        while end < len(lines) and not (opened and depth == 0):  # to the brace that closes the nested graph
            depth += lines[end].count("{") - lines[end].count("}")
            opened = opened or "{" in lines[end]
            end += 1
        out[-1][1][nested[1]] = parse_graph("\n".join([nested[2], *lines[i + 1 : end]]))
        i = end
    return out


def _make_op(line: str, op_name: str, attrs: list[str], graphs: dict[str, Graph], outs: tuple[Value, ...]):
    if op_name == "const":  # const(1.5): the dtype is the result's
        if len(attrs) != 1 or len(outs) != 1:
            raise ParseError(f"a constant is '%name: type = const(value)': {line}")
        dtype = outs[0].type.dtype
        return Const((float if dtype in ("f32", "f64") else int)(parse_attr(attrs[0])), dtype)
    if op_name not in REGISTRY:
        raise ParseError(f"unknown op '{op_name}': {line}")
    fields: dict[str, object] = dict(graphs)
    for attr in attrs:
        key, eq, value = attr.partition("=")  # op===: the key is `op`, the value `==`
        if not eq:
            raise ParseError(f"expected '%value' or 'name=value', got '{attr}': {line}")
        fields[key.strip()] = parse_attr(value.strip())
    try:
        return REGISTRY[op_name](**fields)
    except TypeError as e:
        raise ParseError(f"bad attributes for {op_name} ({e}): {line}") from None


def _dim(text: str) -> Dim:
    return int(text) if text.lstrip("-").isdigit() else text


def _match(pattern: re.Pattern, text: str, expected: str) -> tuple[str, ...]:
    m = pattern.fullmatch(text.strip())
    if m is None:
        raise ParseError(f"expected {expected}, got '{text.strip()}'")
    return m.groups()


def _define(env: dict[str, Value], v: Value) -> None:
    if v.name in env:
        raise ParseError(f"%{v.name} is defined twice")
    env[v.name] = v


def _lookup(env: dict[str, Value], name: str) -> Value:
    if name not in env:
        raise ParseError(f"%{name} is never defined")
    return env[name]
