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
from bmc.runtime import keep_freed_memory  # noqa: E402

# as `bmc train` does: freed memory stays with the process, for every system measured here alike
KEEPS_FREED_MEMORY = keep_freed_memory()

TORCH_INSTALL = "pip install torch==2.13.0"
JAX_INSTALL = "pip install jax==0.10.2"  # or: pip install -e '.[bench]' (torch and jax, pinned)
DATA_INSTALL = "apt-get install dataset-fashion-mnist"
# XLA's CPU client sizes its thread pool from the CPUs this process may run on when it starts; this flag alone does
# not make jax 0.10 single-threaded (import_jax pins the process to one CPU while the client starts).
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false"


def import_torch(required: bool = True):
    """PyTorch on one thread; without it, an exit with the one install command that fits this machine (or, when
    not `required`, that command printed as the reason torch is skipped, and None)."""
    try:
        import torch
    except ImportError:
        why = (f"this benchmark needs PyTorch, which bmc does not depend on.\n"
               f"  install it with: {TORCH_INSTALL}\n"
               f"  (that exact version; plain `pip install torch` pulls a multi-GB CUDA build)")
        if required:
            sys.exit(f"error: {why}")
        print(f"note: skipping torch eager: {why}")
        return None
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


def import_jax():
    """JAX on one CPU thread, or None (with the install command printed) when it is not installed.

    XLA's CPU client sizes its intra-op thread pool from the CPUs this process may run on when the client starts, and
    jax 0.10 takes no flag for it (`--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1` leaves it at
    one thread per core): the process is pinned to one CPU while the client starts, then every thread (the pool's
    too, which inherited the pin) is unpinned."""
    flags = os.environ.get("XLA_FLAGS", "")
    if XLA_ONE_THREAD not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {XLA_ONE_THREAD}".strip()
    try:
        import jax
    except ImportError:
        print(f"note: skipping JAX: it is not installed (a benchmark-only extra); install it with: {JAX_INSTALL}")
        return None
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        jax.devices("cpu")  # starts the CPU client: its thread pool has one thread
    finally:
        for thread in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):  # a thread that has exited since the listing
                os.sched_setaffinity(int(thread), allowed)
    return jax


def numpy_calls(source: str, step) -> dict[str, int]:
    """How many NumPy operations one `step(module)` makes in a generated module (its source loaded apart, with
    counting added, so the timed module is untouched): `np.*` calls (functions and ufuncs, through a counting
    stand-in for the module's `np`), ndarray methods (`x.sum()`, `x.reshape()`: C calls on an array, from a profile
    hook), and operators and indexing on arrays (`a @ b`, `x >= 0`, `e /= s`, `x[i]`, `out[i] = v`: the source is
    rewritten so each such expression counts when its result is a NumPy array or scalar, or its subscripted value is
    an array; Python ints and dict lookups do not count)."""
    import ast
    import types

    counts = {"np": 0, "methods": 0, "operators": 0, "indexing": 0}
    filename = "<bmc numpy-call count>"

    def counted(value):
        if isinstance(value, np.ndarray | np.generic):
            counts["operators"] += 1
        return value

    def indexed(value):
        if isinstance(value, np.ndarray):
            counts["indexing"] += 1
        return value

    def call(name: str, node: ast.expr) -> ast.Call:
        return ast.Call(ast.Name(name, ast.Load()), [node], [])

    class Count(ast.NodeTransformer):
        def visit_BinOp(self, node):
            return call("_bm_counted", self.generic_visit(node))

        def visit_UnaryOp(self, node):
            return self.visit_BinOp(node)

        def visit_Compare(self, node):
            return self.visit_BinOp(node)

        def visit_Subscript(self, node):
            node = self.generic_visit(node)
            node.value = call("_bm_indexed", node.value)
            return node

        def visit_AugAssign(self, node):
            node = self.generic_visit(node)
            if isinstance(node.target, ast.Name):  # `e /= s`: count the result once it is assigned
                return [node, ast.Expr(call("_bm_counted", ast.Name(node.target.id, ast.Load())))]
            return node

    tree = ast.fix_missing_locations(Count().visit(ast.parse(source)))

    class CountingNumpy(types.ModuleType):
        def __getattribute__(self, attr):
            value = getattr(np, attr)
            if isinstance(value, np.ufunc) or (callable(value) and not isinstance(value, type)):
                def counted_call(*args, **kwargs):
                    counts["np"] += 1
                    return value(*args, **kwargs)
                return counted_call
            return value

    def profile(frame, event, arg):
        if event == "c_call" and frame.f_code.co_filename == filename and isinstance(getattr(arg, "__self__", None),
                                                                                     np.ndarray):
            counts["methods"] += 1

    module = types.ModuleType("bmc_numpy_call_count")
    module.__dict__.update(_bm_counted=counted, _bm_indexed=indexed)
    exec(compile(tree, filename, "exec"), module.__dict__)
    module.np = CountingNumpy("numpy")
    counts.update(dict.fromkeys(counts, 0))
    sys.setprofile(profile)
    try:
        step(module)
    finally:
        sys.setprofile(None)
    return counts
