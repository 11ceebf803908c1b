"""From a competition CSV to submission.csv with BERT-family encoders on MLX; the mlxbert command line."""

__version__ = "0.1.0"

__all__ = ["__version__"]
