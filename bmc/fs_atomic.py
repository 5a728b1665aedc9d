"""The file-system steps behind atomic writes: temporaries bmc can recognize, an atomic directory swap, fsyncs.

bmc writes a new directory or file beside its final place under a temporary name `.NAME.bmc-new-PID-TOKEN` (the
writing process's id and a random token) and then puts it in place in one step:

- a new NAME: `rename` (with `RENAME_NOREPLACE` on Linux, so a directory that appeared meanwhile is never replaced);
- an existing directory NAME: Linux `renameat2(RENAME_EXCHANGE)` swaps the two directories atomically, so NAME is
  the complete old or the complete new one at every instant; the old one, now under the temporary name, is then
  removed. Where the swap is not available (another OS, a file system without it) the old directory is first renamed
  to `.NAME.bmc-old-PID-TOKEN`: for the moment between the two renames NAME is missing, and the next write (or
  `recover`) after a crash there renames the old build back.

A process killed at any step leaves at most such a temporary behind. `recover` removes the ones whose process is
gone, and nothing else: only names of exactly that form, only pids that no longer run on this machine.

Every step that changes the file system goes through `step(what)` first: a no-op, except that a test sets `hook` to
kill the process before a chosen step (tests/test_build_kill.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import re
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

hook: Callable[[str], None] | None = None  # called before every file-system step; set only by tests

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
SYSCALL_RENAMEAT2 = {"x86_64": 316, "aarch64": 276}  # where libc has no renameat2 wrapper (glibc < 2.28)


def step(what: str) -> None:
    if hook is not None:
        hook(what)


# ---- temporaries ---------------------------------------------------------------------------------------------------

def temp_name(name: str, kind: str) -> str:
    """`.NAME.bmc-new-PID-TOKEN` (being written) or `.NAME.bmc-old-PID-TOKEN` (an old build moved aside)."""
    return f".{name}.bmc-{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _temp_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(name)}\.bmc-(new|old)-([0-9]+)-[0-9a-f]{{8}}")


def process_alive(pid: int) -> bool:
    """Whether `pid` runs on this machine (this process counts: another thread may be writing)."""
    if pid == os.getpid():
        return True
    if pid <= 0 or pid >= 2**31:
        return False  # no process has such an id (and os.kill(0, ...) would mean this process group)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def stale_temporaries(path: Path) -> list[tuple[str, Path]]:
    """(kind, path) of the temporaries for `path` whose writing process is gone, newest first."""
    pattern = _temp_pattern(path.name)
    found = []
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return []
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m and not process_alive(int(m.group(2))):
            with contextlib.suppress(FileNotFoundError):  # another bmc removed it just now
                found.append((entry.stat(follow_symlinks=False).st_mtime_ns, m.group(1), Path(entry.path)))
    return [(kind, p) for _, kind, p in sorted(found, key=lambda t: t[0], reverse=True)]


def recover(path: Path, complete: Callable[[Path], bool] = lambda p: True) -> None:
    """Undo what a killed write of `path` left: restore an old build that was moved aside when `path` is missing
    (possible only without an atomic swap) if it is `complete` (not partly removed), then remove the stale
    temporaries."""
    stale = stale_temporaries(path)
    if not os.path.lexists(path):
        old = next((p for kind, p in stale if kind == "old" and complete(p)), None)
        if old is not None:
            step(f"restore {old.name}")
            if rename_noreplace(old, path):
                stale = [(k, p) for k, p in stale if p != old]
                fsync_dir(path.parent)
    for _, p in stale:
        remove(p, missing_ok=True)


def remove(path: Path, missing_ok: bool = False) -> None:
    """Remove a file or a directory tree bmc wrote, one entry per step; symbolic links are removed, not followed.
    `missing_ok`: entries that vanish meanwhile (another bmc cleaning the same leftovers) are no error."""
    try:
        if path.is_dir() and not path.is_symlink():
            for entry in os.scandir(path):
                remove(Path(entry.path), missing_ok)
            step(f"rmdir {path.name}")
            os.rmdir(path)
        else:
            step(f"unlink {path.parent.name}/{path.name}")
            os.unlink(path)
    except FileNotFoundError:
        if not missing_ok:
            raise


# ---- renames -------------------------------------------------------------------------------------------------------

def _renameat2(use_libc: bool = True) -> Callable[[bytes, bytes, int], int] | None:
    """renameat2(AT_FDCWD, src, AT_FDCWD, dst, flags): libc's wrapper, or the raw system call where libc has none."""
    if sys.platform != "linux":
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None) if use_libc else None
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        fn.restype = ctypes.c_int
        return lambda a, b, flags: fn(AT_FDCWD, a, AT_FDCWD, b, flags)
    number = SYSCALL_RENAMEAT2.get(platform.machine())
    if number is None:
        return None
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    return lambda a, b, flags: syscall(ctypes.c_long(number), ctypes.c_int(AT_FDCWD), ctypes.c_char_p(a),
                                       ctypes.c_int(AT_FDCWD), ctypes.c_char_p(b), ctypes.c_uint(flags))


RENAMEAT2 = _renameat2()


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2 with `flags`; False where the system or the file system does not support them."""
    if RENAMEAT2 is None:
        return False
    if RENAMEAT2(os.fsencode(src), os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step; False where that is not supported."""
    step(f"exchange {a.name} {b.name}")
    return _rename2(a, b, RENAME_EXCHANGE)


def rename_noreplace(src: Path, dst: Path) -> bool:
    """Rename `src` to `dst` unless `dst` exists (False then). Without RENAME_NOREPLACE a plain rename, which can
    only replace an empty directory that appeared meanwhile."""
    try:
        if _rename2(src, dst, RENAME_NOREPLACE):
            return True
    except FileExistsError:
        return False
    if os.path.lexists(dst) and not (dst.is_dir() and not dst.is_symlink() and not any(dst.iterdir())):
        return False
    os.rename(src, dst)
    return True


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable; a file system that cannot fsync a directory
    (some network and FUSE ones) gives what durability it has."""
    step(f"fsync {path.name or path}/")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def install_dir(tmp: Path, path: Path) -> None:
    """Put the complete directory `tmp` at `path`, replacing the directory there (see the module docstring)."""
    parent = path.parent
    if not os.path.lexists(path):
        step(f"rename {tmp.name} {path.name}")
        if not rename_noreplace(tmp, path):
            raise FileExistsError(errno.EEXIST, "it appeared while bmc was writing", str(path))
        fsync_dir(parent)
        return
    if exchange(tmp, path):  # tmp now holds the old directory
        fsync_dir(parent)
        remove(tmp)
        return
    old = parent / temp_name(path.name, "old")
    step(f"rename {path.name} {old.name}")
    os.rename(path, old)
    step(f"rename {tmp.name} {path.name}")
    os.rename(tmp, path)
    fsync_dir(parent)
    remove(old)


def remove_quietly(path: Path) -> None:
    """Remove a temporary after a failed write; a failure here must not hide the original error."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)
