"""Reading and writing adapters in Hugging Face PEFT's folder format.

A PEFT LoRA folder holds `adapter_config.json` and `adapter_model.safetensors` whose keys are
`base_model.model.<module path>.lora_A.weight` / `.lora_B.weight` (DoRA adds
`.lora_magnitude_vector`) plus full weights of `modules_to_save` (e.g. `...classifier.weight`).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .apply import (
    CONFIG_ATTR,
    ModulePlan,
    _modules_to_save_paths,
    apply_plan,
    get_config,
    lora_layers,
)
from .config import LoraConfig
from .model_tree import get_module, linear_paths, linear_shape

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
DEFAULT_PREFIX = "base_model.model."
# Root attribute: model module path -> module path used in the adapter file (set by a load
# whose file names differ from the model's, so that saving writes the original names back).
PEFT_PATHS_ATTR = "_mlxbert_lora_peft_paths"

_LORA_KEY = re.compile(r"^(?P<module>.+)\.(?P<kind>lora_A|lora_B)(?:\.[A-Za-z0-9_-]+)?\.weight$")
_MAGNITUDE_KEY = re.compile(
    r"^(?P<module>.+)\.lora_magnitude_vector(?:\.(?!weight$)[A-Za-z0-9_-]+)?(?:\.weight)?$"
)

PathMap = dict[str, str] | Callable[[str], str] | None


# --------------------------------------------------------------------------------------- save
def save_peft_adapter(
    model: nn.Module,
    directory: str | Path,
    config: LoraConfig | None = None,
    base_model_name_or_path: str | None = None,
    task_type: str | None = None,
    key_prefix: str = DEFAULT_PREFIX,
) -> Path:
    """Write the adapters of `model` as a PEFT folder (`adapter_config.json` +
    `adapter_model.safetensors`) that `PeftModel.from_pretrained` reads.

    `key_prefix` is prepended to module paths; PEFT's is "base_model.model.". If the model's
    paths differ from the Hugging Face model's (e.g. a bare encoder versus
    `BertForSequenceClassification`, whose paths start with "bert."), put the difference in the
    prefix: `key_prefix="base_model.model.bert."`.
    """
    layers = lora_layers(model)
    if not layers:
        raise ValueError("This model has no LoRA adapters to save (apply_lora first).")
    config = config or get_config(model) or _config_from_layers(layers)
    config = config.replace(
        base_model_name_or_path=base_model_name_or_path or config.base_model_name_or_path,
        task_type=task_type or config.task_type,
    )
    peft_paths: dict[str, str] = getattr(model, PEFT_PATHS_ATTR, {})
    file_path = lambda path: peft_paths.get(path, path)  # noqa: E731

    problems = []
    tensors: dict[str, mx.array] = {}
    for path, layer in layers:
        name = file_path(path)
        if config.rank_for(name) != layer.r or config.alpha_for(name) != layer.alpha:
            problems.append(
                f"{name}: layer has r={layer.r}, alpha={layer.alpha} but the config gives "
                f"r={config.rank_for(name)}, alpha={config.alpha_for(name)}"
            )
        if layer.use_dora != config.use_dora or layer.use_rslora != config.use_rslora:
            problems.append(f"{name}: use_dora/use_rslora differ between the layer and the config")
        tensors[f"{key_prefix}{name}.lora_A.weight"] = layer.lora_A.weight
        tensors[f"{key_prefix}{name}.lora_B.weight"] = layer.lora_B.weight
        if layer.use_dora:
            tensors[f"{key_prefix}{name}.lora_magnitude_vector"] = layer.lora_magnitude_vector
        if config.bias == "lora_only" and "bias" in layer.base_layer:
            tensors[f"{key_prefix}{name}.base_layer.bias"] = layer.base_layer["bias"]
    if problems:
        raise ValueError(
            "The config does not describe the model's adapters:\n  " + "\n  ".join(problems)
        )
    if config.bias == "all":
        for key, value in tree_flatten(model.parameters()):
            if key.endswith("bias") and not key.endswith(".biases"):
                module, _, param = key.rpartition(".")
                tensors[f"{key_prefix}{file_path(module)}.{param}"] = value
    for path in _modules_to_save_paths(model, config.modules_to_save):
        for key, value in tree_flatten(get_module(model, path).parameters()):
            tensors[f"{key_prefix}{file_path(path)}.{key}"] = value

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    mx.eval(list(tensors.values()))
    mx.save_safetensors(str(directory / WEIGHTS_NAME), tensors, metadata={"format": "pt"})
    (directory / CONFIG_NAME).write_text(
        json.dumps(config.to_peft_dict(), indent=2, sort_keys=True) + "\n"
    )
    return directory


def _config_from_layers(layers) -> LoraConfig:
    """A config reproducing hand-built adapters: the most common rank/alpha plus patterns."""
    ranks = [layer.r for _, layer in layers]
    alphas = [layer.alpha for _, layer in layers]
    r = max(set(ranks), key=ranks.count)
    alpha = max(set(alphas), key=alphas.count)
    first = layers[0][1]
    return LoraConfig(
        r=r,
        alpha=alpha,
        target_modules=sorted({p.rpartition(".")[2] for p, _ in layers}),
        rank_pattern={re.escape(p): layer.r for p, layer in layers if layer.r != r},
        alpha_pattern={re.escape(p): layer.alpha for p, layer in layers if layer.alpha != alpha},
        use_rslora=first.use_rslora,
        use_dora=first.use_dora,
    )


# --------------------------------------------------------------------------------------- load
def load_peft_adapter(
    model: nn.Module,
    directory: str | Path,
    *,
    path_map: PathMap = None,
    key_prefix: str = DEFAULT_PREFIX,
    strict: bool = True,
) -> nn.Module:
    """Load a PEFT LoRA folder into `model` (in place; returns it).

    If the model has no adapters yet, they are created from the file: each adapted layer gets
    the file's rank (from the tensor shapes) and alpha (`alpha_pattern` matched against the
    file's module names, as PEFT does). Module paths of the file (after `key_prefix`) are mapped
    onto the model by `path_map` (a `{file prefix: model prefix}` dict or a function), else
    exactly, else by an unambiguous dotted-suffix match either way (so "bert.encoder.layer.0..."
    finds "encoder.layer.0..." and vice versa). Every unmatched, ambiguous or mis-shaped entry
    is reported in one error. With `strict=False`, entries with no matching module in the
    model (e.g. the classifier of a sequence-classification adapter loaded onto a bare encoder)
    are skipped with a warning instead; shape mismatches and ambiguous paths still raise.
    """
    directory = Path(directory)
    config_file, weights_file = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not config_file.is_file():
        raise FileNotFoundError(f"No {CONFIG_NAME} in {directory}: not a PEFT adapter folder.")
    if not weights_file.is_file():
        other = (
            " (only adapter_model.bin, which needs torch: convert it to safetensors)"
            if (directory / "adapter_model.bin").is_file()
            else ""
        )
        raise FileNotFoundError(f"No {WEIGHTS_NAME} in {directory}{other}.")
    config = LoraConfig.from_peft_dict(json.loads(config_file.read_text()))
    tensors = {
        (k[len(key_prefix) :] if key_prefix and k.startswith(key_prefix) else k): v
        for k, v in mx.load(str(weights_file)).items()
    }
    lora, magnitudes, others = _split_keys(tensors)
    errors: list[str] = []
    skipped: list[str] = []
    unmatched = None if strict else skipped

    existing = dict(lora_layers(model))
    candidates = sorted(existing) if existing else linear_paths(model)
    resolved: dict[str, str] = {}  # file module path -> model module path
    for file_module in sorted(lora):
        target = _resolve(file_module, candidates, path_map, errors, unmatched=unmatched)
        if target is not None:
            resolved[file_module] = target
    for file_module, parts in sorted(lora.items()):
        missing = {"lora_A", "lora_B"} - set(parts)
        if missing:
            errors.append(f"{file_module}: the file has no {' / '.join(sorted(missing))} weight")
    use_dora = config.use_dora or bool(magnitudes)
    for file_module in magnitudes:
        if file_module not in lora:
            errors.append(f"{file_module}.lora_magnitude_vector has no lora_A / lora_B")

    plan: dict[str, ModulePlan] = {}
    for file_module, target in resolved.items():
        parts = lora[file_module]
        if {"lora_A", "lora_B"} - set(parts):
            continue
        layer = existing.get(target) or get_module(model, target)
        base = layer.base_layer if target in existing else layer
        out_dims, in_dims = linear_shape(base)
        a, b = parts["lora_A"], parts["lora_B"]
        r = a.shape[0]
        if a.ndim != 2 or a.shape[1] != in_dims:
            errors.append(
                f"{file_module}.lora_A: shape {tuple(a.shape)}, model needs ({r}, {in_dims})"
            )
        if b.ndim != 2 or tuple(b.shape) != (out_dims, r):
            errors.append(
                f"{file_module}.lora_B: shape {tuple(b.shape)}, model needs ({out_dims}, {r})"
            )
        if use_dora:
            m = magnitudes.get(file_module)
            if m is None:
                errors.append(f"{file_module}: DoRA adapter without lora_magnitude_vector")
            elif tuple(m.shape) != (out_dims,):
                errors.append(
                    f"{file_module}.lora_magnitude_vector: shape {tuple(m.shape)}, model needs ({out_dims},)"
                )
        plan[target] = ModulePlan(r, config.alpha_for(file_module))
        if target in existing:
            _check_existing(file_module, existing[target], plan[target], config, use_dora, errors)
    if not lora:
        errors.append("the file holds no lora_A / lora_B weights")
    elif not plan and not errors:
        errors.append(f"none of the file's {len(lora)} adapted modules exists in the model")
    if existing:
        for path in sorted(set(existing) - set(resolved.values())):
            errors.append(f"{path}: the model has an adapter here but the file has none")
    assignments = _plan_full_weights(
        model, others, plan, bool(existing), path_map, errors, unmatched
    )
    if errors:
        raise ValueError(_error_text(directory, errors))

    config = config.replace(use_dora=use_dora)
    if not existing:
        apply_plan(model, plan, config)
    else:
        setattr(model, CONFIG_ATTR, config)
    layers = dict(lora_layers(model))
    for file_module, target in resolved.items():
        layer = layers[target]
        dtype = layer.lora_A.weight.dtype
        layer.lora_A.weight = lora[file_module]["lora_A"].astype(dtype)
        layer.lora_B.weight = lora[file_module]["lora_B"].astype(dtype)
        if use_dora:
            layer.lora_magnitude_vector = magnitudes[file_module].astype(dtype)
    for target, param, value, _ in assignments:
        module = get_module(model, target)
        setattr(module, param, value.astype(module[param].dtype))

    if skipped:
        warnings.warn(
            f"Skipped {len(skipped)} adapter entries with no matching module in the model: "
            + ", ".join(sorted(set(skipped))[:8]),
            UserWarning,
            stacklevel=2,
        )
    renamed = {t: f for f, t in resolved.items() if f != t}
    renamed.update({t: f for t, _, _, f in assignments if f != t})
    setattr(model, PEFT_PATHS_ATTR, renamed)
    mx.eval(model.parameters())
    return model


def _plan_full_weights(model, others, plan, adapted, path_map, errors, unmatched):
    """Where each full weight of the file (modules_to_save, biases) goes, checked before the
    model is changed. A wrapped layer's own weights live under `<path>.base_layer` once the
    adapters exist, as in PEFT's in-memory model."""
    module_paths = [p for p, _ in model.named_modules() if p]
    assignments = []
    for key, value in sorted(others.items()):
        file_module, _, param = key.rpartition(".")
        lookup = file_module
        if not adapted and file_module.endswith(".base_layer"):
            lookup = file_module[: -len(".base_layer")]
        owners = [p for p in module_paths if isinstance(get_module(model, p).get(param), mx.array)]
        target = _resolve(
            lookup, owners, path_map, errors, what=f"parameter {param!r} of", unmatched=unmatched
        )
        if target is None:
            continue
        current = get_module(model, target)[param]
        if tuple(current.shape) != tuple(value.shape):
            errors.append(f"{key}: shape {tuple(value.shape)}, model has {tuple(current.shape)}")
            continue
        if not adapted and target in plan:
            target += ".base_layer"
        assignments.append((target, param, value, file_module))
    return assignments


def _split_keys(tensors: dict[str, mx.array]):
    lora: dict[str, dict[str, mx.array]] = {}
    magnitudes: dict[str, mx.array] = {}
    others: dict[str, mx.array] = {}
    for key, value in tensors.items():
        if m := _LORA_KEY.match(key):
            lora.setdefault(m["module"], {})[m["kind"]] = value
        elif m := _MAGNITUDE_KEY.match(key):
            magnitudes[m["module"]] = value
        else:
            others[key] = value
    return lora, magnitudes, others


def _map_path(path: str, path_map: PathMap) -> str:
    if path_map is None:
        return path
    if callable(path_map):
        return path_map(path)
    for prefix in sorted(path_map, key=len, reverse=True):
        if path == prefix or path.startswith(prefix + ".") or prefix == "":
            rest = path[len(prefix) :].lstrip(".")
            new = path_map[prefix]
            return f"{new}.{rest}" if new and rest else (new or rest)
    return path


def _resolve(file_module, candidates, path_map, errors, what="module", unmatched=None):
    """The model path for `file_module`, or None after recording why (in `errors`, or in
    `unmatched` when given and the module simply does not exist in the model)."""
    mapped = _map_path(file_module, path_map)
    if mapped in candidates:
        return mapped
    matches = []
    if not callable(path_map):
        matches = [c for c in candidates if c.endswith("." + mapped) or mapped.endswith("." + c)]
    if len(matches) == 1:
        return matches[0]
    if not matches and unmatched is not None:
        unmatched.append(file_module)
    elif callable(path_map):
        errors.append(f"{what} {file_module!r} -> {mapped!r}: not in the model")
    elif not matches:
        errors.append(
            f"{what} {file_module!r}: no matching module in the model "
            f"(candidates include {candidates[:6]}); pass path_map={{'file.prefix': 'model.prefix'}}"
        )
    else:
        errors.append(f"{what} {file_module!r}: ambiguous, matches {matches[:6]}; pass path_map")
    return None


def _check_existing(file_module, layer, item, config, use_dora, errors) -> None:
    if layer.r != item.r or layer.alpha != item.alpha:
        errors.append(
            f"{file_module}: the model's adapter has r={layer.r}, alpha={layer.alpha}; "
            f"the file's has r={item.r}, alpha={item.alpha}"
        )
    if layer.use_dora != use_dora or layer.use_rslora != config.use_rslora:
        errors.append(f"{file_module}: the model's adapter and the file differ in DoRA / rsLoRA")


def _error_text(directory: Path, errors: list[str]) -> str:
    return (
        f"Cannot load the PEFT adapter in {directory} ({len(errors)} problems):\n  "
        + "\n  ".join(errors)
    )
