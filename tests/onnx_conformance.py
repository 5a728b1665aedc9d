"""ONNX backend node-test conformance of `bmc import`.

onnx ships a test case for every op (`onnx/backend/test/case/node/*.py`): a one-node model, its inputs and the
outputs the standard gives. Every case whose op types all have an import rule is imported, compiled and run on the
NumPy backend, and its outputs are compared with the standard's at the case's tolerances (the comparison onnx's own
backend runner makes). Each case ends as one of

    pass             the outputs agree
    wrong            the outputs differ: the worst outcome, an importer (or compiler) bug
    not importable   the importer refused it with a BmcError, whose first note is the reason
    not compilable   bmc rejected the text the importer wrote: an importer bug unless the reason is a language limit
    crash            the importer, the compiler or the generated module raised something other than BmcError: a bug

Node tests feed every operand as a graph input, while exported models carry weights, shapes, axes and pads as
initializers. A case the importer refuses (most often because an operand must be known at import: "its W is computed
by the model") is therefore tried again with its graph inputs that are only ever a later operand of their nodes made
initializers holding the case's values (mode "known inputs"); the outcome reported is the retry's.

    python -m tests.onnx_conformance [--op Conv] [--markdown] [--cases]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import re
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx.printer
from onnx import numpy_helper

PASS, WRONG, NOT_IMPORTABLE, NOT_COMPILABLE, CRASH = "pass", "wrong", "not importable", "not compilable", "crash"
AS_GIVEN, KNOWN = "as given", "known inputs"


@dataclass(frozen=True)
class Case:
    name: str
    op: str  # the op type under test (an expanded case's is the function op it expands)
    model: onnx.ModelProto
    data_sets: list
    rtol: float
    atol: float

    @property
    def op_types(self) -> set[str]:
        return {n.op_type for n in self.model.graph.node}


@dataclass
class Outcome:
    case: str
    op: str
    status: str
    mode: str = AS_GIVEN
    reason: str = ""  # why it is not a pass: the first note of the error, or what differs
    detail: str = ""  # the whole error or traceback, for a report
    seconds: float = 0.0


@functools.cache
def all_cases() -> tuple[Case, ...]:
    """Every node test case onnx generates (about 1900; generating them takes ~10 s, once per process)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        found = collect_testcases(None)
    base = {c.name: c.model.graph.node[0].op_type for c in found if "_expanded" not in c.name}
    return tuple(Case(c.name, base.get(re.sub(r"_expanded.*", "", c.name), c.model.graph.node[0].op_type), c.model,
                      list(c.data_sets), float(c.rtol), float(c.atol)) for c in found)


def supported_ops() -> set[str]:
    from bmc.onnx_import import importer  # noqa: F401 - importing it registers the rules
    from bmc.onnx_import.context import RULES

    return {op for op in RULES if not op.startswith("bmc.")}  # bmc.*: the nodes patterns.py makes of patterns


def supported_cases(op: str | None = None) -> list[Case]:
    """The cases whose op types all have an import rule (an expanded function counts by its nodes' ops)."""
    ops = supported_ops()
    return [c for c in all_cases() if c.op_types <= ops and (op is None or c.op == op)]


# ---- one case --------------------------------------------------------------------------------------------------


def run_case(case: Case, workdir: Path | None = None) -> Outcome:
    """Import, compile and run one case; as given first, then with its needed operands known."""
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bmc-onnx-")))
        outcome = _run_mode(case, AS_GIVEN, workdir)
        if outcome.status == NOT_IMPORTABLE and _promotable(case.model):
            outcome = _run_mode(case, KNOWN, workdir)
    outcome.seconds = time.perf_counter() - start
    return outcome


def _run_mode(case: Case, mode: str, workdir: Path) -> Outcome:
    from bmc.diagnostics import BmcError
    from bmc.onnx_import import import_onnx

    worst: Outcome | None = None
    for k, (inputs, expected) in enumerate(case.data_sets):
        inputs = [_array(a) for a in inputs]
        expected = [_array(a) for a in expected]
        model, feeds = (case.model, inputs) if mode == AS_GIVEN else promote(case.model, inputs)
        path = workdir / f"{case.name}_{k}.onnx"
        onnx.save(model, str(path))
        stage = "import"
        try:
            imp = import_onnx(path)
            stage = "compile"
            module = _compile(imp, path, _precision(feeds, expected))
            stage = "run"
            got = _forward(module, imp, feeds)
        except BmcError as e:
            status = NOT_IMPORTABLE if stage == "import" else NOT_COMPILABLE if stage == "compile" else CRASH
            reason = e.notes[0] if e.notes else e.message
            rejected = re.search(r"bmc rejects:\n(?:\S+: )?error: (.*)", e.message)
            if rejected:  # the importer's own check compiled what it wrote (importer._verify)
                status, reason = NOT_COMPILABLE, rejected.group(1)
            return Outcome(case.name, case.op, status, mode, _plain(reason), e.render())
        except Exception as e:  # any other exception is a bug to report, with its traceback
            return Outcome(case.name, case.op, CRASH, mode, f"{stage}: {type(e).__name__}: {e}"[:300],
                           traceback.format_exc())
        wrong = compare(got, expected, case.rtol, case.atol)
        if wrong:
            worst = Outcome(case.name, case.op, WRONG, mode, wrong, imp.source)
            break
    return worst or Outcome(case.name, case.op, PASS, mode)


def _precision(feeds: list, expected: list) -> str:
    """The build's precision: f64 when every float the case feeds and expects is float64. An f64 build makes every
    float f64, while an f32 build keeps the f64 the imported text declares, so a case mixing them builds in f32."""
    floats = [a.dtype for a in [*feeds, *expected] if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    return "f64" if floats and all(d == np.float64 for d in floats) else "f32"


def _compile(imp, path: Path, dtype: str):
    import bmc
    from bmc.runtime import load_source

    model = bmc.compile_string(imp.source, filename=str(path.with_suffix(".bm")), dtype=dtype, warnings="ignore")
    return load_source(model.generate("numpy", train=False))


def _forward(module, imp, feeds: list[np.ndarray]) -> list[np.ndarray]:
    """The outputs, in the ONNX graph's output order. `imp.inputs` are the inputs' names in graph-input order; an
    output is found by its ONNX name when the model keeps it, else by position."""
    if len(imp.inputs) != len(feeds):
        raise AssertionError(f"the import has {len(imp.inputs)} inputs {imp.inputs}; the case feeds {len(feeds)}")
    by_name = dict(zip(imp.inputs, feeds, strict=True))
    with np.errstate(all="ignore"):  # by position, as bmc.runtime does: forward's Python names are mangled (min_)
        out = module.forward(_params(imp), *(by_name[k] for k in module.INPUTS))
    names = list(module.OUTPUTS)
    if len(names) != len(imp.outputs):
        raise AssertionError(f"the model has outputs {names}; the ONNX graph has {imp.outputs}")
    return [np.asarray(out[o if o in out else names[i]]) for i, o in enumerate(imp.outputs)]


def _params(imp) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in imp.params.items()}


def compare(got: list[np.ndarray], expected: list[np.ndarray], rtol: float, atol: float) -> str:
    """Empty when every output agrees as onnx's backend runner checks it (the same dtype and shape, then
    assert_allclose with NaN equal to NaN, integers exactly); otherwise what differs."""
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        if g.shape != e.shape:
            return f"output {i}: shape {list(g.shape)}, expected {list(e.shape)}"
        if g.dtype != e.dtype:
            return f"output {i}: dtype {g.dtype}, expected {e.dtype}"
        if e.dtype.kind in "biu":
            if not np.array_equal(g.astype(np.float64), e.astype(np.float64)):
                return f"output {i}: values differ at {_where(g, e)}"
            continue
        with np.errstate(all="ignore"):
            ok = np.isclose(g.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True)
        if not ok.all():
            idx = np.argwhere(~ok)[0]
            at = tuple(int(j) for j in idx)
            err = float(np.nanmax(np.abs(g.astype(np.float64) - e.astype(np.float64))))
            return (f"output {i}: {int((~ok).sum())} of {ok.size} values differ (max |diff| {err:.3g}); "
                    f"at {list(at)} got {g[at]!r}, expected {e[at]!r}")
    return ""


def _where(g: np.ndarray, e: np.ndarray) -> str:
    bad = np.argwhere(g != e)
    if not bad.size:
        return "?"
    at = tuple(int(j) for j in bad[0])
    return f"{list(at)}: got {g[at]!r}, expected {e[at]!r}"


def _array(a):
    if isinstance(a, onnx.TensorProto):
        return numpy_helper.to_array(a)
    if isinstance(a, list | tuple | type(None)):
        return a  # a sequence or an optional: the importer refuses its graph input first
    return np.asarray(a)


def _plain(reason: str) -> str:
    """A reason without the node's name and the temp file's path, so equal reasons group."""
    reason = re.sub(r"^node '[^']*' \(([^,]*), [^)]*\): ", "", reason)
    return re.sub(r"\S*bmc-onnx-\S*/", "", reason)


# ---- known operands --------------------------------------------------------------------------------------------


def _promotable(model: onnx.ModelProto) -> bool:
    return bool(_operands(model))


def _operands(model: onnx.ModelProto) -> set[str]:
    """The graph inputs some node reads as an operand other than its first (weights, shapes, axes, scales, pads)."""
    inputs = {i.name for i in model.graph.input}
    firsts = {node.input[0] for node in model.graph.node if node.input}
    return {name for node in model.graph.node for name in node.input[1:] if name in inputs - firsts}


def promote(model: onnx.ModelProto, inputs: list) -> tuple[onnx.ModelProto, list]:
    """The model with its non-first operands as initializers holding the case's values (as exported models carry
    them), and the inputs still fed."""
    operands = _operands(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    kept_inputs, feeds = [], []
    for vi, value in zip(model.graph.input, inputs, strict=False):
        if vi.name in operands and isinstance(value, np.ndarray):
            graph.initializer.append(numpy_helper.from_array(value, vi.name))
        else:
            kept_inputs.append(vi)
            feeds.append(value)
    del graph.input[:]
    graph.input.extend(kept_inputs)
    return out, feeds


# ---- the table -------------------------------------------------------------------------------------------------


@dataclass
class Row:
    op: str
    total: int = 0
    passed: int = 0
    known: int = 0  # of the passes, those that needed known operands
    wrong: int = 0
    refused: int = 0  # not importable
    uncompilable: int = 0
    crashed: int = 0
    reasons: Counter = field(default_factory=Counter)


def run_all(op: str | None = None, progress=None) -> list[Outcome]:
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="bmc-onnx-") as d:
        for case in supported_cases(op):
            outcomes.append(run_case(case, Path(d)))
            if progress is not None:
                progress(outcomes[-1])
    return outcomes


def summarize(outcomes: list[Outcome]) -> list[Row]:
    rows: dict[str, Row] = {}
    for o in outcomes:
        r = rows.setdefault(o.op, Row(o.op))
        r.total += 1
        if o.status == PASS:
            r.passed += 1
            r.known += o.mode == KNOWN
            continue
        if o.status == WRONG:
            r.wrong += 1
        elif o.status == NOT_IMPORTABLE:
            r.refused += 1
        elif o.status == NOT_COMPILABLE:
            r.uncompilable += 1
        else:
            r.crashed += 1
        r.reasons[f"{o.status}: {group(o.reason)}" if o.status != WRONG else "WRONG VALUES"] += 1
    return [rows[k] for k in sorted(rows)]


def group(reason: str) -> str:
    """A reason with its particulars (names, shapes, dtypes, numbers) elided, so the table counts kinds of reasons."""
    reason = re.sub(r"has type [^;]*;", "has type T;", reason)
    reason = re.sub(r"'[^']*'", "'…'", reason)
    reason = re.sub(r"\[[^\]]*\]", "[…]", reason)
    reason = re.sub(r"(\(\[…\](, \[…\])*\))", "(…)", reason)
    return re.sub(r"\b\d+(\.\d+)?\b(?!-D)", "n", reason)


def table(rows: list[Row], markdown: bool = False) -> str:
    head = ["op", "cases", "pass", "of which known inputs", "WRONG", "not importable", "not compilable", "crash",
            "reasons"]
    body = []
    for r in rows:
        reasons = "; ".join(f"{n}x {text}" for text, n in r.reasons.most_common())
        body.append([r.op, r.total, r.passed, r.known, r.wrong, r.refused, r.uncompilable, r.crashed, reasons])
    total = [sum(getattr(r, a) for r in rows) for a in ("total", "passed", "known", "wrong", "refused",
                                                         "uncompilable", "crashed")]
    body.append(["all", *total, ""])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(str(row[i])) for row in [head, *body]) for i in range(len(head) - 1)]
    lines = []
    for row in [head, *body]:
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths, strict=False))]
        lines.append("  ".join(cells) + ("  " + str(row[-1]) if row[-1] else ""))
    return "\n".join(lines)


def show_case(name: str) -> int:
    case = next((c for c in all_cases() if c.name == name), None)
    if case is None:
        print(f"onnx has no node test case {name}", file=sys.stderr)
        return 2
    print(onnx.printer.to_text(case.model.graph))
    o = run_case(case)
    print(f"\n{o.case} [{o.op}, {o.mode}]: {o.status}{': ' + o.reason if o.reason else ''}\n")
    print(o.detail)
    return 1 if o.status == WRONG else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.onnx_conformance", description=__doc__.split("\n")[0])
    parser.add_argument("--op", help="only the cases of this ONNX op type")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--cases", action="store_true", help="also list every case that does not pass")
    parser.add_argument("--case", metavar="NAME", help="run one case (test_flatten_negative_axis1) and show the model, "
                                                       "the outcome and the imported text or the error")
    args = parser.parse_args(argv)
    if args.case:
        return show_case(args.case)
    all_cases()
    start = time.perf_counter()
    outcomes = run_all(args.op)
    seconds = time.perf_counter() - start
    print(table(summarize(outcomes), args.markdown))
    wrong = [o for o in outcomes if o.status == WRONG]
    if args.cases:
        print()
        for o in outcomes:
            if o.status != PASS:
                print(f"{o.case} [{o.op}, {o.mode}]: {o.status}: {o.reason}")
    if wrong:
        print(f"\n!!! {len(wrong)} case(s) give WRONG VALUES:", file=sys.stderr)
        for o in wrong:
            print(f"!!! {o.case} ({o.mode}): {o.reason}", file=sys.stderr)
    print(f"\n{len(outcomes)} cases in {seconds:.1f} s (generating onnx's cases not counted)", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
