"""A folder of images, one subfolder per class (`pets/cat/*.png`, `pets/dog/*.jpg`), read with Pillow.

With `train/` and `test/` subfolders (each holding the class folders) those are the split; otherwise 20% of each
class is held out, seeded. Classes are the subfolder names in sorted order. Every image must have one size (the
first file's; another size is an error naming both files); all grayscale images give uint8 [n, H, W], any colour
image makes them all RGB, uint8 [n, 3, H, W] (channels first, as conv2d reads them). Pixels are 0..255, scaled by
1/255 inside the model like IDX images. `read_image` is what `bmc predict` uses on one file, in the build's mode
and size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bmc.data.dataset import Dataset
from bmc.data.split import stratified_split
from bmc.diagnostics import DataError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def is_image_folder(path: Path) -> bool:
    """A directory whose subfolders hold images (directly, or under train/ and test/)."""
    roots = [path / "train", path / "test"] if (path / "train").is_dir() else [path]
    return any(any(is_image(f) for f in sub.iterdir() if f.is_file())
               for root in roots if root.is_dir() for sub in root.iterdir() if sub.is_dir())


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except (OSError, UnidentifiedImageError) as e:
        raise DataError(f"cannot read the image {path}: {e}") from None
    return image


def read_image(path: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """One image as uint8 [H, W] (mode L) or [3, H, W] (RGB); a size other than `size` is an error."""
    image = _open(path)
    if size is not None and tuple(image.size) != tuple(size):
        raise DataError(f"{path} is {image.size[0]}x{image.size[1]} pixels; the model was trained on "
                        f"{size[0]}x{size[1]}", notes=("resize it first (Pillow: Image.resize)",))
    pixels = np.asarray(image.convert(mode), dtype=np.uint8)
    return pixels.transpose(2, 0, 1) if mode == "RGB" else pixels


def _class_files(root: Path) -> dict[str, list[Path]]:
    classes = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(f for f in sub.iterdir() if f.is_file() and is_image(f))
        if files:
            classes[sub.name] = files
    return classes


def load_image_folder(path: str | Path) -> Dataset:
    path = Path(path)
    split = (path / "train").is_dir() and (path / "test").is_dir()
    parts = {"train": _class_files(path / "train"), "test": _class_files(path / "test")} if split else \
        {"all": _class_files(path)}
    names = sorted({c for part in parts.values() for c in part})
    if len(names) < 2:
        raise DataError(f"{path}: an image folder needs a subfolder per class, at least two (found "
                        f"{', '.join(names) or 'none'})", notes=("e.g. pets/cat/1.png, pets/dog/2.jpg",))
    images = {k: [(f, names.index(c)) for c, files in part.items() for f in files] for k, part in parts.items()}
    first = next(f for part in images.values() for f, _ in part)
    opened = {f: _open(f) for part in images.values() for f, _ in part}
    size = opened[first].size
    for f, image in opened.items():
        if image.size != size:
            raise DataError(f"{f} is {image.size[0]}x{image.size[1]} pixels but {first} is {size[0]}x{size[1]}; "
                            "every image of a data set must have one size", notes=("resize them first",))
    mode = "L" if all(image.mode in ("1", "L", "I;16", "I") for image in opened.values()) else "RGB"
    arrays = {k: (np.stack([read_image(f, mode, None) for f, _ in part]), np.array([c for _, c in part]))
              for k, part in images.items()}
    if split:
        (x_train, y_train), (x_test, y_test) = arrays["train"], arrays["test"]
    else:
        x, y = arrays["all"]
        train, test = stratified_split(y)
        if len(test) == 0:
            raise DataError(f"{path}: {len(y)} images are too few to hold out a test set (20% of each class)")
        x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]
    shape = f"{size[0]}x{size[1]} {'grayscale' if mode == 'L' else 'RGB'}"
    how = "train/ and test/" if split else "20% of each class held out"
    description = (f"{path.name} (images, {path}): {len(x_train)} train / {len(x_test)} test, {shape}, "
                   f"{len(names)} classes ({', '.join(names[:6])}{', ...' * (len(names) > 6)}), {how}")
    return Dataset(path.name, x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), len(names),
                   description, scale=1 / 255, raw_format=f"{shape} images, pixels 0..255", class_names=names,
                   image={"mode": mode, "size": list(size)})
