"""Encoders (BERT, ModernBERT, NeoBERT), torch-free checkpoint loading, tokenization, pooling, training engine and runtime for mlxbert."""

__version__ = "0.1.0"

__all__ = ["__version__"]
