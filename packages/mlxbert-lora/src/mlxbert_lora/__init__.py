"""LoRA, rsLoRA, DoRA and QLoRA adapters for any MLX model, in Hugging Face PEFT's file format (mlx only).

Works on any `mlx.nn.Module` by structure: `nn.Linear` / `nn.QuantizedLinear` layers are found by
their dotted paths, with PEFT's matching rules and maths, so adapters move both ways between
mlx and PEFT (`save_peft_adapter` / `load_peft_adapter`).
"""

from ._private.apply import (
    apply_lora,
    disable_lora,
    enable_lora,
    lora_config_of,
    lora_disabled,
    lora_layers,
    print_trainable_parameters,
    trainable_parameters,
    unload_lora,
)
from ._private.config import PRESETS, LoraConfig
from ._private.layers import LoRALinear
from ._private.merge import MergeReport, merge_lora
from ._private.model_tree import linear_paths, param_nbytes
from ._private.peft_io import load_peft_adapter, save_peft_adapter

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "LoRALinear",
    "LoraConfig",
    "MergeReport",
    "__version__",
    "apply_lora",
    "disable_lora",
    "enable_lora",
    "linear_paths",
    "load_peft_adapter",
    "lora_config_of",
    "lora_disabled",
    "lora_layers",
    "merge_lora",
    "param_nbytes",
    "print_trainable_parameters",
    "save_peft_adapter",
    "trainable_parameters",
    "unload_lora",
]
