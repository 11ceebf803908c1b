"""4- and 8-bit group-wise quantization of any MLX model (mlx only).

Weights are stored packed (``nn.QuantizedLinear`` / ``nn.QuantizedEmbedding``): uint32 codes
plus per-group scales (and biases for the affine mode), so memory really drops.

    >>> from mlxbert_quant import quantize, save_quantized, load_quantized, model_nbytes
    >>> quantize(model, bits=4, group_size=64)          # in place; heads stay in floats
    >>> save_quantized(model, "out", config=hf_config)  # model.safetensors + config.json
    >>> load_quantized(float_skeleton, "out")           # rebuilds the same quantized model

The quantized linear layer it installs, :class:`QuantizedLinear`, multiplies many rows by the
dequantized weight (MLX's quantized product is slow there, on the CPU above all); it is the
one such layer of mlxbert, used by mlxbert-core's loading and, through ``quantize_layer=``,
by mlxbert-lora's QLoRA.
"""

from ._private.convert import QuantizationPlan, dequantize, plan_quantization, quantize
from ._private.io import (
    FORMAT,
    apply_quantization_config,
    load_quantized,
    quantization_config,
    read_quantization_config,
    save_quantized,
)
from ._private.linear import QuantizedLinear, dequantize_first, install_fast_products
from ._private.modes import MODES, LayerSettings, ModeSpec, QuantizationError
from ._private.report import QuantizationReport, SizeRow, model_nbytes, quantization_report
from ._private.selection import DEFAULT_SKIP, SENSITIVE_LAYERS

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SKIP",
    "FORMAT",
    "MODES",
    "SENSITIVE_LAYERS",
    "LayerSettings",
    "ModeSpec",
    "QuantizationError",
    "QuantizationPlan",
    "QuantizationReport",
    "QuantizedLinear",
    "SizeRow",
    "__version__",
    "apply_quantization_config",
    "dequantize",
    "dequantize_first",
    "install_fast_products",
    "load_quantized",
    "model_nbytes",
    "plan_quantization",
    "quantization_config",
    "quantization_report",
    "quantize",
    "read_quantization_config",
    "save_quantized",
]
