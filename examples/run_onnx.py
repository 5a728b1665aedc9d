"""Classify test images with an exported model in plain onnxruntime: nothing from bmc is needed.

    bmc build examples/mlp.bm --target onnx -o build/mlp_onnx --params build/mlp
    python examples/run_onnx.py build/mlp_onnx/model.onnx                 # Fashion-MNIST's test set (IDX files)
    python examples/run_onnx.py build/mlp_onnx/model.onnx test.npz        # x_test, y_test from a .npz
It classifies one image alone (batch 1), then the whole test set in batches of 1000. The images are fed raw, as
the files store them (uint8 pixels 0..255): a trained model scales and standardizes its input itself, as its
"preprocess" metadata says.
"""

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def idx(path: Path) -> np.ndarray:
    """An array from an IDX file (MNIST's format), gzipped or not."""
    data = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    ndim = data[3]
    shape = np.frombuffer(data, ">u4", ndim, 4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def test_set(spec: str) -> tuple[np.ndarray, np.ndarray]:
    if spec.endswith(".npz"):
        with np.load(spec) as f:
            return f["x_test"], f["y_test"]
    d = Path(spec)
    image, label = (next(d.glob(f"t10k-{k}-idx?-ubyte*")) for k in ("images", "labels"))
    return idx(image), idx(label)


session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
images, labels = test_set(sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist")
x = images.astype(np.float32)  # raw pixels: no scaling here
(image_input,) = session.get_inputs()
x = x.reshape(len(x), *image_input.shape[1:])  # e.g. [N, 784] or [N, 1, 28, 28]: the batch dim is symbolic
one = session.run(None, {image_input.name: x[:1]})[0]  # batch 1
print(f"image 0: class {int(one.argmax())} (label {int(labels[0])})")
scores = np.concatenate([session.run(None, {image_input.name: x[i:i + 1000]})[0] for i in range(0, len(x), 1000)])
accuracy = float(np.mean(scores.argmax(axis=1) == labels))
print(f"{len(x)} test images in batches of 1000, input '{image_input.name}' {list(x.shape)}: accuracy {accuracy:.4f}")
contract = session.get_modelmeta().custom_metadata_map.get("preprocess")
if contract:
    record = json.loads(contract)
    print(f"the model takes raw samples ({record['raw']}) and computes {record['computes']}")
