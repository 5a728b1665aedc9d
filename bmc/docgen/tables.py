"""The builtin tables of the language, read from the code: what the reference must document, name by name."""

from __future__ import annotations

from bmc import data
from bmc.frontend import lower  # noqa: F401 - importing it registers every builtin, the layers included
from bmc.frontend.builtins import BUILTINS, UNARY
from bmc.frontend.layer_calls import REPEAT_COUNT
from bmc.frontend.signature import ANY, Param, Signature
from bmc.init import ALIASES, INITIALIZERS
from bmc.train import config
from bmc.train.schedules import SCHEDULES

# `repeat` is a form of the lowerer, not a handler of BUILTINS: its signature as the reference shows it
REPEAT = Signature("repeat", (Param("count", domain=REPEAT_COUNT), Param("layer", domain=ANY)))


def signatures() -> dict[str, Signature]:
    """Every function a `.bm` expression can call, by name."""
    return {**{name: sig for name, (sig, _) in BUILTINS.items()}, "repeat": REPEAT}


def unary() -> tuple[str, ...]:
    return tuple(sorted(UNARY))


def builtins() -> dict[str, tuple[str, ...]]:
    """Each kind of builtin and its names, from the tables the compiler reads."""
    return {
        "functions": tuple(signatures()),
        "initializers": tuple(INITIALIZERS),
        "initializer aliases": tuple(ALIASES),
        "train settings": config.SETTINGS,
        "optimizers": tuple(config.OPTIMIZERS),
        "schedules": tuple(SCHEDULES),
        "metrics": tuple(s for s in config.SCORES if s != "loss"),
        "data sets": tuple(data.BUILTIN),
    }
