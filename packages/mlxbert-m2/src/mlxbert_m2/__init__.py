"""M2-BERT (Monarch Mixer) encoders and checkpoints on MLX."""

__version__ = "0.1.0"

__all__ = ["__version__"]
