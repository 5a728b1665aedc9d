"""`bmc fmt FILE... [--check] [--diff]`: rewrite `.bm` files in the canonical layout (bmc/syntax/format.py).

A file is rewritten only when its layout changes, atomically (`artifacts.write_file`: the old text or the new one,
never half of either) and with its permission bits kept. `--check` writes nothing and exits 1 listing the files that
would change; `--diff` writes nothing and prints what would change; `-` reads standard input and writes the result
to standard output. A file that does not parse is reported (`file:line:col: error: ...`), the others are still done,
and the exit status is 1.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path

from bmc.diagnostics import BmcError, UsageError
from bmc.syntax.format import format_source

STDIN = "-"
MAX_BYTES = 16 * 2**20  # as bmc.compiler.MAX_SOURCE_BYTES: a .bm file is text a person writes


def run(files: list[str], check: bool = False, diff: bool = False) -> int:
    status = 0
    for name in files:
        try:
            changed = _one(name, check, diff)
        except BmcError as e:
            print(e.render(), file=sys.stderr)
            status = 1
            continue
        if changed and check:
            if not diff:
                print("<stdin>" if name == STDIN else name)
            status = 1
    return status


def _one(name: str, check: bool, diff: bool) -> bool:
    """Format one file (or standard input); whether its text changes."""
    from bmc.compiler import decode_source

    shown = "<stdin>" if name == STDIN else name
    data = sys.stdin.buffer.read() if name == STDIN else _read(Path(name))
    new = format_source(decode_source(data, shown), shown)
    changed = new.encode("utf-8") != data
    if diff and changed:
        sys.stdout.writelines(difflib.unified_diff(_lines(data.decode("utf-8")), _lines(new), shown, shown))
    if name == STDIN:
        if not check and not diff:
            sys.stdout.write(new)
    elif changed and not check and not diff:
        _write(Path(name), new)
        print(f"reformatted {name}", file=sys.stderr)
    return changed


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise UsageError(f"{path} is larger than {MAX_BYTES // 2**20} MiB; is it a .bm file?")
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory") from None
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from None


def _write(path: Path, text: str) -> None:
    from bmc import artifacts

    mode = path.stat().st_mode & 0o7777
    artifacts.write_file(path, text)
    try:
        os.chmod(path, mode)
    except OSError as e:
        raise UsageError(f"cannot keep the permissions of {path}: {e.strerror or e}") from None


def _lines(text: str) -> list[str]:
    """Lines as the parser counts them (only `\\n` ends one), each with its newline; a missing last one is shown."""
    lines = [line + "\n" for line in text.split("\n")]
    if lines[-1] == "\n":
        lines.pop()
    else:
        lines[-1] = lines[-1] + "\\ No newline at end of file\n"
    return lines
