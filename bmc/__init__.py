"""bmc: a declarative graph compiler for neural networks."""

from bmc.api import Build, Model, compile, compile_string, load
from bmc.diagnostics import BmcError
from bmc.version import __version__


def import_onnx(path, *, name=None, loss=None, params_file="params.npz"):
    """Import an ONNX model as a `.bm` model and its parameters (bmc/onnx_import): `.source`, `.params` and
    `.save("model.bm")`, which writes params.npz beside it. onnx is imported only when this is called."""
    from bmc.onnx_import import import_onnx as run

    return run(path, name=name, loss=loss, params_file=params_file)


__all__ = ["BmcError", "Build", "Model", "__version__", "compile", "compile_string", "import_onnx", "load"]
