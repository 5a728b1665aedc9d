"""ONNX import: `import_onnx(path)` turns an ONNX model into a readable `.bm` model and its parameters."""

from bmc.onnx_import.importer import Imported, import_onnx

__all__ = ["Imported", "import_onnx"]
