"""Generate text with an exported character-level model (char_lm.bm) in plain onnxruntime: nothing from bmc is
needed. The vocabulary and the context window are read from the model's metadata.

    bmc train examples/char_lm.bm -o build/char_lm
    bmc build examples/char_lm.bm --target onnx --params build/char_lm -o build/char_lm_onnx
    python examples/generate_onnx.py build/char_lm_onnx/model.onnx "This License" 300
"""

import json
import sys

import numpy as np
import onnxruntime as ort

path, prompt = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
length = int(sys.argv[3]) if len(sys.argv) > 3 else 200
temperature, seed = 0.8, 0

session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
vocab, window = json.loads(meta["vocab"]), json.loads(meta["window"])
index = {ch: i for i, ch in enumerate(vocab)}
(tokens,) = session.get_inputs()

ids = [index[ch] for ch in prompt if ch in index] or [0]
rng = np.random.default_rng(seed)
for _ in range(length):
    context = np.asarray([ids[-window:]], dtype=np.int64)  # [1, T]: batch and length are symbolic dims
    probs = session.run(None, {tokens.name: context})[0][0, -1].astype(np.float64)
    logits = np.log(np.maximum(probs, 1e-30)) / temperature
    p = np.exp(logits - logits.max())
    ids.append(int(rng.choice(len(p), p=p / p.sum())))
print(prompt + "".join(vocab[i] for i in ids[len(ids) - length:]))
