"""The progress line of a training epoch, drawn by tqdm: the epoch, a bar, steps done, the time left, the rate and
the running loss, fitted to the terminal's width and cleared when the epoch ends (its summary line follows). In
Jupyter it is tqdm's notebook widget. Silent when stderr is not a terminal (a log file, a pipe), unless forced.
"""

from __future__ import annotations

import sys
from typing import TextIO

# at 60 columns the bar shrinks first; everything else fits
FORMAT = "{desc} {bar} {n_fmt}/{total_fmt} ETA {remaining} {rate_fmt}{postfix}"


def in_notebook() -> bool:
    return "ipykernel" in sys.modules


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None, enabled: bool | None = True,
                 done: int = 0):
        """`enabled`: True shows the line where stderr is a terminal or a notebook, None always (`--progress`),
        False never (`--quiet`)."""
        from tqdm.auto import tqdm  # here, not at import: it loads asyncio (about 40 ms), which `bmc build` never needs

        stream = stream or sys.stderr
        show = enabled is None or (enabled and (stream.isatty() or in_notebook()))
        self.bar = tqdm(total=total, initial=done, desc=label, unit="step", file=stream, leave=False,
                        disable=not show, dynamic_ncols=True, mininterval=0.1, bar_format=FORMAT, ascii=" =",
                        unit_scale=True)

    def update(self, done: int, samples: int, loss: float) -> None:
        if self.bar.disable:
            return
        self.bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()
