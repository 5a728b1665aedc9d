"""The one way an ONNX name reaches `.bm` source: `Names.identifier` mangles tensor, node, input and dim names
into identifiers, unique in the model and clear of the language's keywords and functions; `comment` makes any text a
one-line comment. Nothing from an ONNX file is written into the model any other way."""

from __future__ import annotations

import re
import unicodedata

KEYWORDS = {"model", "layer", "train", "input", "target", "param", "output", "return", "true", "false", "loss"}
_OP_SEGMENT = re.compile(r"^[A-Z][A-Za-z0-9]*(_\d+)?$")  # an exporter's node segment: Conv, Add_1, MatMul
_OUTPUT_SUFFIX = re.compile(r"_output_\d+$")


def _reserved() -> set[str]:
    import bmc.frontend.layers  # noqa: F401
    from bmc.frontend.builtins import BUILTINS  # the language's functions; layers register on import

    return KEYWORDS | set(BUILTINS) | {"repeat"}


class Names:
    """Identifiers handed out for one model: each ONNX name gets one, and no two names get the same."""

    def __init__(self):
        self.reserved = _reserved()
        self.taken: set[str] = set()
        self.given: dict[tuple[str, str], str] = {}

    def identifier(self, onnx_name: str, kind: str = "value", fallback: str = "t") -> str:
        key = (kind, onnx_name)
        if key not in self.given:
            base = readable(onnx_name) or fallback
            if base in self.reserved:
                base += "_"
            name, k = base, 1
            while name in self.taken:
                k += 1
                name = f"{base}_{k}"
            self.taken.add(name)
            self.given[key] = name
        return self.given[key]

    def reserve(self, name: str) -> None:
        self.taken.add(name)


def readable(onnx_name: str) -> str:
    """`/layer1/layer1.0/conv1/Conv_output_0` -> `layer1_0_conv1`: the exporter's module path without the op's
    segment and without a segment the next one repeats; anything but letters, digits and `_` becomes `_`."""
    text = unicodedata.normalize("NFKD", onnx_name)
    stripped = _OUTPUT_SUFFIX.sub("", text.strip().removeprefix("onnx::").strip("/"))
    segments = [s for s in re.split(r"[/:]", stripped) if s]
    if segments and _OP_SEGMENT.match(segments[-1]) and (len(segments) > 1 or stripped != text.strip()):
        op = segments.pop().lower()  # the node's op: the module path names it better, unless it is all numbers
        if not segments or all(re.fullmatch(r"[0-9._]+", s) for s in segments):
            segments = [op, *segments]
    kept = [s for i, s in enumerate(segments) if not (i + 1 < len(segments) and segments[i + 1].startswith(s + "."))]
    ident = re.sub(r"[^A-Za-z0-9_]+", "_", "_".join(kept)).strip("_")
    ident = re.sub(r"_+", "_", ident)
    if ident and ident[0].isdigit():
        ident = "t" + ident
    return ident[:60].rstrip("_")


def comment(text: str) -> str:
    """Any text as the body of one `#` comment: control characters (a newline would end the comment and let the rest
    be read as code) and non-ASCII shown as escapes."""
    return "".join(c if " " <= c <= "~" else (repr(c)[1:-1] if c != "\\" else c) for c in text)
