"""One entry of the language reference: what a builtin does, in a line, and an example that the tests compile."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Entry:
    """`summary`: one line. `example`: a model body (the section wraps it in a model), a train block's settings (the
    training sections wrap them with a small classifier), or a whole file (it starts with `model` or `layer`).
    `omitted`: for each parameter whose default is 'left out', what leaving it out means. `details`: more prose.
    `base`: the model a train block's settings are shown with: "classifier" (of digits), "regression" or "images"
    (of 28x28 images)."""

    summary: str
    example: str
    omitted: dict[str, str] = field(default_factory=dict)
    details: str = ""
    base: str = "classifier"

    @property
    def whole_file(self) -> bool:
        return self.example.lstrip().startswith(("model ", "layer ", "#"))
