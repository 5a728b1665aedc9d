"""Build directories are written atomically; bad input never touches an existing build."""

from __future__ import annotations

import pytest

import bmc
import bmc.cli
from bmc.artifacts import write_build
from bmc.diagnostics import UsageError


def test_failed_build_leaves_existing_build_untouched(tmp_path, capsys):
    out = tmp_path / "b"
    assert bmc.cli.main(["build", "examples/mlp.bm", "-o", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.bm"
    bad.write_text("model m { input x: f32[N, 3]\n output y = relu(z) }\n")
    assert bmc.cli.main(["build", str(bad), "-o", str(out)]) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "bad.bm"]  # no temporary left behind


def test_interrupted_write_leaves_nothing(tmp_path):
    class Boom(bytes):
        pass

    out = tmp_path / "b"
    with pytest.raises(TypeError):
        write_build(out, {"model.py": "x = 1\n", "params.npz": object()})  # fails midway
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_directory_that_is_not_a_build(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(UsageError, match="not a bmc build"):
        bmc.compile("examples/mlp.bm").build(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_unwritable_output_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert bmc.cli.main(["build", "examples/mlp.bm", "-o", str(blocker / "sub")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write to") and "Traceback" not in err
