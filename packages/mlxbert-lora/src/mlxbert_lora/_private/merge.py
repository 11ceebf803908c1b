"""Fusing adapters into plain Linear layers, with a check that a requantized merge keeps them."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn

from .apply import CONFIG_ATTR, lora_layers
from .layers import LoRALinear
from .model_tree import dense_weight, set_module

# Warn when, in most groups, the whole adapter update is smaller than half a quantization step:
# rounding then maps W + delta back onto W's own grid points and the adapter disappears.
VANISH_GROUP_FRACTION = 0.5


@dataclass(frozen=True)
class MergeReport:
    """What happened to one layer's adapter update when it was merged.

    `delta_retained` is the part of the update the merged weight really carries, measured along
    the update's own direction (1.0 = all of it; always 1.0 for a float merge).
    `groups_below_half_step` is the fraction of quantization groups whose largest |delta| is
    below half that group's step (affine mode; None otherwise or for a float base).
    """

    path: str
    quantized_base: bool
    requantized: bool
    delta_max_abs: float
    delta_retained: float
    groups_below_half_step: float | None


def merge_lora(
    model: nn.Module,
    *,
    requantize: bool = False,
    return_report: bool = False,
):
    """Fuse every adapter into its base layer and remove the wrappers (in place).

    Float bases become `nn.Linear` with `W + s B A` (DoRA: `m / ||V||_row * V`). A quantized
    base is dequantized, the update added, and the result kept as a float `nn.Linear` or, with
    `requantize=True`, quantized again with the same bits / group size / mode. A
    `UserWarning` is raised when the update is below half a quantization step in most groups
    (it then largely vanishes in the rounding); the report says how much of it survived.

    Returns the model, or `(model, [MergeReport, ...])` with `return_report=True`.
    """
    layers = lora_layers(model)
    if not layers:
        raise ValueError("This model has no LoRA adapters to merge.")
    reports = []
    for path, layer in layers:
        merged, report = _merge_layer(path, layer, requantize)
        set_module(model, path, merged)
        reports.append(report)
    if hasattr(model, CONFIG_ATTR):
        delattr(model, CONFIG_ATTR)
    _warn_if_vanished(reports)
    return (model, reports) if return_report else model


def _merge_layer(path: str, layer: LoRALinear, requantize: bool):
    base = layer.base_layer
    quantized = isinstance(base, nn.QuantizedLinear)
    w = dense_weight(base)
    # With adapters switched off (disable_lora) the layer computes its base only; merging then
    # must not change it.
    merged_w = layer.merged_weight().astype(w.dtype) if layer.lora_enabled else w
    delta = merged_w - w
    delta_max = mx.max(mx.abs(delta)).item() if delta.size else 0.0
    bias = base.get("bias")
    out_dims, in_dims = merged_w.shape

    if quantized and requantize:
        # The base's own class: a subclass with a faster product (mlxbert-quant's) stays one.
        new = type(base)(
            in_dims, out_dims, bias is not None, base.group_size, base.bits, mode=base.mode
        )
        q = mx.quantize(merged_w, base.group_size, base.bits, mode=base.mode)
        new.weight, new.scales = q[0], q[1]
        new.biases = q[2] if len(q) > 2 else None
        kept = dense_weight(new) - w
        denom = mx.sum(delta * delta).item()
        retained = mx.sum(kept * delta).item() / denom if denom > 0 else 1.0
        below = _groups_below_half_step(base, delta)
    else:
        new = nn.Linear(in_dims, out_dims, bias=bias is not None)
        new.weight = merged_w
        retained, below = 1.0, None
    if bias is not None:
        new.bias = bias
    report = MergeReport(path, quantized, quantized and requantize, delta_max, retained, below)
    return new, report


def _groups_below_half_step(base: nn.QuantizedLinear, delta: mx.array) -> float | None:
    if base.mode != "affine":
        return None  # scales of the mx/nv fp formats are exponents, not a uniform step
    out_dims, in_dims = delta.shape
    groups = mx.max(
        mx.abs(delta.reshape(out_dims, in_dims // base.group_size, base.group_size)), -1
    )
    step = mx.abs(base.scales.astype(mx.float32))
    return mx.mean(groups < 0.5 * step).item()


def _warn_if_vanished(reports: list[MergeReport]) -> None:
    lost = [
        r
        for r in reports
        if r.requantized
        and (r.groups_below_half_step or 0.0) > VANISH_GROUP_FRACTION
        and r.delta_max_abs > 0
    ]
    if not lost:
        return
    mean_retained = sum(r.delta_retained for r in lost) / len(lost)
    names = ", ".join(r.path for r in lost[:5]) + (" ..." if len(lost) > 5 else "")
    warnings.warn(
        f"The adapter update is smaller than half a quantization step in most groups of "
        f"{len(lost)} of {len(reports)} merged layers ({names}); requantizing rounds it away "
        f"(on average only {100 * mean_retained:.0f}% of the update survived). Merge without "
        "requantize=True (float weights), keep the adapter unmerged, or quantize with more bits "
        "or a smaller group size.",
        UserWarning,
        stacklevel=3,
    )
