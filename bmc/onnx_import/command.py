"""`bmc import MODEL.onnx -o model.bm`: import, check the result compiles, write both files, say what to run next."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from bmc.onnx_import import import_onnx

    start = time.perf_counter()
    out = Path(args.out)
    params_out = Path(args.params_out) if args.params_out else out.with_name("params.npz")
    imported = import_onnx(args.onnx, name=args.name, loss=args.loss, params_file=params_out.name)
    bm, npz = imported.save(out, params_out)
    count = sum(int(v.size) for v in imported.params.values())
    print(f"wrote {bm} ({imported.statements} statements from {imported.nodes} ONNX nodes) and {npz} "
          f"({len(imported.params)} arrays, {count:,} values) in {time.perf_counter() - start:.2f} s")
    next_step = f"bmc train {bm} --params {npz}" if args.loss else f"bmc check {bm}"
    print(f"next: {next_step}")
    return 0
