"""Kernel launches per call, counted from model.cu's host code: what `bmc build --target cuda` prints and the
manifest records (`cuda.launches`).

Each function's device work is its `steps_NAME` function (host.py): kernel launches (`BMC_LAUNCH`), device copies
(`BMC_CUDA(cudaMemcpy...)`), the locals the host computes between them (`const long long tiles = ...`), branches
that choose a kernel by shape and SM count (`if (splits > 1) { ... } else if (tiles >= ctx->sm_count) { ... }`) and
one loop per scan (`for (int step = 0; step < 28; ++step) { ... }`). The counter reads those statements, evaluates
the locals and conditions at given symbol values (the build's batch) and SM count, and adds up the branch each call
takes, with a scan's body once per step. A condition or a scan length it cannot evaluate (a symbol without a value)
counts the largest alternative (`exact` false, unless the alternatives launch alike) or leaves the scan out of the
totals (its per-step counts stay). The counts are what a direct call launches; a call that replays its CUDA graph
(from the second call with the same symbol values) launches one graph holding the same kernels and copies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SM_COUNT = 132  # an H100 or H200 (sm_90): the SMs the build's counts assume


@dataclass
class Scan:
    steps: int | None  # None: the length is a symbol without a value
    kernels: int  # per scan step
    copies: int


@dataclass
class Launches:
    kernels: int = 0  # kernel launches per call (scans of known length included)
    copies: int = 0  # device-to-device copies per call (nodes of the graph too)
    names: set[str] = field(default_factory=set)  # the distinct kernels launched
    scans: list[Scan] = field(default_factory=list)
    exact: bool = True

    def add(self, other: Launches, times: int = 1) -> None:
        """Another part of the call, `times` times (a scan's steps: their scans are inside its per-step counts)."""
        self.kernels += times * other.kernels
        self.copies += times * other.copies
        self.names |= other.names
        self.exact = self.exact and other.exact
        if times == 1:
            self.scans += other.scans

    def summary(self) -> dict:
        return {"kernels": self.kernels, "copies": self.copies, "distinct": len(self.names), "exact": self.exact,
                "scans": [vars(s) for s in self.scans]}


def count(source: str, function: str, dims: Sequence[int | None], sm_count: int = SM_COUNT) -> Launches:
    """The launches of one call of `function` (its `steps_` function in `source`) with symbol values `dims` (in the
    manifest's order of the function's symbols; None where unknown) on a GPU of `sm_count` SMs."""
    env: dict[str, int | None] = {}
    return _tally(_parse(_statements(source, function), env, dims), env, _Device(helpers(source), sm_count))


def distinct_kernels(source: str) -> int:
    """The kernels model.cu defines (each launched from one or more places)."""
    return len(re.findall(r'^extern "C" __global__ ', source, flags=re.M))


def report(source: str, functions: Sequence[dict], at: Mapping[str, int], sm_count: int = SM_COUNT) -> dict:
    """The manifest's `cuda.launches`: per function (manifest entries) the launches of one call at the symbol values
    `at`, and the library's distinct kernels."""
    out = {}
    for f in functions:
        dims = [at.get(s) for s in f["symbols"]]
        out[f["name"]] = count(source, f["name"], dims, sm_count).summary()
    return {"at": dict(at), "sm_count": sm_count, "distinct_kernels": distinct_kernels(source),
            "graph_launches_per_call": 1, "functions": out}


def describe(launches: dict) -> str:
    """The report as `bmc build` prints it."""
    at = ", ".join(f"{k} = {v}" for k, v in launches["at"].items()) or "sizes unknown at build time"
    lines = [f"CUDA launches per call at {at} on {launches['sm_count']} SMs (direct launches; from the second call "
             "with the same sizes on, each call replays them as 1 CUDA graph launch):"]
    width = max(len(name) for name in launches["functions"])
    for name, f in launches["functions"].items():
        text = f"{'' if f['exact'] else 'at most '}{f['kernels']} kernels"
        if f["copies"]:
            text += f" + {f['copies']} copies"
        scans = []
        for s in f["scans"]:
            per = f"{s['kernels']} kernels" + (f" + {s['copies']} copies" if s["copies"] else "")
            steps = f" x {s['steps']} steps" if s["steps"] is not None else " (its length unknown: not in the total)"
            scans.append(f"{per} per scan step{steps}")
        if scans:
            text += f" (scans: {'; '.join(scans)})"
        lines.append(f"  {name:<{width}}  {text}")
    lines.append(f"  {launches['distinct_kernels']} distinct kernels in model.cu")
    return "\n".join(lines)


# ---- reading the host code ------------------------------------------------------------------------------------------


def _statements(source: str, function: str) -> list[str]:
    """The statements of `steps_FUNCTION`'s body, each on one line (wrap.py may have broken them over lines)."""
    lines = source.split("\n")
    head = f"static int steps_{function}("
    try:
        start = next(k for k, line in enumerate(lines) if line.startswith(head))
    except StopIteration:
        raise ValueError(f"model.cu has no steps_{function}") from None
    while not lines[start].rstrip().endswith("{"):  # the signature may be wrapped too
        start += 1
    out, pending = [], ""
    for line in lines[start + 1:]:
        if line == "}":
            break
        text = line.strip()
        if not text or (text.startswith("//") and not pending):
            continue
        pending = f"{pending} {text}" if pending else text
        if pending.endswith((";", "{", "}")):
            out.append(pending)
            pending = ""
    return out


_FOR = re.compile(r"for \(int (\w+) = 0; \1 < (.+); \+\+\1\) \{$")
_LET = re.compile(r"(?:const\s+)?(?:long long|int|unsigned|size_t)\s+(\w+)\s*=\s*(.+);$")
_DIM = re.compile(r"\(int\)dims\[(\d+)\]$")


def _parse(statements: list[str], env: dict, dims: Sequence[int | None]) -> list:
    """A tree of ("launch", name), ("copy",), ("let", name, expr), ("if", [(cond or None, body)]),
    ("loop", count, body) and ("block", body); the symbols' values go into env."""
    root: list = []
    stack: list[tuple[str, object]] = [("block", root)]  # ("block", its list) or ("if", the node)

    def body() -> list:
        kind, node = stack[-1]
        return node[1][-1][1] if kind == "if" else node
    for s in statements:
        kind, node = stack[-1]
        if s.startswith("} else if (") and s.endswith(") {") and kind == "if":
            node[1].append((s[len("} else if ("):-len(") {")], []))
        elif s == "} else {" and kind == "if":
            node[1].append((None, []))
        elif s == "}":
            if len(stack) > 1:
                stack.pop()
        elif s.startswith("if (") and s.endswith(") {"):
            branch = ("if", [(s[len("if ("):-len(") {")], [])])
            body().append(branch)
            stack.append(("if", branch))
        elif m := _FOR.match(s):
            loop = ("loop", m.group(2), [])
            body().append(loop)
            stack.append(("block", loop[2]))
        elif s.endswith("{"):  # a plain block (or a construct the counter does not know: counted once)
            block = ("block", [])
            body().append(block)
            stack.append(("block", block[1]))
        elif s.startswith("BMC_LAUNCH("):
            body().append(("launch", s[len("BMC_LAUNCH("):].split(",", 1)[0].strip()))
        elif re.match(r"BMC_CUDA\(cudaMem(?:cpy|set)", s):
            body().append(("copy",))
        elif m := _LET.match(s):
            if d := _DIM.match(m.group(2)):
                k = int(d.group(1))
                env[m.group(1)] = dims[k] if k < len(dims) else None
            else:
                body().append(("let", m.group(1), m.group(2)))
    return root


@dataclass
class _Device:
    helpers: dict  # model.cu's host helpers (see `helpers`)
    sm_count: int


def _tally(nodes: list, env: dict, device: _Device) -> Launches:
    out = Launches()
    for node in nodes:
        kind = node[0]
        if kind == "launch":
            out.kernels += 1
            out.names.add(node[1])
        elif kind == "copy":
            out.copies += 1
        elif kind == "let":
            env[node[1]] = _evaluate(node[2], env, device)
        elif kind == "block":
            out.add(_tally(node[1], env, device))
        elif kind == "loop":
            steps = _evaluate(node[1], env, device)
            step = _tally(node[2], env, device)
            out.scans.append(Scan(steps, step.kernels, step.copies))
            out.names |= step.names
            out.exact = out.exact and step.exact
            if steps is not None:
                out.kernels += steps * step.kernels
                out.copies += steps * step.copies
        elif kind == "if":
            out.add(_branch(node[1], env, device))
    return out


def _branch(alternatives: list, env: dict, device: _Device) -> Launches:
    """The alternative taken; where a condition is unknown, the largest of those that remain."""
    for k, (cond, body) in enumerate(alternatives):
        value = 1 if cond is None else _evaluate(cond, env, device)
        if value is None:
            rest = [_tally(b, dict(env), device) for _, b in alternatives[k:]]
            if alternatives[-1][0] is not None:
                rest.append(Launches())  # none taken
            most = max(rest, key=lambda t: (t.kernels + t.copies, t.kernels))
            most.exact = most.exact and len({(t.kernels, t.copies) for t in rest}) == 1
            return most
        if value:
            return _tally(body, env, device)
    return Launches()


# ---- evaluating the host's integer expressions ---------------------------------------------------------------------
# A small reader of C integer expressions (names, numbers, calls, casts, unary - and !, the binary operators of
# integers and comparisons, && ||, ?:) that evaluates them with the values known so far. The host helpers they call
# (`bmc_ceil`, `bmc_splits`, ...: the `static inline` functions of model.cu) are read from the source itself, as
# statements `if (c) return e;`, `T name = e;`, `name = e;` and `return e;`, so the counts follow model.cu as it is.


class _UnknownError(Exception):
    """A name without a value, or a construct the reader does not know."""


_TOKEN = re.compile(r"\s*(?:(\d+)[uUlL]*\b|([A-Za-z_]\w*)|(->|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%<>!?:(),]))")
_TYPE_WORDS = {"const", "unsigned", "signed", "long", "int", "short", "size_t", "int64_t", "uint32_t", "uint64_t",
               "char", "bool", "bmc_ctx", "*"}
_BINARY = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, "<=": 4, ">": 4, ">=": 4, "<<": 5, ">>": 5, "+": 6, "-": 6,
           "*": 7, "/": 7, "%": 7}


def _divide(a: int, b: int, remainder: bool = False) -> int:
    if b == 0:
        raise _UnknownError("division by zero")
    q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)  # C truncates toward zero
    return a - q * b if remainder else q


_APPLY = {"||": lambda a, b: int(bool(a()) or bool(b())), "&&": lambda a, b: int(bool(a()) and bool(b())),
          "==": lambda a, b: int(a() == b()), "!=": lambda a, b: int(a() != b()), "<": lambda a, b: int(a() < b()),
          "<=": lambda a, b: int(a() <= b()), ">": lambda a, b: int(a() > b()), ">=": lambda a, b: int(a() >= b()),
          "<<": lambda a, b: a() << b(), ">>": lambda a, b: a() >> b(), "+": lambda a, b: a() + b(),
          "-": lambda a, b: a() - b(), "*": lambda a, b: a() * b(), "/": lambda a, b: _divide(a(), b()),
          "%": lambda a, b: _divide(a(), b(), remainder=True)}


class _Reader:
    """Parses one expression into a closure; names are looked up (and helpers called) when it is evaluated."""

    def __init__(self, text: str, scope: _Scope):
        self.tokens, self.k, self.scope = [], 0, scope
        at = 0
        text = text.strip()
        while at < len(text):
            m = _TOKEN.match(text, at)
            if not m or m.end() == at:
                raise _UnknownError(f"cannot read {text[at:at + 20]!r}")
            self.tokens.append(m.group(3) or m.group(2) or int(m.group(1)))
            at = m.end()
            while at < len(text) and text[at].isspace():
                at += 1

    def peek(self):
        return self.tokens[self.k] if self.k < len(self.tokens) else None

    def take(self, expected=None):
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise _UnknownError(f"expected {expected!r}")
        self.k += 1
        return token

    def expression(self):
        f = self.ternary()
        if self.peek() is not None:
            raise _UnknownError(f"unexpected {self.peek()!r}")
        return f

    def ternary(self):
        cond = self.binary(1)
        if self.peek() != "?":
            return cond
        self.take("?")
        a = self.ternary()
        self.take(":")
        b = self.ternary()
        return lambda: a() if cond() else b()

    def binary(self, least: int):
        left = self.unary()
        while isinstance(self.peek(), str) and _BINARY.get(self.peek(), 0) >= least:
            op = self.take()
            right = self.binary(_BINARY[op] + 1)
            left = (lambda f, a, b: lambda: f(a, b))(_APPLY[op], left, right)
        return left

    def unary(self):
        token = self.peek()
        if token in ("-", "!", "+"):
            self.take()
            f = self.unary()
            return {"-": lambda: -f(), "!": lambda: int(not f()), "+": f}[token]
        if token == "(" and self._cast():
            return self.unary()  # a cast: the host's integers are far from any type's limits
        return self.primary()

    def _cast(self) -> bool:
        j = self.k + 1
        while j < len(self.tokens) and self.tokens[j] in _TYPE_WORDS:
            j += 1
        if j > self.k + 1 and j < len(self.tokens) and self.tokens[j] == ")":
            self.k = j + 1
            return True
        return False

    def primary(self):
        token = self.take()
        if isinstance(token, int):
            return lambda: token
        if token == "(":
            f = self.ternary()
            self.take(")")
            return f
        if not isinstance(token, str) or not (token[0].isalpha() or token[0] == "_"):
            raise _UnknownError(f"unexpected {token!r}")
        if self.peek() == "->":
            self.take()
            name = f"{token}->{self.take()}"
            return lambda: self.scope.value(name)
        if self.peek() == "(":
            self.take()
            args = []
            while self.peek() != ")":
                args.append(self.ternary())
                if self.peek() == ",":
                    self.take()
            self.take(")")
            return lambda: self.scope.call(token, [a() for a in args])
        return lambda: self.scope.value(token)


class _Scope:
    """Names with values (the symbols, the host's locals, `ctx->sm_count`) and the helpers of model.cu."""

    def __init__(self, values: dict, helpers: dict[str, tuple[list[str], list[str]]]):
        self.values, self.helpers = values, helpers

    def value(self, name: str) -> int:
        if name == "ctx":
            return 0  # passed to helpers, which read ctx->sm_count
        v = self.values.get(name)
        if v is None:
            raise _UnknownError(name)
        return v

    def call(self, name: str, args: list[int]) -> int:
        if name not in self.helpers:
            raise _UnknownError(f"the helper {name}")
        params, statements = self.helpers[name]
        local = _Scope({**self.values, **dict(zip(params, args, strict=False))}, self.helpers)
        for s in statements:
            if m := re.fullmatch(r"if\s*\((.*)\)\s*return\s+(.+)", s):
                if local.evaluate(m.group(1)):
                    return local.evaluate(m.group(2))
            elif m := re.fullmatch(r"return\s+(.+)", s):
                return local.evaluate(m.group(1))
            elif m := re.fullmatch(r"(?:[\w\s\*]+\s)?(\w+)\s*=\s*(.+)", s):
                local.values[m.group(1)] = local.evaluate(m.group(2))
            else:
                raise _UnknownError(f"the statement {s!r} of {name}")
        raise _UnknownError(f"{name} returns nothing")

    def evaluate(self, expr: str) -> int:
        return _Reader(expr, self).expression()()


_HELPER = re.compile(r"^static inline [\w\s\*]*?\b(\w+)\(([^)]*)\)\s*\{", re.M)


def helpers(source: str) -> dict[str, tuple[list[str], list[str]]]:
    """model.cu's `static inline` host functions: name -> (parameter names, body statements)."""
    out = {}
    for m in _HELPER.finditer(source):
        depth, at = 1, m.end()
        while depth and at < len(source):
            depth += {"{": 1, "}": -1}.get(source[at], 0)
            at += 1
        body = re.sub(r"//[^\n]*", "", source[m.end():at - 1])
        params = [re.findall(r"\w+", p)[-1] for p in m.group(2).split(",") if re.findall(r"\w+", p)]
        out[m.group(1)] = (params, [s.strip() for s in body.split(";") if s.strip()])
    return out


def _evaluate(expr: str, env: dict, device: _Device) -> int | None:
    """A C integer expression of the host code as a number, or None (a name without a value, a construct the
    reader does not know)."""
    try:
        return _Scope({**env, "ctx->sm_count": device.sm_count}, device.helpers).evaluate(expr)
    except (_UnknownError, RecursionError):
        return None
