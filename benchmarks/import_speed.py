"""`bmc import` on ONNX models of 500 and more nodes: seconds to write the .bm file (folding, rules, writing and the
compile that checks the result), against onnxruntime creating an inference session for the same file (what it
costs the most common ONNX consumer to load it), interleaved in one process, one thread.

    python benchmarks/import_speed.py                 # 500, 1000 and 2000 nodes, 5 rounds
    python benchmarks/import_speed.py --nodes 500 --rounds 3

The models are residual MLP blocks as exporters write them (MatMul, Add bias, Relu, Add residual: four nodes a
block, width 64, dynamic batch), so the importer folds dense layers and writes one statement per block.
"""

from __future__ import annotations

import common  # first: one BLAS thread and this checkout on the path, before NumPy loads

# isort: split

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from bmc.onnx_import import import_onnx


def residual_mlp(nodes: int, width: int = 64) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    out, inits, x = [], [], "x"
    for i in range(nodes // 4):
        w, b = f"/block{i}/fc/weight", f"/block{i}/fc/bias"
        inits += [numpy_helper.from_array((rng.standard_normal((width, width)) * 0.05).astype(np.float32), w),
                  numpy_helper.from_array(np.zeros(width, np.float32), b)]
        names = [f"/block{i}/{k}_output_0" for k in ("fc/MatMul", "fc/Add", "act/Relu", "Add")]
        out += [helper.make_node("MatMul", [x, w], [names[0]], name=f"/block{i}/fc/MatMul"),
                helper.make_node("Add", [names[0], b], [names[1]], name=f"/block{i}/fc/Add"),
                helper.make_node("Relu", [names[1]], [names[2]], name=f"/block{i}/act/Relu"),
                helper.make_node("Add", [x, names[2]], [names[3]], name=f"/block{i}/Add")]
        x = names[3]
    io = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", width]) for name in ("x", x)]
    graph = helper.make_graph(out, "residual_mlp", io[:1], io[1:], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, nargs="+", default=[500, 1000, 2000])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.nodes:
            path = Path(tmp) / f"mlp{n}.onnx"
            onnx.save(residual_mlp(n), path)
            import_onnx(path)  # warm-up: imports, caches
            ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            times: dict[str, list[float]] = {"bmc import": [], "onnxruntime session": []}
            for r in range(args.rounds):
                order = list(times) if r % 2 == 0 else list(times)[::-1]
                for system in order:
                    start = time.perf_counter()
                    if system == "bmc import":
                        imported = import_onnx(path)
                    else:
                        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                    times[system].append(time.perf_counter() - start)
            bm, rt = statistics.median(times["bmc import"]), statistics.median(times["onnxruntime session"])
            print(f"{n} nodes ({imported.statements} statements): bmc import median {bm:.3f} s "
                  f"(min {min(times['bmc import']):.3f}), onnxruntime session {rt:.3f} s; ratio bmc/ort {bm / rt:.1f}"
                  f"  [{common.load_average()}]")


if __name__ == "__main__":
    main()
