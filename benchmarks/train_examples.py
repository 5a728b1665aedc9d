"""Train every example of the seed on its real data and print accuracy and time per epoch: the figures of the
README's example table. Run from the repository root: `python benchmarks/train_examples.py [NAME ...]`.
Needs Fashion-MNIST (`apt-get install dataset-fashion-mnist`) and Debian's license texts for char_lm."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before NumPy loads: one BLAS thread, as bmc's default
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bmc

EXAMPLES = ["mlp", "cnn", "gru", "lstm", "rnn", "vit", "char_lm"]


def main(names: list[str]) -> None:
    rows = []
    for name in names or EXAMPLES:
        model = bmc.compile(f"examples/{name}.bm")
        build = model.train(progress=False, log=lambda line, n=name: print(f"[{n}] {line}", flush=True))
        final = build.history.final
        seconds = sum(e.seconds for e in build.history.epochs) / len(build.history.epochs)
        label, scores = ("test", final.test) if final.test else ("valid", final.valid)
        score = scores.get("accuracy") or scores.get("perplexity")
        metric = "accuracy" if "accuracy" in scores else "perplexity"
        rows.append((name, len(build.history.epochs), final.step, f"{label} {metric}", score, seconds))
        build.save(f"build/examples/{name}")
    print(f"\n{'example':<10} {'epochs':>6} {'steps':>6}  {'metric':<20} {'value':>8}  {'s/epoch':>8}")
    for name, epochs, steps, metric, score, seconds in rows:
        print(f"{name:<10} {epochs:>6} {steps:>6}  {metric:<20} {score:>8.4f}  {seconds:>8.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
