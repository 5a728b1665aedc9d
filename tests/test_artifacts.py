"""Build directories: bmc replaces only a build it wrote, checks that before any work, and writes atomically
(tests/test_build_kill.py kills the writer at every step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import bmc
import bmc.cli
from bmc import artifacts
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
    out = tmp_path / "b"
    with pytest.raises(TypeError):
        write_build(out, {"model.py": "x = 1\n", "params.npz": object()}, {})  # fails midway
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


def contents(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_a_directory_with_a_foreign_manifest_is_refused_and_untouched(tmp_path, capsys):
    """The directory of some other tool that happens to have a manifest.json: bmc used to replace it whole."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "manifest.json").write_text('{"name": "my app", "version": 3}\n')
    (mine / "data.csv").write_text("precious\n")
    before = contents(mine)
    assert bmc.cli.main(["build", "examples/mlp.bm", "-o", str(mine)]) == 1
    err = capsys.readouterr().err
    assert "is not a bmc build (its manifest.json was not written by bmc)" in err
    assert "note: it holds data.csv, manifest.json" in err
    assert contents(mine) == before and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_a_file_added_to_a_build_is_listed_and_the_build_kept(tmp_path):
    out = bmc.compile("examples/mlp.bm").build(tmp_path / "b")
    (out / "notes.txt").write_text("my notes")
    (out / "plot.png").write_bytes(b"\x89PNG")
    before = contents(out)
    with pytest.raises(UsageError, match=r"is a bmc build, but notes\.txt, plot\.png were not written by bmc"):
        bmc.compile("examples/mlp.bm").build(out)
    assert contents(out) == before


def test_a_file_edited_in_a_build_is_kept(tmp_path):
    out = bmc.compile("examples/mlp.bm").build(tmp_path / "b")
    with open(out / "model.py", "a") as f:
        f.write("# my fix\n")
    before = contents(out)
    with pytest.raises(UsageError, match=r"model\.py changed since bmc wrote it"):
        bmc.compile("examples/mlp.bm").build(out)
    assert contents(out) == before


def test_a_build_with_a_file_removed_is_replaced(tmp_path):
    model = bmc.compile("examples/mlp.bm")
    out = model.build(tmp_path / "b")
    expected = contents(out)
    (out / "state.npz").unlink()
    assert contents(model.build(out)) == expected


def test_a_build_of_an_older_bmc_is_recognized_by_its_file_names(tmp_path):
    """Builds written before the manifest listed its files: a manifest with bmc's keys and only bmc's file names."""
    model = bmc.compile("examples/mlp.bm")
    out = model.build(tmp_path / "b")
    expected = contents(out)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["bmc_build"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "model.py").write_text("# an older model\n")
    assert contents(model.build(out)) == expected
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "mine.txt").write_text("precious")
    with pytest.raises(UsageError, match=r"mine\.txt was not written by bmc"):
        model.build(out)


def test_train_refuses_a_bad_output_before_training(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.txt").write_text("x")
    assert bmc.cli.main(["train", "examples/mlp.bm", "--data", "digits", "--quiet", "-o", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert "is not a bmc build (it has no manifest.json)" in err
    assert "training" not in out + err and "epoch" not in out + err
    assert contents(bad) == {"a.txt": b"x"}


def test_a_symbolic_link_stays_a_link_to_the_new_build(tmp_path):
    model = bmc.compile("examples/mlp.bm")
    real = model.build(tmp_path / "real", seed=1)
    link = tmp_path / "link"
    link.symlink_to("real")
    assert model.build(link, seed=2) == link
    assert link.is_symlink() and os.readlink(link) == "real"
    assert contents(real) == contents(model.build(tmp_path / "expected", seed=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expected", "link", "real"]


def test_a_dangling_symbolic_link_is_refused(tmp_path):
    (tmp_path / "link").symlink_to("nowhere")
    with pytest.raises(UsageError, match=r"is a symbolic link to .*nowhere, which does not exist"):
        bmc.compile("examples/mlp.bm").build(tmp_path / "link")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link"]


def test_the_current_directory_is_not_replaced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="holds the current directory"):
        artifacts.check_target(".")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def test_only_bmc_temporaries_of_finished_processes_are_removed(tmp_path):
    out = tmp_path / "b"
    gone, alive = dead_pid(), os.getppid()
    for name in [f".b.bmc-new-{gone}-0123abcd", f".b.bmc-old-{gone}-89abcdef"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.py").write_text("partial")
    kept = [f".b.bmc-new-{alive}-0123abcd", f".b.bmc-new-{gone}-xyz", f".b.{gone}", ".b.old-1", ".c.bmc-new-1-0123abcd",
            f".b.bmc-new-{gone}-0123abcd.keep"]
    for name in kept:
        (tmp_path / name).mkdir()
    write_build(out, {"model.py": "x = 1\n"}, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*kept, "b"])


def test_an_old_build_moved_aside_is_restored_when_the_build_is_missing(tmp_path):
    """Without an atomic swap, a run killed between its two renames leaves no build but the old one aside."""
    old = write_build(tmp_path / "b", {"model.py": "old = 1\n", "params.npz": {"w": np.ones(3)}}, {})
    expected = contents(old)
    aside = tmp_path / f".b.bmc-old-{dead_pid()}-0123abcd"
    old.rename(aside)
    assert artifacts.check_target(old) == old.resolve()
    assert contents(old) == expected and sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_a_partly_removed_old_build_is_not_restored(tmp_path):
    old = write_build(tmp_path / "b", {"model.py": "old = 1\n", "params.npz": {"w": np.ones(3)}}, {})
    (old / "params.npz").unlink()
    old.rename(tmp_path / f".b.bmc-old-{dead_pid()}-0123abcd")
    artifacts.check_target(old)
    assert list(tmp_path.iterdir()) == []


def test_npz_files_hold_any_names_and_are_deterministic(tmp_path):
    arrays = {"file": np.arange(6.0).reshape(2, 3), "allow_pickle": np.array([1, 2], np.int8),
              "layer.w": np.zeros((0, 4), np.float16), "scalar": np.float32(2.5)}
    a = write_build(tmp_path / "a", {"params.npz": arrays}, {})
    b = write_build(tmp_path / "b", {"params.npz": arrays}, {})
    assert (a / "params.npz").read_bytes() == (b / "params.npz").read_bytes()
    loaded = artifacts.read_npz(a / "params.npz")
    assert list(loaded) == list(arrays)
    for name, value in arrays.items():
        assert loaded[name].dtype == value.dtype and np.array_equal(loaded[name], value)


def test_npz_files_are_streamed_not_built_in_memory(tmp_path):
    big = {"w": np.ones((40, 1 << 18))}  # 80 MiB
    tracemalloc.start()
    try:
        write_build(tmp_path / "b", {"params.npz": big}, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < big["w"].nbytes / 2, f"writing used {peak / 2**20:.0f} MiB"
    assert np.array_equal(artifacts.read_npz(tmp_path / "b" / "params.npz")["w"], big["w"])


def test_a_new_build_directory_has_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    out = write_build(tmp_path / "b", {"model.py": "x = 1\n"}, {})
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (out / "model.py").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_single_file_write_keeps_a_symbolic_link(tmp_path):
    (tmp_path / "real.onnx").write_bytes(b"old")
    (tmp_path / "model.onnx").symlink_to("real.onnx")
    artifacts.write_file(tmp_path / "model.onnx", b"new")
    assert (tmp_path / "model.onnx").is_symlink() and (tmp_path / "real.onnx").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "real.onnx"]


def test_a_stale_old_temporary_that_is_not_a_directory_is_removed_not_restored(tmp_path):
    (tmp_path / f".b.bmc-old-{dead_pid()}-0123abcd").write_text("not a build")
    assert artifacts.check_target(tmp_path / "b") == (tmp_path / "b").resolve()
    assert list(tmp_path.iterdir()) == []
