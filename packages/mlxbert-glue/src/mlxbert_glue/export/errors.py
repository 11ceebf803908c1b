"""The exporters' one expected-failure type."""

from __future__ import annotations


class ExportError(ValueError):
    """An export that cannot be done as asked (format, architecture, head, output path):
    the message says why and what to do instead."""


def missing_onnx() -> ImportError:
    return ImportError(
        "ONNX export needs the optional dependencies onnx and onnxruntime: "
        "pip install 'mlxbert-glue[onnx]'"
    )


__all__ = ["ExportError", "missing_onnx"]
