"""Internals of mlxbert_quant; the public API is re-exported from the package root."""
