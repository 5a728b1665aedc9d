"""Hostile or broken `.bm` input never crashes bmc: deep nesting, huge literals, bad escapes, files that are not
UTF-8, arguments outside their domain, models too large for memory. Each is a located error (exit 1) or works.

The located errors a plain `bmc check` reaches are also in the corpus (tests/diagnostics/); this file holds the
cases that need generated sources, several commands or the Python API.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import tracemalloc

import numpy as np
import pytest

import bmc
from bmc import init, memory
from bmc.cli import main
from bmc.diagnostics import BmcError, UsageError
from bmc.frontend import deep
from bmc.frontend.domains import FRACTION, POSITIVE, SIZE, Number
from bmc.reference import kernels
from bmc.syntax.nesting import MAX_DEPTH


def model(expr: str, before: str = "", width: int = 4) -> str:
    return f"{before}model m {{\n    input x: f32[N, {width}]\n    output y = {expr}\n}}\n"


def error_of(text: str, **kw) -> BmcError:
    with pytest.raises(BmcError) as info:
        bmc.compile_string(text, **kw)
    return info.value


def layer_chain(length: int) -> str:
    """Layers l0 .. l{length-1}, each calling the next: `length` levels of lowering through layers."""
    body = "".join(f"layer l{i}(v: f32[N, 4]) {{\n    return l{i + 1}(v)\n}}\n" for i in range(length - 1))
    return body + f"layer l{length - 1}(v: f32[N, 4]) {{\n    return relu(v)\n}}\n"


def reversed_chain(length: int) -> str:
    """`a{length} = a{length-1} + 1` ... `a0 = x`, each name used before its definition."""
    stmts = "".join(f"    a{i} = a{i - 1} + 1\n" for i in range(length, 0, -1))
    return f"model m {{\n    input x: f32[N, 4]\n    output y = a{length}\n{stmts}    a0 = x\n}}\n"


# ---- nesting: every construct compiles up to MAX_DEPTH levels, and one level more is a located error ------------

DEEP = {  # each exactly MAX_DEPTH levels deep
    "calls": model("relu(" * (MAX_DEPTH - 1) + "x" + ")" * (MAX_DEPTH - 1)),
    "unary minuses": model("-" * (MAX_DEPTH - 1) + "x"),
    "flat sum": model(" + ".join(["x"] * MAX_DEPTH)),
    "nested parentheses": model("x - (" * (MAX_DEPTH // 2 - 1) + "x" + ")" * (MAX_DEPTH // 2 - 1)),
    "layer calls": model("l0(x)", layer_chain(MAX_DEPTH - 3)),
    "names used before their definition": reversed_chain(MAX_DEPTH // 2 - 3),
    "a dim": "model m {\n    input x: f32[N, " + " + ".join(["1"] * MAX_DEPTH) + "]\n    output y = relu(x)\n}\n",
}


@pytest.mark.parametrize("name", sorted(DEEP))
def test_nesting_up_to_the_limit_compiles(name):
    m = bmc.compile_string(DEEP[name])
    assert m.compiled.model.outputs == ["y"]


def test_the_issues_examples_compile_and_build(tmp_path):
    """Calls nested 250 deep, 490 unary minuses and a flat sum of 491 terms (issue 9, item 5), through the build."""
    for i, expr in enumerate(("relu(" * 250 + "x" + ")" * 250, "-" * 490 + "x", " + ".join(["x"] * 491))):
        out = bmc.compile_string(model(expr)).build(tmp_path / str(i))
        assert (out / "model.py").exists()


@pytest.mark.parametrize("text, where", [
    (model("relu(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH), (3, 16 + 5 * MAX_DEPTH)),
    (model(" + ".join(["x"] * (MAX_DEPTH + 1))), (3, 16)),
    (model("-" * MAX_DEPTH + "x"), (3, 16 + MAX_DEPTH)),
])
def test_nesting_past_the_limit_is_a_located_error(text, where):
    e = error_of(text)
    assert e.message == f"this expression nests more than {MAX_DEPTH} levels deep"
    assert (e.span.line, e.span.column) == where
    assert "split the expression into named statements" in e.notes[0]


def test_lowering_through_names_used_before_their_definition_is_bounded():
    e = error_of(reversed_chain(MAX_DEPTH))
    assert e.message.startswith(f"lowering this nests more than {MAX_DEPTH} levels deep")
    assert e.notes == ("define names before their first use, so each is lowered on its own",)


def test_deep_input_compiles_from_a_thread_with_a_small_stack():
    """The front end runs on a thread of its own with room for MAX_DEPTH levels, whatever the caller's stack."""
    results: list = []
    previous = threading.stack_size(256 * 1024)
    try:
        t = threading.Thread(target=lambda: results.append(bmc.compile_string(DEEP["calls"])))
        t.start()
        t.join()
    finally:
        threading.stack_size(previous)
    assert len(results) == 1
    assert deep.RECURSION_LIMIT >= MAX_DEPTH * deep.FRAMES_PER_LEVEL


def test_the_recursion_limit_is_restored_after_compiling():
    before = __import__("sys").getrecursionlimit()
    bmc.compile_string(DEEP["calls"])
    with pytest.raises(BmcError):
        bmc.compile_string(model("relu(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH))
    assert __import__("sys").getrecursionlimit() == before


# ---- literals ---------------------------------------------------------------------------------------------------


def test_an_integer_of_4400_digits_is_a_located_error():
    e = error_of(model("x * " + "1" * 4400))
    assert e.message == ("the integer 11111111111111111111... (4400 digits) is too large: integers are at most "
                         "9223372036854775807 (2**63 - 1)")
    assert (e.span.line, e.span.column, e.span.end_column) == (3, 20, 20 + 4400)


def test_integers_are_64_bit():
    bmc.compile_string(model("x * (9223372036854775807 - 9223372036854775806)"))
    assert "too large" in error_of(model("x * 9223372036854775808")).message
    for expr in ("x * 2 ** 63", "x * (4611686018427387904 * 2)", "x * -(-9223372036854775807 - 1)"):
        assert error_of(model(expr)).message == "number too large", expr


def test_constant_arithmetic_cannot_run_away():
    """10 ** 10 ** 10 would compute a ten-billion-digit integer; it is an error, at once."""
    e = error_of(model("x * 10 ** 10 ** 10"))
    assert e.message == "number too large"
    assert e.span.text() == "10 ** 10 ** 10"
    assert error_of(model("x * (1e300 * 1e300)")).message == "number too large"
    assert error_of(model("x * (-8) ** 0.5")).message.startswith("this is the complex number")


def test_a_float_literal_that_rounds_to_infinity_is_an_error():
    e = error_of(model("x * 1e999"))
    assert e.message == "the number 1e999 is too large: floats are at most about 1.8e308"
    assert e.span.text() == "1e999"


def data_of(string_literal: str) -> str:
    text = model("x") + f"train m {{\n    data = {string_literal}\n}}\n"
    return bmc.compile_string(text).config.data


@pytest.mark.parametrize("literal, value", [
    ('"données\\x41.npz"', "donnéesA.npz"),  # non-ASCII text and an escape: decoded by character, not by byte
    ('"a\\\\b"', "a\\b"),
    ('"say \\"hi\\""', 'say "hi"'),
    ('"tab\\there\\nline"', "tab\there\nline"),
    ('"\\u00e9t\\u00e9 \\U0001F600"', "été 😀"),
    ('"日本語.npz"', "日本語.npz"),
    ('"C:\\data"', "C:\\data"),  # an unknown escape stays as written, as in Python
])
@pytest.mark.filterwarnings("error")  # Python's own decoder warns about an unknown escape: bmc does not ask it
def test_string_escapes(literal, value):
    assert data_of(literal) == value


@pytest.mark.parametrize("literal", ['"\\x"', '"données\\x4g"', '"é\\u12"'])
def test_an_incomplete_escape_is_an_error_at_its_string(literal):
    with pytest.raises(BmcError) as info:
        data_of(literal)
    assert info.value.message.startswith("bad escape '\\")
    assert info.value.span.text() == literal


# ---- files that are not UTF-8 -------------------------------------------------------------------------------------


def test_a_file_that_is_not_utf8_names_the_line_and_column_of_the_first_bad_byte(tmp_path, capsys):
    path = tmp_path / "latin1.bm"
    path.write_bytes("model m {\n    # café crème\n    input x: f32[N, 4]\n    output y = x\n}\n".encode("latin-1"))
    code = main(["check", str(path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err == (f"{path}:2:10: error: this file is not UTF-8: byte 0xe9 cannot start or continue a UTF-8 "
                   "character\n"
                   "        # caf\ufffd cr\ufffdme\n"
                   "             ^\n"
                   "note: save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)\n")


def test_the_column_of_a_bad_byte_counts_characters(tmp_path):
    path = tmp_path / "mixed.bm"
    path.write_bytes("model m { # été ".encode() + b"\xff\n")
    with pytest.raises(BmcError) as info:
        bmc.compile(path)
    assert (info.value.span.line, info.value.span.column) == (1, 17)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.bm"
    path.write_bytes(b"\xef\xbb\xbf" + model("relu(x)").encode("utf-8"))
    assert bmc.compile(path).compiled.model.outputs == ["y"]


# ---- defines ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("define, message", [
    ("k=" + "9" * 5000, "-D k: " + "9" * 30 + "... is too large: integers are at most 9223372036854775807"),
    ("k=-9223372036854775809", "-D k: -9223372036854775809 is too large: integers are at most 9223372036854775807"),
    ("k=lots", "-D k: 'lots' is not a number"),
])
def test_defines_are_64_bit_integers_or_floats(define, message, tmp_path, capsys):
    path = tmp_path / "m.bm"
    path.write_text("model m(k = 1) {\n    input x: f32[N, 4]\n    output y = x * k\n}\n", encoding="utf-8")
    assert main(["check", str(path), "-D", define]) == 1
    assert capsys.readouterr().err == f"error: {message}\n"


@pytest.mark.parametrize("value", ["nan", "inf", "-1e999"])
def test_a_non_finite_define_is_refused_by_the_domain_of_the_argument_it_reaches(value, tmp_path, capsys):
    path = tmp_path / "m.bm"
    path.write_text("model m(k = 1) {\n    input x: f32[N, 4]\n    output y = dense(x, k)\n}\n", encoding="utf-8")
    assert main(["check", str(path), "-D", f"k={value}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:3:25: error: dense's units must be a positive integer of at most 2147483647, not ")


def test_api_defines_are_checked_too():
    text = "model m(k = 1) {\n    input x: f32[N, 4]\n    output y = x * k\n}\n"
    for bad in (2**70, -(2**63) - 1, "lots", True, None):
        with pytest.raises(UsageError):
            bmc.compile_string(text, defines={"k": bad})


# ---- domains --------------------------------------------------------------------------------------------------


def test_number_domains_describe_themselves_and_reject_what_is_outside():
    assert SIZE.describe() == "a positive integer of at most 2147483647"
    assert FRACTION.describe() == "a number in [0, 1)"
    assert POSITIVE.describe() == "a positive number"
    assert Number(0, integer=True).describe() == "an integer of at least 0"
    assert Number(0, 255, integer=True).describe() == "an integer from 0 to 255"
    for domain, bad in ((SIZE, 0), (SIZE, 2**31), (SIZE, 2.0), (FRACTION, 1.0), (POSITIVE, 0.0),
                        (POSITIVE, float("inf")), (FRACTION, float("nan")), (POSITIVE, True)):
        with pytest.raises(BmcError):
            domain.check(bad, "it", None)
    value = Number(0).check(-0.0, "std", None)
    assert value == 0 and np.copysign(1.0, value) == 1.0  # -0.0 is 0: numpy refuses a normal of scale -0.0


def test_initializers_draw_from_their_arguments_domains(tmp_path):
    """A negative std or a reversed range crashed `bmc build` inside NumPy; both are now errors at the argument."""
    def param(init: str) -> str:
        return f"model m {{\n    input x: f32[N, 4]\n    param W: f32[4, 2] ~ {init}\n    output y = x @ W\n}}\n"

    e = error_of(param("normal(std = -1)"))
    assert (e.message, e.span.text()) == ("normal's std must be a number of at least 0, not -1", "-1")
    e = error_of(param("uniform(1, 0)"))
    assert (e.message, e.span.text()) == ("uniform's low 1 is greater than its high 0", "1")
    assert error_of(param("uniform(-1e308, 1e308)")).message == "uniform's range high - low is too large for a float"
    bmc.compile_string(param("normal(std = -0.0)")).build(tmp_path / "zero_std")  # a constant: the mean


# ---- memory --------------------------------------------------------------------------------------------------


def test_a_parameter_larger_than_memory_is_a_located_error_naming_it():
    text = "model m {\n    input x: f32[N, 4]\n    param W: f32[4, 2000000000, 2000000000] = 0\n    output y = x\n}\n"
    e = error_of(text, memory_limit="16G")
    assert e.message == ("parameter 'W' (f32[4, 2000000000, 2000000000]) needs 55.5 EiB, more than the memory "
                         "limit of 16 GiB")
    assert e.span.line == 3
    assert e.notes == ("16 GiB is the limit given; set another with --memory-limit SIZE (memory_limit= in Python), "
                       "e.g. --memory-limit 2T",)


def test_the_default_limit_is_this_machines_memory():
    assert 0 < memory.machine_memory() < memory.UNLIMITED
    assert bmc.compile_string(model("relu(x)")).compiled.memory_limit == memory.machine_memory()


def test_the_default_limit_is_at_most_the_address_space_limit():
    # the fuzzer's workers run under `ulimit -v 4G`: a one-hot of 8 GiB per sample passed the check (this machine
    # has more) and ran out of memory in the generated module
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (3 << 30, resource.RLIM_INFINITY)); "
            "from bmc import memory; print(memory.machine_memory(), memory._mapped())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    limit, mapped = map(int, out.split())
    assert 0 < mapped < 1 << 30 and (3 << 30) - mapped - (64 << 20) <= limit <= (3 << 30) - mapped + (64 << 20)


def test_the_one_hot_kernel_allocates_only_its_result():
    labels = np.array([[0, 3], [-1, 7], [2, 4]])
    got = kernels._one_hot(labels, 4, np.float32)
    np.testing.assert_array_equal(got, (labels[..., None] == np.arange(4)).astype(np.float32))  # out of range: 0
    tracemalloc.start()
    kernels._one_hot(np.arange(8), 1_000_000, np.float32)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1.2 * 8 * 4_000_000


def test_activations_count_per_sample_at_compile_time_and_per_batch_in_training():
    """8 MiB of activations per sample fit a 64 MiB limit at compile time; a batch of 64 does not."""
    text = ("model m(features = 64) {\n    input x: f32[N, features]\n    target t: i64[N]\n"
            "    h = one_hot(t, 1000000)\n    logits = dense(x, 10)\n    output p = softmax(logits)\n"
            "    loss = cross_entropy(logits, t) + mean(h)\n}\n")
    m = bmc.compile_string(text, memory_limit="64M")
    with pytest.raises(BmcError) as info:
        m.train("digits", epochs=1, log=lambda s: None, progress=False)
    e = info.value
    assert e.message.startswith("training this model needs ")
    assert e.message.endswith(", more than the memory limit of 64 MiB")
    assert e.span.text() == "one_hot(t, 1000000)"
    assert "per sample, batch 64" in e.notes[0]


@pytest.mark.parametrize("text, size", [("64G", 64 * 2**30), ("512MiB", 512 * 2**20), ("1.5k", 1536),
                                        ("1000000", 10**6), ("none", memory.UNLIMITED)])
def test_memory_limit_sizes(text, size):
    assert memory.parse_size(text) == size


def test_a_bad_memory_limit_is_a_usage_error(capsys, tmp_path):
    path = tmp_path / "m.bm"
    path.write_text(model("relu(x)"), encoding="utf-8")
    assert main(["check", str(path), "--memory-limit", "lots"]) == 1
    assert capsys.readouterr().err == ("error: memory limit 'lots' is not a size: write e.g. 64G, 512M or 1000000 "
                                       "(bytes), or none\n")


def test_initializers_draw_in_the_parameters_dtype(monkeypatch):
    """A float32 parameter is drawn a block at a time into float32: the values of one float64 draw, rounded,
    without a float64 copy of the whole parameter."""
    monkeypatch.setattr(init, "BLOCK", 7)
    for kind in (init.Init("normal", {"mean": 0.5, "std": 2.0}), init.Init("glorot_uniform")):
        small = init.sample(kind, (5, 9), "f32", init.generator(0, "W"))
        wide = init.sample(kind, (5, 9), "f64", init.generator(0, "W"))
        assert small.dtype == np.float32 and wide.dtype == np.float64
        np.testing.assert_array_equal(small, wide.astype(np.float32))
    monkeypatch.undo()
    tracemalloc.start()
    out = init.sample(init.Init("normal"), (4, 2**21), "f32", init.generator(0, "W"))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert out.nbytes == 32 * 2**20
    assert peak < out.nbytes + 2 * init.BLOCK * 8 + 2**20  # the output and a block of scratch, no float64 copy


# ---- graph size ------------------------------------------------------------------------------------------------


def test_results_with_a_dim_past_the_limit_are_errors_where_they_are_made():
    e = error_of(model("conv2d(reshape(x, [N, 1, 2, 2]), 2, 1, padding = 2147483647)"))
    assert e.message == "this gives f32[N, 2, 4294967296, 4294967296], a dim larger than 2147483647"


def test_the_number_of_operations_is_bounded(monkeypatch):
    from bmc.frontend import lower

    monkeypatch.setattr(lower, "MAX_NODES", 50)
    text = model("repeat(100, block(x))", "layer block(x: f32[N, d]) {\n    return relu(x)\n}\n")
    e = error_of(text)
    assert e.message == "this model has more than 50 operations; bmc compiles models up to that size"
