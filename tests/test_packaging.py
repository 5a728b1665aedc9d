"""The wheel holds the whole tree (setuptools' package-dir silently drops unlisted subpackages)."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from tests.conftest import ROOT

MAPPED = {"bmc": "bmc", "grammar": "bmc/grammar", "backends": "bmc/backends"}


def expected_files() -> set[str]:
    out = set()
    for top, dest in MAPPED.items():
        for path in (ROOT / top).rglob("*"):
            if path.suffix in (".py", ".lark", ".j2") and "__pycache__" not in path.parts:
                out.add(f"{dest}/{path.relative_to(ROOT / top).as_posix()}")
    return out


def test_wheel_contains_every_source_file(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                             str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("bmc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = expected_files() - names
    assert not missing, f"add these packages to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_import_from_another_directory(tmp_path):
    """The installed package, not a namespace package, is what `import bmc` finds outside the checkout."""
    code = "import bmc, bmc.backends.numpy, bmc.grammar; assert callable(bmc.compile); print(bmc.__version__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
