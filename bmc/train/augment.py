"""Seeded augmentation of image batches (random shifts, flips), on raw samples: a shift fills with raw zeros, black
pixels, which the model's prologue then scales and standardizes like any other pixel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Augment:
    shift: int = 0  # random translation by up to this many pixels in each direction (zero fill)
    flip: bool = False  # random horizontal flip

    def __bool__(self) -> bool:
        return bool(self.shift or self.flip)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """x [n, ..., H, W] -> augmented copy (the last two axes are the image)."""
        out = x
        if self.flip:
            flip = rng.random(len(x)) < 0.5
            out = out.copy()
            out[flip] = out[flip][..., ::-1]
        if self.shift:
            out = shift_images(out, rng.integers(-self.shift, self.shift + 1, size=(len(x), 2)))
        return out


def shift_images(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Translate each image by (dy, dx), filling with zeros: one padded copy and a strided gather."""
    s = int(np.abs(offsets).max()) if len(offsets) else 0
    if s == 0:
        return x
    n, (h, w) = len(x), x.shape[-2:]
    padded = np.pad(x.reshape(n, -1, h, w), ((0, 0), (0, 0), (s, s), (s, s)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))  # [n, c, 2s+1, 2s+1, h, w]
    shifted = windows[np.arange(n), :, s - offsets[:, 0], s - offsets[:, 1]]  # [n, c, h, w]
    return shifted.reshape(x.shape)
