"""Hostile names and text never become code (README: "What bmc guarantees about generated code").

File and folder names, `.bm` names (models, layers, inputs, params, statements, dims), `.bm` source lines, string
literals and `-D` values reach the generated NumPy module and model.cu only as mangled identifiers, escaped
literals or one-line comments. So a hostile build is the clean build with other names: its code, with comments and
string literals taken out, is the same; it computes the same numbers; and nothing it carries runs.
"""

from __future__ import annotations

import ast
import json
import keyword
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from bmc.backends.cuda import build as cuda_build
from bmc.backends.cuda import ctext, nvcc
from bmc.backends.cuda.runtime import CudaUnavailableError, Library, require_device
from bmc.backends.onnx import check, inference_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bmc
import bmc.cli
from bmc.compiler import source_name
from bmc.diagnostics import BmcError
from bmc.reference import pytext
from bmc.runtime import load_source
from tests.conftest import ROOT
from tests.cuda_emulator import emulate

needs_gxx = pytest.mark.skipif(emulate.compiler() is None, reason="no g++ for the CUDA emulator")
needs_nvcc = pytest.mark.skipif(nvcc.find_nvcc() is None, reason="nvcc is not installed")

MLP = (ROOT / "examples/mlp.bm").read_text(encoding="utf-8")
SMALL = {"features": 6, "hidden": 5, "classes": 3}


# ---- what "the same code" means ------------------------------------------------------------------------------------


class _Blank(ast.NodeTransformer):
    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        return ast.Constant("") if isinstance(node.value, str) else node


def python_code(source: str) -> str:
    """The module's code without its text: the AST (comments are not in it) with every string constant blanked."""
    return ast.dump(_Blank().visit(ast.parse(source)))


C_TEXT = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'', re.S)


def c_code(source: str) -> str:
    """model.cu without its text, read as the preprocessor reads it: line splices joined first, then comments and
    string and character literals (leftmost first, so a `//` inside a string is string) blanked, and its
    whitespace one space (a longer name only continues a comment on more lines)."""
    return " ".join(C_TEXT.sub(lambda m: '""' if m.group()[0] in "\"'" else " ", source.replace("\\\n", "")).split())


def c_shape(source: str) -> str:
    """model.cu's code with every identifier the same: what is left is the code's structure."""
    return re.sub(r"\b[A-Za-z_][A-Za-z0-9_]*\b", "x", c_code(source))


def numpy_source(path: Path | str, text: str = MLP, defines=None) -> str:
    return bmc.compile_string(text, filename=str(path), defines=defines or SMALL).generate("numpy")


def cuda_source(path: Path | str, text: str = MLP, defines=None) -> str:
    return bmc.compile_string(text, filename=str(path), defines=defines or SMALL).generate("cuda")


# ---- the exploit: a file name that wrote C into line 1 of model.cu -------------------------------------------------

# slash-free, so it fits in one file or folder name; loading the library would create ./PWNED
C_PAYLOAD = ('x\n#include <stdio.h>\n__attribute__((constructor)) static void bmc_pwn(void) '
             '{ FILE* f = fopen("PWNED", "w"); if (f) fclose(f); }\n#pragma bmc ')
PY_PAYLOAD = "x\nopen('PWNED', 'w').close()\n#"


@needs_gxx
def test_a_file_or_folder_name_cannot_add_code_to_model_cu(tmp_path, monkeypatch):
    """Before the fix, line 1 of model.cu quoted the path raw: this name, as a folder or as the file, added a
    constructor that ran when the build was loaded (`bmc eval`, `bmc.load`, `train --backend cuda`), before the
    device check."""
    folder = tmp_path / C_PAYLOAD
    folder.mkdir()
    path = folder / (C_PAYLOAD + ".bm")
    path.write_text(MLP, encoding="utf-8")
    model = bmc.compile(path, defines=SMALL)
    prog = cuda_build.program(model)
    lines = prog.source.splitlines()
    assert lines[0].startswith("// Model mlp, compiled by bmc")
    header = lines[:next(i for i, line in enumerate(lines) if not line.startswith("//"))]  # a comment, wrapped
    assert " ".join(header).count("__attribute__((constructor))") == 2  # quoted, inside the comment
    assert c_code(prog.source) == c_code(cuda_source("mlp.bm"))
    monkeypatch.chdir(tmp_path)
    session = Library(emulate.build(prog.source), prog.manifest).session()
    assert not (tmp_path / "PWNED").exists()
    params, _ = model.init_params(0)
    session.load(params)
    x = np.random.default_rng(0).random((4, SMALL["features"]), dtype=np.float32)
    want = load_source(model.generate()).forward(params, x)["probs"]
    np.testing.assert_allclose(session.run("forward", {"image": x})["probs"], want, rtol=1e-4, atol=1e-6)


def test_a_file_name_cannot_add_code_to_the_numpy_module(tmp_path, monkeypatch):
    path = tmp_path / (PY_PAYLOAD + ".bm")
    path.write_text(MLP, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    module = load_source(numpy_source(path))
    assert not (tmp_path / "PWNED").exists()
    assert str(path) == module.SOURCE


@needs_gxx
def test_without_a_device_no_build_library_is_loaded(tmp_path, monkeypatch):
    """`bmc eval` / `bmc.load` of a CUDA build asks the CUDA driver for a device before loading the build's library:
    on a machine that cannot run it, no code of the build runs (its initializers included)."""
    try:
        require_device()
        pytest.skip("a CUDA device is present, so loading the library is what should happen")
    except CudaUnavailableError:
        pass
    out = cuda_build.build(bmc.compile("examples/mlp.bm", defines=SMALL), tmp_path / "build", seed=0,
                           require_library=False)
    (tmp_path / "lib.c").write_text('#include <stdio.h>\n__attribute__((constructor)) static void f(void) '
                                    '{ fclose(fopen("PWNED", "w")); }\n', encoding="utf-8")
    subprocess.run([emulate.compiler(), "-shared", "-fPIC", "-x", "c", str(tmp_path / "lib.c"), "-o",
                    str(out / "model.so")], check=True)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["cuda"]["library"] = "model.so"
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CudaUnavailableError, match="no CUDA driver/device"):
        cuda_build.load(out)
    with pytest.raises(CudaUnavailableError):
        bmc.load(out)
    assert not (tmp_path / "PWNED").exists()


# ---- file and folder names -------------------------------------------------------------------------------------------

HOSTILE_FILE_NAMES = [
    "new\nline", "carriage\rreturn", "crlf\r\n", "line\u2028separator", "para\u2029graph", "next\x85line",
    "form\x0cfeed", "vertical\x0btab", "tab\tstop", "control\x01\x1b[31m\x7f", 'quote"', "apostrophe'", 'three"""',
    "three'''", "back\\slash", "ends with \\", "trigraph??/", "comment */ end", "/* open", "star*", "bidi\u202eevil",
    "bom\ufeff", "zero\u200bwidth", "emoji\U0001f642", "caf\u00e9", "{{ jinja }}", "{% raw %}", "%s %d", "-- -x",
    os.fsdecode(b"undecodable\xff\xfe"),
]


@pytest.mark.parametrize("name", HOSTILE_FILE_NAMES, ids=ascii)
def test_a_hostile_file_name_changes_only_comments_and_strings(tmp_path, name):
    path = f"{tmp_path}/{name}/{name}.bm"  # as a folder and as a file: the API takes any name; the CLI below
    python = numpy_source(path)
    assert python_code(python) == python_code(numpy_source("mlp.bm"))
    assert source_name(path) == load_source(python).SOURCE
    assert c_code(cuda_source(path)) == c_code(cuda_source("mlp.bm"))
    proto = inference_model(bmc.compile_string(MLP, filename=path, defines=SMALL))
    check(proto)
    assert onnx.load_from_string(proto.SerializeToString()).doc_string == proto.doc_string


@pytest.mark.parametrize("name", ["new\nline \u2028 ends with \\", os.fsdecode(b"odd\xff") + "\u202e"], ids=ascii)
def test_bmc_build_takes_a_hostile_path_for_every_target(tmp_path, name, monkeypatch):
    """The CLI end to end, with the name as folder and file: build for numpy and onnx, check, ir; model.cu and its
    manifest (nvcc compiles the hostile names' model.cu below); the NumPy build predicts as the clean one."""
    folder = tmp_path / name
    folder.mkdir()
    path = folder / f"{name}.bm"
    path.write_text(MLP, encoding="utf-8")
    defines = [f"-D{k}={v}" for k, v in SMALL.items()]
    assert bmc.cli.main(["build", str(path), *defines, "-o", str(tmp_path / "numpy")]) == 0
    assert bmc.cli.main(["build", str(path), *defines, "--target", "onnx", "-o", str(tmp_path / "onnx")]) == 0
    assert bmc.cli.main(["check", str(path), *defines]) == 0
    assert bmc.cli.main(["ir", str(path), *defines]) == 0
    monkeypatch.setattr(nvcc, "find_nvcc", lambda: None)  # the source and manifest only, quickly
    cuda_build.build(bmc.compile(path, defines=SMALL), tmp_path / "cuda", require_library=False)
    assert json.loads((tmp_path / "cuda/manifest.json").read_text(encoding="utf-8"))["source"] == source_name(str(path))
    x = np.random.default_rng(1).random((3, SMALL["features"]), dtype=np.float32)
    clean = load_source(bmc.compile("examples/mlp.bm", defines=SMALL).generate())
    loaded = bmc.load(tmp_path / "numpy")
    np.testing.assert_array_equal(loaded.predict(x)["probs"], clean.forward(loaded.params, x)["probs"])


HOSTILE_LINES = ["# */ closes a C comment", "# ends with a backslash \\", "# ends with a trigraph ??/",
                 "# a line\u2028separator", "# carriage\rreturn", "# form\x0cfeed", "# bidi \u202e reversed",
                 '# """ and \'\'\' and "', "# {{ jinja }} {% if %}"]


@pytest.mark.parametrize("comment", HOSTILE_LINES, ids=ascii)
def test_bm_text_quoted_in_comments_cannot_end_them(comment):
    """Every generated comment quotes its `.bm` line (`# file.bm:7: h = ...`, `//   h = ...`)."""
    text = MLP.replace("h      = relu(dense(image, hidden))", "h      = relu(dense(image, hidden))  " + comment)
    assert python_code(numpy_source("mlp.bm", text)) == python_code(numpy_source("mlp.bm"))
    cuda = cuda_source("mlp.bm", text)
    assert c_code(cuda) == c_code(cuda_source("mlp.bm"))
    assert all(not line.rstrip().endswith(("\\", "??/")) for line in cuda.splitlines() if "//" in line)


def test_a_comment_quotes_the_line_the_parser_counted():
    """Only a newline ends a `.bm` line: a U+2028 or `\\r` in a comment does not shift the lines quoted after it."""
    text = MLP.replace("# `features` is set", "# \u2028 \r `features` is set")
    source = numpy_source("mlp.bm", text)
    assert "# mlp.bm:8: logits = dense(h, classes)" in source


# ---- .bm names that meet the generated code's names ----------------------------------------------------------------

# Each is a keyword, a builtin, a name of the generated module or of its helpers, a C or CUDA library name or macro,
# a name of the generated C, or a name that the mangling could make equal to another.
HOSTILE = ["lambda", "np", "params", "_softmax", "float", "memcpy", "exp", "N", "n", "__init__", "True", "int",
           "printf", "main", "t0", "os", "INPUTS", "InputError", "forward", "state", "batch", "match", "str", "range",
           "ctx", "dims", "acc", "i", "threadIdx", "bmc_ctx", "k0_x", "EOF", "NULL", "linux", "y0", "u_int",
           "errno", "v_N", "a__b", "a_b", "_", "None", "run_forward", "off", "arena"]

# a layer, a model with parameters, two dims, inputs, a target, a param, statements and outputs, all hostile
PROGRAM = """
layer main(float, int = 3) {
    printf = dense(float, int)
    return relu(printf)
}

model lambda(np = 4, params = 3) {
    input  _softmax: f32[N, np]
    input  memcpy: f32[n, np]
    target True: i64[N]
    param  __init__: f32[np] ~ normal(0.1)
    exp     = main(_softmax + __init__, params)
    forward = main(memcpy * y0, params)
    a__b    = exp * 2.0
    a_b     = exp + a__b
    y0      = 0.5
    output t0 = softmax(a_b)
    output v_N = sum(forward) + sum(exp)
    loss    = cross_entropy(a_b, True)
}

train lambda {
    data      = "evil\\"; import os; os.system(\\"touch PWNED\\") #.npz"
    optimizer = adam(lr = 1e-3)
}
"""
WORD = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")


def renamed(text: str, names: list[str]) -> str:
    """The clean twin: every hostile word replaced by a plain one (`q0`, `q1`, ...)."""
    table = {name: f"q{k}" for k, name in enumerate(names)}
    return WORD.sub(lambda m: table.get(m.group(), m.group()), text)


def copies(arrays: dict) -> dict:
    return {k: v.copy() for k, v in arrays.items()}


def twin_params(params: dict, names: list[str]) -> dict:
    return {renamed(k, names): v for k, v in params.items()}


@pytest.fixture(scope="module")
def hostile():
    model = bmc.compile_string(PROGRAM, filename="hostile.bm")
    twin = bmc.compile_string(renamed(PROGRAM, HOSTILE), filename="hostile.bm")
    params, state = model.init_params(0)
    rng = np.random.default_rng(0)
    batch = {"_softmax": rng.random((5, 4), dtype=np.float32), "memcpy": rng.random((2, 4), dtype=np.float32),
             "True": rng.integers(0, 3, 5)}
    return model, twin, params, state, batch


def test_hostile_names_build_and_compute_what_clean_names_do(hostile):
    model, twin, params, state, batch = hostile
    mod, twin_mod = load_source(model.generate()), load_source(twin.generate())
    out = mod.forward(params, batch["_softmax"], batch["memcpy"])
    want = twin_mod.forward(twin_params(params, HOSTILE), batch["_softmax"], batch["memcpy"])
    assert list(out) == ["t0", "v_N"]
    for key in out:
        np.testing.assert_array_equal(out[key], want[renamed(key, HOSTILE)])
    p, s = copies(params), copies(state)  # train_step updates them in place
    tp, ts = twin_params(copies(params), HOSTILE), twin_params(copies(state), HOSTILE)
    got = mod.train_step(p, s, batch, 1e-2)
    ref = twin_mod.train_step(tp, ts, {renamed(k, HOSTILE): v for k, v in batch.items()}, 1e-2)
    assert got["loss"] == ref["loss"]
    for k in p:
        np.testing.assert_array_equal(p[k], tp[renamed(k, HOSTILE)])


def test_no_hostile_name_reaches_the_module_unmangled(hostile):
    """Every identifier the module binds is its own or a mangled name: none is a keyword, a builtin or one of the
    module's own names, except where the module itself defines it."""
    model = hostile[0]
    tree = ast.parse(model.generate())
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        bound = {a.arg for a in fn.args.args} | {t.id for n in ast.walk(fn) if isinstance(n, ast.Assign)
                                                 for t in n.targets if isinstance(t, ast.Name)}
        for name in bound - pytext.MODULE_NAMES:
            assert name not in pytext.TAKEN and not name.startswith("_"), (fn.name, name)


@needs_gxx
def test_hostile_names_compile_for_cuda_and_compute_what_numpy_does(hostile):
    model, _, params, state, batch = hostile
    prog = cuda_build.program(model)
    session = Library(emulate.build(prog.source), prog.manifest).session()
    session.load(params, state)
    want = load_source(model.generate()).forward(params, batch["_softmax"], batch["memcpy"])
    got = session.run("forward", {"_softmax": batch["_softmax"], "memcpy": batch["memcpy"]})
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6)
    train = session.run("train_step", batch, {"lr": 1e-2})
    ref = load_source(model.generate()).train_step(copies(params), copies(state), batch, 1e-2)
    np.testing.assert_allclose(train["loss"], ref["loss"], rtol=1e-5)


@pytest.mark.slow
@needs_nvcc
def test_hostile_names_compile_with_nvcc(hostile):
    nvcc.compile_library(cuda_build.program(hostile[0]).source)


@pytest.mark.parametrize("name", [*HOSTILE, *sorted(pytext.TAKEN)[::4], "9lives", "a.b", "adam.m/h.W"])
def test_python_identifiers_never_meet_keywords_builtins_or_the_module_names(name):
    ident = pytext.identifier(name)
    assert ident.isidentifier() and not keyword.iskeyword(ident) and ident not in pytext.TAKEN
    assert not ident.startswith("_")  # helpers and generated functions do
    assert ident == name or name in pytext.TAKEN or not name.isidentifier() or name.startswith("_")


@pytest.mark.parametrize("name", [*HOSTILE, "9lives", "a.b", "adam.m/h.W", "__", ""])
def test_c_identifiers_are_prefixed_and_never_reserved(name):
    ident = ctext.c_identifier(name)
    assert ident.startswith(ctext.USER_PREFIX) and re.fullmatch(r"[A-Za-z0-9_]+", ident) and "__" not in ident


@pytest.mark.parametrize("example", sorted(p.stem for p in (ROOT / "examples").glob("*.bm")))
def test_a_generated_module_defines_only_its_own_names(example):
    """The module-level names are MODULE_NAMES and `_` names, which `pytext.identifier` never gives."""
    tree = ast.parse(bmc.compile(f"examples/{example}.bm").generate())
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names = [t.id for t in node.targets]
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names = [node.name]
        elif isinstance(node, ast.Import):
            names = [a.asname or a.name for a in node.names]
        else:
            assert isinstance(node, ast.Expr)  # the docstring
            continue
        assert all(n in pytext.MODULE_NAMES or n.startswith("_") for n in names), names


def _includes() -> str:
    source = cuda_source("mlp.bm")
    return "".join(line + "\n" for line in source.splitlines() if line.startswith("#include"))


def _header_names(command: list[str], macros: list[str], tmp_path: Path) -> set[str]:
    (tmp_path / "inc.cu").write_text(_includes(), encoding="utf-8")
    names: set[str] = set()
    for extra in ([], macros):  # the declarations, then every macro defined
        out = subprocess.run([*command, *extra, str(tmp_path / "inc.cu")], capture_output=True, text=True,
                             check=True).stdout
        names |= set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*", out))
    assert len(names) > 1000  # the headers were read
    return names


@needs_gxx
def test_no_name_the_emulator_headers_declare_has_the_user_prefix(tmp_path):
    names = _header_names([emulate.compiler(), "-E", "-x", "c++", "-std=c++17", "-I", str(emulate.HERE)], ["-dM"],
                          tmp_path)
    assert not {n for n in names if n.startswith(ctext.USER_PREFIX)}


@needs_nvcc
def test_no_name_the_cuda_headers_declare_has_the_user_prefix(tmp_path):
    names = _header_names([nvcc.find_nvcc(), "-E", "-x", "cu"], ["-Xcompiler", "-dM"], tmp_path)
    assert "memcpy" in names and "cudaMalloc" in names
    assert not {n for n in names if n.startswith(ctext.USER_PREFIX)}


@pytest.mark.parametrize("example", sorted(p.stem for p in (ROOT / "examples").glob("*.bm")))
def test_model_cu_uses_the_user_prefix_only_for_user_names(example, monkeypatch):
    """With another prefix for user names, no identifier of model.cu starts with `v_`: the generated code's own
    names never do, so they cannot meet a user's."""
    monkeypatch.setattr(ctext, "USER_PREFIX", "userzz_")
    code = c_code(bmc.compile(f"examples/{example}.bm").generate("cuda"))
    assert "userzz_" in code and not re.findall(r"\bv_\w*", code)


# ---- string literals and -D values ---------------------------------------------------------------------------------


def test_a_data_path_string_reaches_no_code(hostile):
    model = hostile[0]
    assert model.compiled.config.data == 'evil"; import os; os.system("touch PWNED") #.npz'
    clean = bmc.compile_string(PROGRAM.replace(PROGRAM.split("data      = ")[1].split("\n")[0], '"clean.npz"'),
                               filename="hostile.bm")
    assert python_code(model.generate()) == python_code(clean.generate())
    assert c_code(model.generate("cuda")) == c_code(clean.generate("cuda"))


@pytest.mark.parametrize("escape", ["\\x", "\\u12", "\\N{NO SUCH NAME}"])
def test_a_bad_escape_in_a_string_is_a_located_error(escape):
    text = MLP.replace("data      = fashion_mnist", f'data      = "a{escape}b"')
    with pytest.raises(BmcError, match="bad escape") as err:
        bmc.compile_string(text, filename="mlp.bm")
    assert err.value.span.line == 15


@pytest.mark.parametrize("value", ["4\nimport os", "4; os.system('x')", "4 #", "0x10", "__import__('os')", "1e999",
                                   "nan", "inf"])
def test_a_hostile_define_is_an_error_or_a_number(tmp_path, value, capsys):
    rc = bmc.cli.main(["build", "examples/mlp.bm", f"-Dhidden={value}", "-o", str(tmp_path / "out")])
    assert rc == 1 and "error" in capsys.readouterr().err


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e-320, -0.0])
def test_a_float_define_is_a_literal_in_every_target(value):
    text = "model m(s = 2.0) {\n    input x: f32[N, 4]\n    output y = maximum(x, s) + x * s\n}\n"
    model = bmc.compile_string(text, filename="m.bm", defines={"s": value})
    x = np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)
    with np.errstate(all="ignore"):
        y = load_source(model.generate()).forward({}, x)["y"]
        np.testing.assert_array_equal(y, (np.maximum(x, np.float32(value)) + x * np.float32(value)))
    assert not re.search(r"\b(nan|inf)\b", c_code(model.generate("cuda")))  # NAN, INFINITY: names C has


# ---- fuzzing: any name, any text ---------------------------------------------------------------------------------

FORWARD = ("model m(features = 6, hidden = 5, classes = 3) {\n    input x: f32[N, features]\n"
           "    h = tanh(dense(x, hidden))  # the line\n    output y = softmax(dense(h, classes))\n}\n")
CLEAN_PY, CLEAN_C = python_code(numpy_source("m.bm", FORWARD)), c_code(cuda_source("m.bm", FORWARD))
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40) | st.lists(
    st.integers(0, 255), max_size=12).map(lambda bs: os.fsdecode(bytes(b for b in bs if b not in b"\0/")))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=any_text, line=st.text(st.characters(exclude_characters="\n"), max_size=40))
def test_fuzzed_file_names_and_bm_text_change_only_comments_and_strings(name, line):
    text = FORWARD.replace("# the line", "# " + line)
    python = numpy_source(name + ".bm", text)
    assert python_code(python) == CLEAN_PY
    assert source_name(name + ".bm") == load_source(python).SOURCE
    assert c_code(cuda_source(name + ".bm", text)) == CLEAN_C


POOL = HOSTILE + sorted(pytext.TAKEN)[::7] + ["q", "x1", "N_1", "t1", "v_v_N", "k3_h"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(POOL) | st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True), min_size=5,
                max_size=5, unique=True))
def test_fuzzed_bm_names_compute_what_clean_names_do(names):
    """Five names drawn from the hostile pool or at random, for a dim, an input, a param, a statement and an
    output; the module computes what the clean twin does and model.cu has the twin's code."""
    dim, x, w, h, out = names
    text = (f"model m {{\n    input {x}: f32[{dim}, 3]\n    param {w}: f32[3] ~ normal(0.5)\n"
            f"    {h} = tanh({x} * {w})\n    output {out} = sum({h})\n}}\n")
    clean = "model m {\n    input qx: f32[qd, 3]\n    param qw: f32[3] ~ normal(0.5)\n    qh = tanh(qx * qw)\n" \
            "    output qo = sum(qh)\n}\n"
    try:
        model = bmc.compile_string(text, filename="m.bm")
    except BmcError as e:  # a name the language itself refuses (a keyword of .bm): refused at its place
        assert e.span is not None
        return
    twin = bmc.compile_string(clean, filename="m.bm")
    xs = np.random.default_rng(0).random((2, 3), dtype=np.float32)
    wv = np.random.default_rng(1).random(3, dtype=np.float32)
    got = load_source(model.generate()).forward({w: wv}, xs)[out]
    np.testing.assert_array_equal(got, load_source(twin.generate()).forward({"qw": wv}, xs)["qo"])
    assert c_shape(model.generate("cuda")) == c_shape(twin.generate("cuda"))
