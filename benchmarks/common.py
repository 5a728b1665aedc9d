"""What every benchmark script shares: one thread everywhere, the checkout under test on the path, PyTorch (not a
bmc dependency) and Fashion-MNIST with install hints, and the load average printed beside every figure.

Import it before NumPy, torch or onnxruntime: BLAS reads its thread count when it loads.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import contextlib  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

# Benchmark the checkout this script lives in (not whatever bmc is installed elsewhere).
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bmc.data import find_fashion_mnist, load_dataset  # noqa: E402
from bmc.diagnostics import DataError  # noqa: E402

TORCH_INSTALL = "pip install torch==2.13.0"
DATA_INSTALL = "apt-get install dataset-fashion-mnist"


def import_torch():
    """PyTorch on one thread, or an exit with the one install command that fits this machine."""
    try:
        import torch
    except ImportError:
        sys.exit(f"error: this benchmark needs PyTorch, which bmc does not depend on.\n"
                 f"  install it with: {TORCH_INSTALL}\n"
                 f"  (that exact version; plain `pip install torch` pulls a multi-GB CUDA build)")
    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):  # raises if already set; only possible before any parallel work
        torch.set_num_interop_threads(1)
    return torch


def load_data():
    """Fashion-MNIST as [n, 28, 28] float32 images in [0, 1] and int64 labels (train, then test)."""
    if find_fashion_mnist() is None:
        sys.exit(f"error: Fashion-MNIST is not installed; install it with: {DATA_INSTALL}")
    try:
        data = load_dataset("fashion_mnist")
    except DataError as e:
        sys.exit(f"error: cannot load Fashion-MNIST ({e}); install it with: {DATA_INSTALL}")
    images = [np.multiply(x, np.float32(data.scale), dtype=np.float32) for x in (data.x_train, data.x_test)]
    return images[0], data.y_train.astype(np.int64), images[1], data.y_test.astype(np.int64)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cpus)"


def tensor(torch, a: np.ndarray):
    """A torch tensor on a NumPy array's memory (contiguous)."""
    return torch.from_numpy(np.ascontiguousarray(a))
