"""Character-level text for language models: `text:FILE[,FILE...]`.

The vocabulary is every character of the files (sorted, so it is deterministic). The last `validation` fraction of
the FIRST file is held out for validation; everything else trains. (Debian's license texts: put GPL-3 first and add
the other licenses that do not repeat it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bmc.diagnostics import DataError

PREFIX = "text:"


@dataclass
class TextDataset:
    name: str
    vocab: str  # the characters, in id order
    train: np.ndarray  # int64 ids
    valid: np.ndarray
    description: str

    def encode(self, text: str) -> np.ndarray:
        return encode(self.vocab, text)


def encode(vocab: str, text: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted({c for c in text if c not in index})
    if unknown:
        raise DataError(f"the text has characters the model never saw: {''.join(unknown)!r}")
    return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))


def is_text_spec(spec: str) -> bool:
    return spec.startswith(PREFIX)


def load_text(spec: str, validation: float = 0.1) -> TextDataset:
    paths = [Path(p).expanduser() for p in spec[len(PREFIX):].split(",") if p]
    if not paths:
        raise DataError("text: needs at least one file, e.g. text:/usr/share/common-licenses/GPL-3")
    texts = []
    for p in paths:
        try:
            texts.append(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"no such text file: {p}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read {p} as UTF-8 text: {e}") from None
    if not texts[0]:
        raise DataError(f"{paths[0]} is empty")
    cut = int(len(texts[0]) * (1 - validation))
    train_text = texts[0][:cut] + "".join(texts[1:])
    valid_text = texts[0][cut:]
    vocab = "".join(sorted(set("".join(texts))))
    description = (f"text ({', '.join(p.name for p in paths)}): {len(train_text):,} training characters, "
                   f"{len(valid_text):,} validation (the last {validation:.0%} of {paths[0].name}), "
                   f"vocabulary {len(vocab)}")
    return TextDataset(paths[0].name, vocab, encode(vocab, train_text), encode(vocab, valid_text), description)
