"""`LoRALinear`: a float or quantized Linear layer plus a LoRA / rsLoRA / DoRA update."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from .model_tree import compute_dtype, dense_weight, linear_shape


class LoraWeight(nn.Module):
    """Holds one adapter matrix as `weight`, so its key ends in `lora_A.weight` like PEFT's.

    Deliberately not an `nn.Linear`: quantizers and target searches that look for Linear layers
    must not pick up the adapter matrices themselves.
    """

    def __init__(self, weight: mx.array):
        super().__init__()
        self.weight = weight


def row_norm(weight: mx.array) -> mx.array:
    """L2 norm of each row (over the input dimension), as `torch.linalg.norm(W, dim=1)`."""
    return mx.sqrt(mx.sum(mx.square(weight.astype(mx.float32)), axis=1)).astype(weight.dtype)


class LoRALinear(nn.Module):
    """A Linear layer (`base_layer`, float or `nn.QuantizedLinear`) with a low-rank update.

    Plain LoRA:  y = base(x) + s * (dropout(x) A^T) B^T
    DoRA:        y = b + (m / ||V||_row) * (x V^T),  V = W + s B A, ||V|| treated as a constant
                 for gradients (`mx.stop_gradient`), exactly PEFT's computation.

    `s` is `alpha / r`, or `alpha / sqrt(r)` with rsLoRA. Parameter keys: `base_layer.*`,
    `lora_A.weight` [r, in], `lora_B.weight` [out, r], DoRA `lora_magnitude_vector` [out].
    `lora_enabled` is a plain attribute (set it outside a compiled function): when False the
    layer computes `base(x)` only.
    """

    def __init__(
        self,
        base_layer: nn.Module,
        r: int,
        alpha: float,
        dropout: float = 0.0,
        use_rslora: bool = False,
        use_dora: bool = False,
    ):
        super().__init__()
        if r <= 0:
            raise ValueError(f"LoRA rank must be positive, got {r}.")
        out_dims, in_dims = linear_shape(base_layer)
        dtype = compute_dtype(base_layer)
        self.base_layer = base_layer
        self.r = int(r)
        self.alpha = alpha
        self.use_rslora = bool(use_rslora)
        self.use_dora = bool(use_dora)
        self.scale = alpha / math.sqrt(r) if use_rslora else alpha / r
        self.lora_enabled = True
        self.lora_dropout = nn.Dropout(dropout)
        # PEFT's init: kaiming_uniform_(a=sqrt(5)) on A, i.e. U(-1/sqrt(in), 1/sqrt(in)); B = 0,
        # so the wrapped layer starts out computing exactly the base layer.
        bound = 1.0 / math.sqrt(in_dims)
        self.lora_A = LoraWeight(mx.random.uniform(-bound, bound, (self.r, in_dims)).astype(dtype))
        self.lora_B = LoraWeight(mx.zeros((out_dims, self.r), dtype=dtype))
        if self.use_dora:
            self.lora_magnitude_vector = row_norm(self.direction())

    @property
    def in_features(self) -> int:
        return linear_shape(self.base_layer)[1]

    @property
    def out_features(self) -> int:
        return linear_shape(self.base_layer)[0]

    def delta_weight(self) -> mx.array:
        """s * B @ A, the LoRA update of the weight, `[out, in]`."""
        return self.scale * (self.lora_B.weight @ self.lora_A.weight)

    def direction(self) -> mx.array:
        """V = W + s * B @ A (W dequantized for a quantized base)."""
        w = dense_weight(self.base_layer)
        return w + self.delta_weight().astype(w.dtype)

    def merged_weight(self) -> mx.array:
        """The float weight that computes this layer's output with a plain Linear."""
        v = self.direction()
        if not self.use_dora:
            return v
        return (self.lora_magnitude_vector / row_norm(v))[:, None] * v

    def __call__(self, x: mx.array) -> mx.array:
        result = self.base_layer(x)
        if not self.lora_enabled:
            return result
        dropped = self.lora_dropout(x)
        down = dropped @ self.lora_A.weight.T
        if not self.use_dora:
            # result + s * (down @ B^T) as one fused op: no full-size temporaries for the
            # product and its scaled copy (they add up to real memory at long sequences).
            return mx.addmm(result, down, self.lora_B.weight.T, alpha=self.scale)
        lora = down @ self.lora_B.weight.T
        # DoRA as PEFT computes it: result + (g - 1) * (x_d W^T) + g * s * (x_d A^T B^T), where
        # g = m / ||W + s B A||_row with the norm detached. Without dropout x_d = x and this is
        # b + g * (x V^T). With dropout PEFT uses the dropped input for the whole DoRA term.
        weight = dense_weight(self.base_layer)
        norm = mx.stop_gradient(row_norm(weight + mx.stop_gradient(self.delta_weight())))
        gain = self.lora_magnitude_vector / norm
        if dropped is x:
            base_no_bias = result - self.base_layer["bias"] if "bias" in self.base_layer else result
        else:
            base_no_bias = dropped @ weight.T
        return result + (gain - 1) * base_no_bias + gain * (self.scale * lora)

    def _extra_repr(self) -> str:
        out_dims, in_dims = linear_shape(self.base_layer)
        kind = "DoRA" if self.use_dora else ("rsLoRA" if self.use_rslora else "LoRA")
        return (
            f"{kind} in={in_dims} out={out_dims} r={self.r} alpha={self.alpha} scale={self.scale:g}"
        )
