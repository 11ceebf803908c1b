"""Wrapping a model's Linear layers with LoRA, freezing, and switching adapters on and off."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .config import LoraConfig, name_matches
from .layers import LoRALinear
from .model_tree import LINEAR_TYPES, get_module, linear_paths, linear_shape, set_module

#: ``quantize_layer(linear, group_size, bits) -> quantized layer``: how QLoRA quantizes a base
#: layer (``nn.QuantizedLinear.from_linear`` and its subclasses' have this signature).
QuantizeLayer = Callable[[nn.Linear, int, int], nn.Module]

# The config an adapted model was built with lives on the root module as a plain attribute
# (not an array, so it is not a parameter and never reaches a compiled function).
CONFIG_ATTR = "_mlxbert_lora_config"


@dataclass(frozen=True)
class ModulePlan:
    """How one Linear layer is adapted."""

    r: int
    alpha: float


def lora_layers(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    """(dotted path, layer) of every `LoRALinear` in `model`."""
    return [(p, m) for p, m in model.named_modules() if isinstance(m, LoRALinear)]


def get_config(model: nn.Module) -> LoraConfig | None:
    return getattr(model, CONFIG_ATTR, None)


def lora_config_of(model: nn.Module) -> LoraConfig | None:
    """The ``LoraConfig`` that :func:`apply_lora` put on ``model``, or None."""
    return get_config(model)


def _modules_to_save_paths(model: nn.Module, names: list[str] | None) -> list[str]:
    if not names:
        return []
    return [p for p, _ in model.named_modules() if p and name_matches(p, names)]


def plan_from_config(model: nn.Module, config: LoraConfig) -> dict[str, ModulePlan]:
    """Which Linear layers `config` adapts, with each one's rank and alpha (PEFT's rules)."""
    saved = _modules_to_save_paths(model, config.modules_to_save)
    plan = {}
    for path in linear_paths(model):
        if any(path == s or path.startswith(s + ".") for s in saved):
            continue  # trained in full instead
        if config.is_target(path):
            plan[path] = ModulePlan(config.rank_for(path), config.alpha_for(path))
    return plan


def apply_lora(
    model: nn.Module,
    config: LoraConfig | None = None,
    *,
    quantize_layer: QuantizeLayer | None = None,
) -> nn.Module:
    """Add LoRA adapters to `model` in place (and return it).

    Every `nn.Linear` / `nn.QuantizedLinear` whose dotted path matches `config.target_modules`
    is wrapped in a `LoRALinear`; a layer that is already quantized (by mlxbert-quant, say)
    stays as it is, as the frozen base. All other parameters are frozen except the adapters,
    `config.modules_to_save` and the biases selected by `config.bias`.

    With `config.quantize_bits` (the "qlora" preset) the float Linear layers are first
    quantized, each by `quantize_layer(linear, group_size, bits)`; the default is MLX's
    `nn.QuantizedLinear.from_linear`. Its product is slow for many rows (MLX's quantized
    matmul; on the CPU a plain loop): pass `mlxbert_quant.QuantizedLinear.from_linear` for a
    layer that multiplies training batches by the dequantized weight (see the README).
    """
    config = LoraConfig() if config is None else config
    if lora_layers(model):
        raise ValueError(
            "This model already has LoRA adapters. Merge them (merge_lora) or remove them "
            "(unload_lora) before applying a new adapter."
        )
    plan = plan_from_config(model, config)
    if not plan:
        candidates = linear_paths(model)
        raise ValueError(
            f"No Linear layer matches target_modules={config.target_modules!r}. "
            f"The model has {len(candidates)} Linear layers, e.g. {candidates[:10]}. "
            "Pass names of those layers (a suffix such as 'query' matches "
            "'encoder.layer.0.attention.self.query') or a regex matching the full path."
        )
    if config.modules_to_save and not _modules_to_save_paths(model, config.modules_to_save):
        warnings.warn(
            f"modules_to_save={config.modules_to_save} matches no module of this model, so no "
            "module is trained in full (check the names: they match dotted-path suffixes).",
            UserWarning,
            stacklevel=2,
        )
    if config.quantize_bits is not None:
        _quantize_base(model, config, quantize_layer or nn.QuantizedLinear.from_linear)
    apply_plan(model, plan, config)
    return model


def _quantize_base(model: nn.Module, config: LoraConfig, quantize_layer: QuantizeLayer) -> None:
    """QLoRA: quantize every float Linear except modules_to_save (and layers whose input size
    is not a multiple of the group size, which `mx.quantize` cannot handle)."""
    saved = _modules_to_save_paths(model, config.modules_to_save)
    group = config.quantize_group_size
    for path in linear_paths(model):
        layer = get_module(model, path)
        if not isinstance(layer, nn.Linear):
            continue
        if any(path == s or path.startswith(s + ".") for s in saved):
            continue
        if layer.weight.shape[1] % group:
            continue
        set_module(model, path, quantize_layer(layer, group, config.quantize_bits))


def apply_plan(model: nn.Module, plan: dict[str, ModulePlan], config: LoraConfig) -> None:
    """Wrap each planned layer and set which parameters train."""
    for path, item in plan.items():
        base = get_module(model, path)
        if not isinstance(base, LINEAR_TYPES):
            raise TypeError(f"{path!r} is a {type(base).__name__}, not a Linear layer.")
        layer = LoRALinear(
            base,
            r=item.r,
            alpha=item.alpha,
            dropout=config.dropout,
            use_rslora=config.use_rslora,
            use_dora=config.use_dora,
        )
        set_module(model, path, layer)
    setattr(model, CONFIG_ATTR, config)
    set_trainable(model, config)


def set_trainable(model: nn.Module, config: LoraConfig) -> None:
    """Freeze everything, then unfreeze adapters, modules_to_save and the chosen biases."""
    model.freeze()
    for _, layer in lora_layers(model):
        layer.lora_A.unfreeze()
        layer.lora_B.unfreeze()
        if layer.use_dora:
            layer.unfreeze(keys=["lora_magnitude_vector"], recurse=False)
        if config.bias == "lora_only" and "bias" in layer.base_layer:
            _unfreeze_bias(layer.base_layer)
    if config.bias == "all":
        for _, module in model.named_modules():
            if isinstance(module.get("bias"), mx.array):
                _unfreeze_bias(module)
    for path in _modules_to_save_paths(model, config.modules_to_save):
        get_module(model, path).unfreeze()


def _unfreeze_bias(module: nn.Module) -> None:
    # `Module.unfreeze` with keys only clears the no-grad mark of that one key; it works on
    # QuantizedLinear too (whose own weight/scales/biases stay frozen).
    module.unfreeze(keys=["bias"], recurse=False)


def trainable_parameters(model: nn.Module) -> dict[str, float]:
    """Counts of trainable and total parameters (`{"trainable", "total", "percent"}`).

    A quantized weight counts as its logical `out x in` elements; its per-group scales and
    biases are quantization metadata and are not counted.
    """
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    total = 0
    for _, module in model.named_modules():
        own = {k: v for k, v in module.items() if isinstance(v, mx.array)}
        if isinstance(module, nn.QuantizedLinear):
            out_dims, in_dims = linear_shape(module)
            total += out_dims * in_dims + (own["bias"].size if "bias" in own else 0)
        else:
            total += sum(v.size for v in own.values())
    return {
        "trainable": trainable,
        "total": total,
        "percent": 100.0 * trainable / total if total else 0.0,
    }


def print_trainable_parameters(model: nn.Module) -> None:
    """Print PEFT's one-line summary of trainable parameters."""
    c = trainable_parameters(model)
    print(
        f"trainable params: {c['trainable']:,} || all params: {c['total']:,} "
        f"|| trainable%: {c['percent']:.4f}"
    )


def set_lora_enabled(model: nn.Module, enabled: bool) -> nn.Module:
    layers = lora_layers(model)
    if not layers:
        raise ValueError("This model has no LoRA adapters (apply_lora or load_peft_adapter first).")
    for _, layer in layers:
        layer.lora_enabled = enabled
    return model


def disable_lora(model: nn.Module) -> nn.Module:
    """Make every adapted layer compute its base layer only (the adapters are kept)."""
    return set_lora_enabled(model, False)


def enable_lora(model: nn.Module) -> nn.Module:
    """Switch the adapters back on after `disable_lora`."""
    return set_lora_enabled(model, True)


@contextlib.contextmanager
def lora_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """`with lora_disabled(model): base_out = model(x)` — the base model's output, for A/B checks.

    Under `mx.compile`, a function compiled while the adapters were on keeps them on: compile a
    separate function for the disabled model.
    """
    previous = [(layer, layer.lora_enabled) for _, layer in lora_layers(model)]
    disable_lora(model)
    try:
        yield model
    finally:
        for layer, state in previous:
            layer.lora_enabled = state


def unload_lora(model: nn.Module) -> nn.Module:
    """Remove every adapter without merging it: the model becomes its base model again."""
    for path, layer in lora_layers(model):
        set_module(model, path, layer.base_layer)
    if hasattr(model, CONFIG_ATTR):
        delattr(model, CONFIG_ATTR)
    return model
