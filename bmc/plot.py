"""`bmc plot RUN -o curves.png`: the losses, metrics and learning rate of a training run, drawn with matplotlib.

RUN is a trained build (its manifest keeps the run's history) or a log written by `bmc train --log FILE.csv` or
`--log FILE.jsonl`. One panel for the losses (train, validation, test), one for the other metrics, one for the
learning rate, each against the epoch.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from bmc import artifacts
from bmc.diagnostics import UsageError
from bmc.train.logs import FIXED, row
from bmc.train.loop import EpochLog

FORMATS = ("png", "svg", "pdf")


def read_run(run: str | Path) -> list[dict[str, float]]:
    """The run's epochs as rows of numbers by column name (logs.row's names)."""
    path = Path(run)
    if path.is_dir():
        manifest = path / "manifest.json"
        if not manifest.is_file():
            raise UsageError(f"{path} is not a build directory (it has no manifest.json)",
                             notes=("pass a build written by `bmc train -o DIR`, or a --log FILE.csv/.jsonl",))
        history = artifacts.read_manifest(path).get("training", {}).get("history")
        if not history:
            raise UsageError(f"the build {path} was not trained, so it has no curves to draw",
                             notes=("train it with `bmc train FILE.bm -o DIR`",))
        return [row(EpochLog(**e)) for e in history]
    if not path.is_file():
        raise UsageError(f"{path}: no such build directory or log file")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".jsonl":
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}:{e.lineno}: not a JSON line: {e.msg}") from None
    elif path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        raise UsageError(f"{path}: a run is a build directory, a .csv or a .jsonl log")
    out = [{k: _number(v) for k, v in r.items() if k} for r in rows if isinstance(r, dict)]
    if not out or "epoch" not in out[0]:
        raise UsageError(f"{path} has no epochs: it is not a log written by `bmc train --log`")
    return out


def _number(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def panels(rows: list[dict[str, float]]) -> dict[str, list[str]]:
    """The columns each panel draws: losses (loss, val_loss, test_loss and perplexities), metrics, lr."""
    names = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in FIXED or k in ("loss", "lr")]
    loss_like = [k for k in names if k.removeprefix("val_").removeprefix("test_") in ("loss", "perplexity")]
    metrics = [k for k in names if k not in loss_like and k != "lr"]
    out = {"loss": loss_like, "metrics": metrics}
    if any(r.get("lr", 0) for r in rows):
        out["learning rate"] = ["lr"]
    return {k: v for k, v in out.items() if v}


def plot(rows: list[dict[str, float]], out: str | Path, title: str) -> Path:
    """Draw the curves into `out` (.png, .svg or .pdf), written atomically."""
    path = Path(out)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise UsageError(f"cannot tell the picture's format from '{out}'",
                         notes=(f"end the output's name with one of: {', '.join('.' + f for f in FORMATS)}",))
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    from matplotlib.figure import Figure

    shown = panels(rows)
    fig = Figure(figsize=(5 * len(shown), 3.8), layout="constrained")
    fig.suptitle(title)
    epochs = [r["epoch"] for r in rows]
    for ax, (name, columns) in zip(fig.subplots(1, len(shown), squeeze=False)[0], shown.items(), strict=True):
        for c in columns:
            ys = [r.get(c, math.nan) for r in rows]
            marker = "o" if len(rows) < 30 or sum(not math.isnan(y) for y in ys) == 1 else None
            ax.plot(epochs, ys, label=c, marker=marker, markersize=4)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        if name == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=120)
    artifacts.write_file(path, buffer.getvalue())
    return path
