"""4- and 8-bit group-wise quantization of any MLX model (mlx only)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
