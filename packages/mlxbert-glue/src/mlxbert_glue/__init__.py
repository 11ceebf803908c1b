"""GLUE tasks, metrics, fine-tuning recipes and the Classifier API for mlxbert."""

__version__ = "0.1.0"

__all__ = ["__version__"]
