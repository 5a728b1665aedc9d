"""The generated NumPy module: golden text, determinism, standalone import, no code injection."""

from __future__ import annotations

import ast
import subprocess
import sys

import numpy as np
import pytest

import bmc
import bmc.cli
from tests.conftest import ROOT, UPDATE

GOLDEN = ROOT / "tests" / "golden"


@pytest.mark.parametrize("example", ["mlp", "logistic_regression", "residual_mlp"])
def test_generated_module_matches_golden(example):
    source = bmc.compile(f"examples/{example}.bm").generate("numpy")
    golden = GOLDEN / f"{example}_model.py"
    if UPDATE:
        golden.write_text(source, encoding="utf-8")
    assert source == golden.read_text(encoding="utf-8"), f"regenerate with BMC_UPDATE_EXPECTED=1 ({golden})"


def test_generation_is_deterministic():
    a = bmc.compile("examples/mlp.bm").generate("numpy")
    b = bmc.compile("examples/mlp.bm").generate("numpy")
    assert a == b


def test_generated_module_imports_only_numpy():
    source = bmc.compile("examples/residual_mlp.bm").generate("numpy")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    assert imported <= {"numpy", "os"}


def test_generated_module_points_back_to_the_source():
    source = bmc.compile("examples/mlp.bm").generate("numpy")
    assert "# examples/mlp.bm:7: h      = relu(dense(image, hidden))" in source
    assert "# examples/mlp.bm:16: optimizer = adam(lr = 1e-3)" in source


def test_names_cannot_inject_code(tmp_path):
    """Names become identifiers or repr() strings; source text reaches only single-line comments."""
    text = (
        'model m(import = 3) {\n'
        '    input class: f32[N, 4]\n'
        '    target y: i64[N]\n'
        '    def = dense(class, 3)   # """; import os; os.system("echo pwned")\n'
        '    output probs = softmax(def)\n'
        '    loss = cross_entropy(def, y)\n'
        '}\n'
    )
    path = tmp_path / 'evil"""\nimport os.bm'
    path.write_text(text, encoding="utf-8")
    source = bmc.compile(path).generate("numpy")
    compile(source, "<generated>", "exec")  # still valid Python
    module = ast.parse(source)
    calls = [n for n in ast.walk(module) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "system"]
    assert not calls
    assert "class_ = " in source and "def_ = " in source


def test_build_runs_in_plain_python(tmp_path):
    """Acceptance: the built module needs only NumPy and predicts like `bmc eval` (a separate interpreter)."""
    out = tmp_path / "mlp"
    assert bmc.cli.main(["build", "examples/mlp.bm", "-D", "features=64", "-o", str(out)]) == 0
    x = np.random.default_rng(0).random((5, 64), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {str(out)!r})\n"
        "import model\n"
        "assert 'bmc' not in sys.modules\n"
        f"p = model.forward(model.load_params(), np.load({str(tmp_path / 'x.npy')!r}))['probs']\n"
        f"np.save({str(tmp_path / 'p.npy')!r}, p)\n"
    )
    subprocess.run([sys.executable, "-I", "-c", script], check=True, cwd=tmp_path)
    expected = bmc.load(out).predict(x)["probs"]
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), expected)


# ---- generated-code hygiene (issue 10): lines, dead names, repeated functions ------------------------------------

ALL_EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.bm"))


@pytest.fixture(scope="module", params=ALL_EXAMPLES)
def example_module(request) -> str:
    return bmc.compile(ROOT / "examples" / f"{request.param}.bm").generate()


def test_generated_lines_fit_in_120_columns(example_module):
    assert [line for line in example_module.splitlines() if len(line) > 120] == []


def test_generated_functions_bind_only_what_they_read(example_module):
    """An output nobody reads (a scan's unused history) is bound to `_`, not to a temporary."""
    tree = ast.parse(example_module)
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        names = [n for n in ast.walk(fn) if isinstance(n, ast.Name)]
        stored = {n.id for n in names if isinstance(n.ctx, ast.Store)}
        read = {n.id for n in names if not isinstance(n.ctx, ast.Store)}
        assert stored - read <= {"_"}, fn.name


def test_no_function_is_generated_twice(example_module):
    tree = ast.parse(example_module)
    bodies = [ast.dump(ast.Module(fn.body, [])) for fn in tree.body if isinstance(fn, ast.FunctionDef)]
    assert len(bodies) == len(set(bodies))


def test_wrapping_changes_only_the_layout():
    from bmc.backends.numpy.wrap import wrap_source

    long = ("def f(a, b):\n    x = g(a, 'first words of a long message that goes on and on', b, "
            "'and a second string ' + str(a) + ' that does too', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])\n"
            "    return x, a, b, g(a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, a)\n"
            '    """a docstring line, which stays as it is, however long it is, and it is very long indeed here"""\n')
    wrapped = wrap_source(long, width=60)
    assert ast.dump(ast.parse(wrapped)) == ast.dump(ast.parse(long.replace("return x, a, b, g(", "return (x, a, b, g(")
                                                              .replace("a)\n    \"\"\"", "a))\n    \"\"\"")))
    assert all(len(line) <= 60 for line in wrapped.splitlines() if '"""' not in line)
    short = "def f(a):\n    return g(a, 'a message', a)  # a comment\n"
    assert wrap_source(short) == short  # a line that fits is left as it is
