"""Task heads, losses, calibration and metrics for any MLX encoder (mlx + numpy only)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
