"""Saving and loading quantized models: packed safetensors plus a config block.

The block lives under the key ``"quantization"`` of ``config.json`` (next to, for example, a
Hugging Face encoder config), so one folder is a complete checkpoint:

    {"format": "mlxbert-quant/1", "bits": 4, "group_size": 64, "mode": "affine",
     "layers": {"<module path>": {"bits": 4, "group_size": 64, "mode": "affine"}, ...},
     "skipped": ["<module path>", ...]}
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .convert import apply_plan
from .modes import MODES, LayerSettings, QuantizationError
from .selection import leaf_modules

__all__ = [
    "FORMAT",
    "apply_quantization_config",
    "load_quantized",
    "quantization_config",
    "read_quantization_config",
    "save_quantized",
]

FORMAT = "mlxbert-quant/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
_QUANTIZED = (nn.QuantizedLinear, nn.QuantizedEmbedding)


def quantization_config(model: nn.Module) -> dict:
    """The config block describing how ``model`` is quantized, read from its layers."""
    layers: dict[str, dict] = {}
    skipped: list[str] = []
    for path, module in leaf_modules(model):
        if isinstance(module, _QUANTIZED):
            layers[path] = {
                "bits": module.bits,
                "group_size": module.group_size,
                "mode": module.mode,
            }
        elif isinstance(module, (nn.Linear, nn.Embedding)):
            skipped.append(path)
    if not layers:
        raise QuantizationError("The model has no quantized layers; call quantize(model) first.")
    # The top-level settings are the most common ones (what quantize() was asked for).
    counts = Counter((s["bits"], s["group_size"], s["mode"]) for s in layers.values())
    bits, group_size, mode = counts.most_common(1)[0][0]
    return {
        "format": FORMAT,
        "bits": bits,
        "group_size": group_size,
        "mode": mode,
        "layers": layers,
        "skipped": skipped,
    }


def _as_dict(config) -> dict:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):
        return dict(config.to_dict())
    raise TypeError(f"config must be a dict (or have to_dict()), got {type(config).__name__}.")


def save_quantized(model: nn.Module, directory: str | Path, config=None) -> Path:
    """Write ``model.safetensors`` (packed weights, scales, biases) and the config block.

    The block is stored under ``"quantization"`` in ``directory/config.json``, merged into
    ``config`` when given (for example the encoder's Hugging Face config), else into the
    ``config.json`` already in ``directory``, else into a new file. Returns the folder.
    """
    block = quantization_config(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / CONFIG_FILE
    if config is not None:
        merged = _as_dict(config)
    elif config_path.exists():
        merged = json.loads(config_path.read_text())
    else:
        merged = {}
    merged["quantization"] = block
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(directory / WEIGHTS_FILE), weights, metadata={"format": "mlx"})
    config_path.write_text(json.dumps(merged, indent=2) + "\n")
    return directory


def read_quantization_config(source: str | Path | Mapping) -> dict:
    """Read and check the block from a folder, a ``config.json`` path or a config dict."""
    if isinstance(source, Mapping):
        config, where = dict(source), "the given config"
    else:
        path = Path(source)
        if path.is_dir():
            path = path / CONFIG_FILE
        if not path.exists():
            raise QuantizationError(f"No {CONFIG_FILE} at {path}; save with save_quantized().")
        config, where = json.loads(path.read_text()), str(path)
    block = config.get("quantization", config if "layers" in config else None)
    if not isinstance(block, Mapping):
        raise QuantizationError(
            f"{where} has no 'quantization' block; it is not a quantized model."
        )
    if block.get("format") != FORMAT:
        raise QuantizationError(
            f"{where}: quantization format {block.get('format')!r} is not {FORMAT!r}."
        )
    layers = block.get("layers")
    if not isinstance(layers, Mapping) or not layers:
        raise QuantizationError(f"{where}: the quantization block lists no layers.")
    problems = []
    for path, settings in layers.items():
        if not isinstance(settings, Mapping) or set(settings) != {"bits", "group_size", "mode"}:
            problems.append(f"  {path}: expected {{bits, group_size, mode}}, got {settings!r}")
        elif settings["mode"] not in MODES:
            problems.append(f"  {path}: unknown mode {settings['mode']!r}")
    if problems:
        raise QuantizationError(f"{where}: invalid quantization block:\n" + "\n".join(problems))
    return dict(block)


def _expected_shapes(module: nn.Module, settings: LayerSettings) -> dict[str, tuple]:
    """Parameter shapes of ``module`` once quantized with ``settings`` (no compute)."""
    rows, cols = module.weight.shape
    shapes = {
        "weight": (rows, cols * settings.bits // 32),
        "scales": (rows, cols // settings.group_size),
    }
    if MODES[settings.mode].has_biases:
        shapes["biases"] = shapes["scales"]
    if isinstance(module, nn.Linear) and "bias" in module:
        shapes["bias"] = tuple(module.bias.shape)
    return shapes


def _layers_of_block(
    modules: dict[str, nn.Module], block: Mapping
) -> tuple[dict[str, LayerSettings], list[str]]:
    """Each listed layer's settings, and the problems (missing or non-float layers, settings
    that do not fit)."""
    layers: dict[str, LayerSettings] = {}
    problems: list[str] = []
    for path, raw in block["layers"].items():
        module = modules.get(path)
        if module is None:
            problems.append(f"  {path}: listed as quantized but the model has no such layer")
            continue
        if not isinstance(module, (nn.Linear, nn.Embedding)):
            problems.append(
                f"  {path}: is {type(module).__name__}, expected a float Linear or Embedding "
                "(build the float model, then load)"
            )
            continue
        settings = LayerSettings(int(raw["bits"]), int(raw["group_size"]), raw["mode"])
        problems += [f"  {path}: {p}" for p in settings.problems(module.weight.shape[-1])]
        layers[path] = settings
    return layers, problems


def apply_quantization_config(model: nn.Module, config: str | Path | Mapping) -> nn.Module:
    """Quantize the float skeleton ``model`` as a saved block says (a folder, a ``config.json``
    path, a config dict or the block itself), without loading weights; returns the model.

    For loaders that read the weights themselves (``mlxbert_core.from_pretrained``). Every
    problem is listed in one ``QuantizationError`` and the model is left unchanged.
    """
    block = read_quantization_config(config)
    layers, problems = _layers_of_block(dict(leaf_modules(model)), block)
    if problems:
        raise QuantizationError(
            "Cannot quantize the model as its quantization block says; the model was left "
            "unchanged:\n" + "\n".join(problems)
        )
    apply_plan(model, layers)
    return model


def load_quantized(model: nn.Module, directory: str | Path) -> nn.Module:
    """Quantize the float skeleton ``model`` as the saved block says and load the weights.

    Everything is checked before the model changes: listed layers that are missing or not
    float ``Linear`` / ``Embedding``, settings that do not fit, and every missing, unexpected
    or mis-shaped weight are reported together in one ``QuantizationError``.
    """
    directory = Path(directory)
    block = read_quantization_config(directory)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.exists():
        raise QuantizationError(f"No {WEIGHTS_FILE} in {directory}.")

    modules = dict(leaf_modules(model))
    layers, problems = _layers_of_block(modules, block)
    expected = {k: tuple(v.shape) for k, v in tree_flatten(model.parameters())}
    for path, settings in layers.items():
        for key in [k for k in expected if k.rsplit(".", 1)[0] == path]:
            del expected[key]
        for name, shape in _expected_shapes(modules[path], settings).items():
            expected[f"{path}.{name}"] = shape

    weights = mx.load(str(weights_path))
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    problems += [f"  missing weight: {k} {expected[k]}" for k in missing]
    problems += [f"  unexpected weight: {k} {tuple(weights[k].shape)}" for k in unexpected]
    for key in sorted(set(expected) & set(weights)):
        if tuple(weights[key].shape) != expected[key]:
            problems.append(
                f"  shape mismatch: {key} is {tuple(weights[key].shape)} in the file, "
                f"the model expects {expected[key]}"
            )
    for path in layers:
        packed = weights.get(f"{path}.weight")
        if packed is not None and packed.dtype != mx.uint32:
            problems.append(f"  {path}.weight is {packed.dtype}, expected packed uint32 codes")
    if problems:
        raise QuantizationError(
            f"Cannot load the quantized model from {directory}; the model was left unchanged:\n"
            + "\n".join(problems)
        )

    apply_plan(model, layers)
    model.load_weights(list(weights.items()), strict=True)
    mx.eval(model.parameters())
    return model
