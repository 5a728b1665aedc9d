"""Train an exported train step in plain onnxruntime: nothing from bmc is needed.

    bmc build examples/cnn.bm --target onnx --train -o build/cnn_onnx
    python examples/train_onnx.py build/cnn_onnx                     # Fashion-MNIST's training set (IDX files)
    python examples/train_onnx.py build/cnn_onnx train.npz 200 64    # x_train, y_train from a .npz; steps, batch

train_step.onnx takes the batch, every parameter and optimizer-state tensor by name, the learning rate `lr` and the
dropout key `rng`; it gives the loss, the outputs, and `params/NAME` and `state/NAME`, the updated values, which
feed the next step. It starts from the build's params.npz and state.npz and writes the trained parameters to
trained_params.npz beside them. A build of a trained model says in its "preprocess" metadata that it takes raw
pixels and scales them itself; an untrained build's pixels are scaled to [0, 1] here.
"""

import gzip
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def idx(path: Path) -> np.ndarray:
    data = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    ndim = data[3]
    shape = np.frombuffer(data, ">u4", ndim, 4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def train_set(spec: str) -> tuple[np.ndarray, np.ndarray]:
    if spec.endswith(".npz"):
        with np.load(spec) as f:
            return f["x_train"], f["y_train"]
    d = Path(spec)
    image, label = (next(d.glob(f"train-{k}-idx?-ubyte*")) for k in ("images", "labels"))
    return idx(image), idx(label)


build = Path(sys.argv[1])
images, labels = train_set(sys.argv[2] if len(sys.argv) > 2 else "/usr/share/datasets/fashion-mnist")
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 200
batch = int(sys.argv[4]) if len(sys.argv) > 4 else 64
lr = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-3

session = ort.InferenceSession(str(build / "train_step.onnx"), providers=["CPUExecutionProvider"])
with np.load(build / "params.npz") as f:
    params = {k: f[k] for k in f.files}
with np.load(build / "state.npz") as f:
    state = {k: f[k] for k in f.files}
inputs = {i.name: i for i in session.get_inputs()}
data = [n for n in inputs if n not in params and n not in state and n not in ("lr", "rng")]
image_input, label_input = data  # the model's input and its target, in that order
shape = [d if isinstance(d, int) else -1 for d in inputs[image_input].shape]
raw = "preprocess" in session.get_modelmeta().custom_metadata_map  # the train step scales raw pixels itself
x_all = images.astype(np.float32) if raw else images.astype(np.float32) / 255.0
x_all = x_all.reshape(len(x_all), *shape[1:])
y_all = labels.astype(np.int64)

rng = np.random.default_rng(0)
losses = []
for step in range(steps):
    pick = rng.integers(0, len(x_all), batch)
    feeds = {image_input: x_all[pick], label_input: y_all[pick], "lr": np.float32(lr), "rng": np.int64(step)}
    feeds = {k: v for k, v in feeds.items() if k in inputs}  # a model without dropout takes no rng
    feeds.update({k: v for k, v in params.items() if k in inputs})
    feeds.update({k: v for k, v in state.items() if k in inputs})
    feeds = {k: np.asarray(v, dtype=np.float32) if inputs[k].type == "tensor(float)" else np.asarray(v)
             for k, v in feeds.items()}
    names = [o.name for o in session.get_outputs()]
    for name, value in zip(names, session.run(names, feeds), strict=True):
        if name.startswith("params/"):
            params[name.removeprefix("params/")] = value
        elif name.startswith("state/"):
            state[name.removeprefix("state/")] = value
        elif name == "loss":
            losses.append(float(value))
    if step % 50 == 0 or step == steps - 1:
        print(f"step {step:5d}  loss {np.mean(losses[-50:]):.4f}")
np.savez(build / "trained_params.npz", **params)
print(f"first 20 steps' mean loss {np.mean(losses[:20]):.4f}, last 20 steps' {np.mean(losses[-20:]):.4f}")
