"""A build directory survives SIGKILL at any step: it is always the complete old or the complete new build, and the
next run leaves nothing stray beside it.

A forked writer kills itself (SIGKILL, no cleanup of any kind) just before its k-th file-system step, for every k
until a writer gets through; fs_atomic.hook is the instrument."""

from __future__ import annotations

import functools
import itertools
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from bmc import artifacts, fs_atomic


def build(version: int) -> tuple[dict, dict]:
    files = {"model.py": f"VERSION = {version}\n", "params.npz": {"w": np.full((4, 3), version, np.float32)},
             "state.npz": {"m": np.arange(version + 5, dtype=np.float64)}}
    return files, {"bmc_version": "test", "model": "m", "version": version}


def snapshot(path: Path) -> dict[str, bytes] | None:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())} if path.is_dir() else None


def reference(tmp_path: Path, version: int) -> dict[str, bytes]:
    """What a build of `version` holds, written without interruption elsewhere (writes are deterministic)."""
    return snapshot(artifacts.write_build(tmp_path / f"reference{version}", *build(version)))


def killed_writer(out: Path, version: int, k: int, swap: bool = True) -> tuple[bool, list[str]]:
    """Write build `version` to `out` in a child that SIGKILLs itself before step k: (killed, the steps it began)."""
    def write() -> None:
        if not swap:
            fs_atomic.RENAMEAT2 = None  # the fallback: no renameat2 on this system
        artifacts.write_build(out, *build(version))

    return killed_at(k, write, out.parent / f"steps-{k}.log")


def killed_at(k: int, write, log: Path) -> tuple[bool, list[str]]:
    """Run `write` in a forked child that SIGKILLs itself before its k-th step: (killed, the steps it began)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            counter = itertools.count()

            def hook(what: str) -> None:
                with open(log, "a") as f:
                    f.write(what + "\n")
                if next(counter) == k:
                    os.kill(os.getpid(), signal.SIGKILL)

            fs_atomic.hook = hook
            write()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    steps = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, steps


def strays(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


def kill_at_every_step(tmp_path: Path, replace: bool, leftovers: bool = False, swap: bool = True) -> list[str]:
    """Kill a writer at every step in turn; check the directory after each kill and after the next run."""
    old, new = (reference(tmp_path, 1) if replace else None), reference(tmp_path, 2)
    for k in itertools.count():
        root = tmp_path / f"{k}"
        root.mkdir()
        out = root / "build"
        if replace:
            artifacts.write_build(out, *build(1))
        if leftovers:  # an earlier writer, killed half way through, left its temporaries
            assert killed_writer(out, 3, 8, swap)[0] and strays(out)
        killed, steps = killed_writer(out, 2, k, swap)
        now = snapshot(out)
        if swap:
            assert now in (old, new), f"killed before {steps[-1]!r}: {out} is neither the old nor the new build"
        else:  # between the two renames the build is missing; the next run puts the old one back first
            artifacts.check_target(out)
            assert snapshot(out) in (old, new), f"killed before {steps[-1]!r}: not recovered"
        assert all(name.startswith(".build.bmc-") for name in strays(out)), strays(out)
        if not killed:
            assert now == new and strays(out) == []
            return steps
        artifacts.write_build(out, *build(2))  # the next run
        assert snapshot(out) == new and strays(out) == [], f"after a kill before {steps[-1]!r}"
    raise AssertionError("unreachable")


def test_a_new_build_is_absent_or_complete_at_every_kill_point(tmp_path):
    steps = kill_at_every_step(tmp_path, replace=False)
    assert len(steps) >= 16 and any(s.startswith("rename .build.bmc-new-") for s in steps), steps


def test_a_replaced_build_is_old_or_new_at_every_kill_point(tmp_path):
    steps = kill_at_every_step(tmp_path, replace=True)
    assert any(s.startswith("exchange") for s in steps) and any(s.startswith("unlink") for s in steps), steps


def test_leftovers_of_a_killed_run_are_cleaned_even_when_that_is_interrupted(tmp_path):
    steps = kill_at_every_step(tmp_path, replace=True, leftovers=True)
    assert any(s.startswith("rmdir .build.bmc-new-") for s in steps[:12]), steps  # the leftovers go first


def test_without_an_atomic_swap_the_next_run_restores_the_old_build(tmp_path):
    steps = kill_at_every_step(tmp_path, replace=True, swap=False)
    assert any(s.startswith("rename build .build.bmc-old-") for s in steps), steps


@pytest.mark.skipif(fs_atomic.RENAMEAT2 is None, reason="renameat2 is Linux-only")
@pytest.mark.parametrize("use_libc", [True, False], ids=["libc", "syscall"])
def test_renameat2_swaps_two_directories_and_never_replaces_without_asking(tmp_path, monkeypatch, use_libc):
    rename2 = fs_atomic._renameat2(use_libc)
    if rename2 is None:
        pytest.skip("no renameat2 system call number known for this machine")
    monkeypatch.setattr(fs_atomic, "RENAMEAT2", rename2)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.mkdir()
    (a / "x").write_text("a")
    b.mkdir()
    assert fs_atomic.exchange(a, b)
    assert (b / "x").read_text() == "a" and not any(a.iterdir())
    assert not fs_atomic.rename_noreplace(a, b) and (b / "x").exists()  # b exists: left alone
    assert fs_atomic.rename_noreplace(a, c) and c.is_dir() and not a.exists()
    with pytest.raises(FileNotFoundError):
        fs_atomic.exchange(a, b)


def test_a_single_file_export_is_old_or_new_at_every_kill_point(tmp_path):
    """artifacts.write_file (an ONNX export): the same guarantee for one file."""
    for k in itertools.count():
        path = tmp_path / f"{k}" / "model.onnx"
        path.parent.mkdir()
        path.write_bytes(b"old")
        killed, steps = killed_at(k, functools.partial(artifacts.write_file, path, b"new"), tmp_path / "steps.log")
        assert path.read_bytes() in (b"old", b"new")
        artifacts.write_file(path, b"newer")
        assert [p.name for p in path.parent.iterdir()] == ["model.onnx"] and path.read_bytes() == b"newer"
        if not killed:
            assert any(s.startswith("rename .model.onnx.bmc-new-") for s in steps), steps
            return
