"""LoRA, rsLoRA, DoRA and QLoRA adapters for any MLX model, in Hugging Face PEFT's file format (mlx only)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
