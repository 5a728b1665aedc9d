"""bmc: a declarative graph compiler for neural networks."""

from bmc.api import Build, Model, compile, compile_string, load
from bmc.diagnostics import BmcError
from bmc.version import __version__

__all__ = ["BmcError", "Build", "Model", "__version__", "compile", "compile_string", "load"]
