"""``from_pretrained``: a folder or Hugging Face repo id -> a ready MLX model, loaded strictly."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from mlxbert_core._private.hub import (
    CONFIG_PATTERNS,
    SAFETENSORS_PATTERNS,
    TOKENIZER_PATTERNS,
    TORCH_PATTERNS,
    resolve_folder,
)
from mlxbert_core.checkpoints import WEIGHT_FILES, load_weights
from mlxbert_core.dtypes import parse_dtype
from mlxbert_core.encoder import find_encoder
from mlxbert_core.presets import (
    ModelPreset,
    missing_plugin,
    preset_for_hub_id,
    resolve_model_source,
)
from mlxbert_core.registry import TASKS, Architecture, resolve_architecture
from mlxbert_core.weights import WeightMismatchError, check_weights, load_weights_strict
from mlxbert_quant import apply_quantization_config

__all__ = ["WeightMismatchError", "from_pretrained", "parse_dtype", "read_config"]

logger = logging.getLogger(__name__)

#: Parameter-name prefixes of freshly initialisable classification heads (an architecture may
#: override them with ``Architecture.extra["head_prefixes"]``).
DEFAULT_HEAD_PREFIXES = ("classifier.", "head.", "dense.", "score.", "pre_classifier.")


def read_config(folder: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a model folder, with a clear error when absent or broken."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no config.json in {folder}: a model folder needs config.json plus weights "
            f"({' or '.join(WEIGHT_FILES[::2])})"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return config


def _has_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in WEIGHT_FILES)


def _resolve_model_folder(
    name_or_path, revision, local_files_only, cache_dir, extra_files: tuple[str, ...] = ()
) -> Path:
    files = CONFIG_PATTERNS + TOKENIZER_PATTERNS + extra_files

    def done(folder: Path) -> bool:
        return _has_weights(folder) or any(any(folder.glob(p)) for p in extra_files)

    return resolve_folder(
        name_or_path,
        revision=revision,
        local_files_only=local_files_only,
        cache_dir=cache_dir,
        patterns=(files + SAFETENSORS_PATTERNS, files + TORCH_PATTERNS),
        done=done,
    )


def _folder_config(folder: Path, preset: ModelPreset | None) -> dict[str, Any]:
    """The folder's config.json, else the reference config its preset carries."""
    if preset is not None and "config" in preset.settings and not (folder / "config.json").exists():
        return dict(preset.settings["config"])
    return read_config(folder)


def _with_num_labels(config: dict[str, Any], num_labels: int) -> dict[str, Any]:
    if not isinstance(num_labels, int) or num_labels < 1:
        raise ValueError(f"num_labels must be a positive integer, got {num_labels!r}")
    config = dict(config, num_labels=num_labels)
    id2label = config.get("id2label")
    if isinstance(id2label, dict) and len(id2label) != num_labels:
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(num_labels)}
        config["label2id"] = {f"LABEL_{i}": i for i in range(num_labels)}
    return config


def _head_prefixes(arch: Architecture) -> tuple[str, ...]:
    return tuple(arch.extra.get("head_prefixes", DEFAULT_HEAD_PREFIXES))


def _check_and_load(
    model: nn.Module,
    weights: dict[str, mx.array],
    *,
    source: Path,
    fresh_head_prefixes: tuple[str, ...] | None,
    notes: list[str],
) -> None:
    missing, _, misshaped = check_weights(model, weights)
    fresh: list[str] = []
    if fresh_head_prefixes:
        is_head = lambda key: key.startswith(fresh_head_prefixes)  # noqa: E731
        fresh = [k for k in missing if is_head(k)] + [k for k in misshaped if is_head(k)]
        if fresh and all(is_head(k) for k in missing):
            for key in fresh:
                weights.pop(key, None)
            note = (
                f"classification head initialised randomly ({len(fresh)} tensors: "
                f"{', '.join(sorted(fresh))}); train it before use"
            )
            notes.append(note)
            logger.warning("%s: %s", source, note)
        else:
            fresh = []
    hint = None
    if not fresh and missing and all(k.startswith(DEFAULT_HEAD_PREFIXES) for k in missing):
        hint = "  (only task-head weights are missing: pass num_labels=... to start a fresh head)"
    load_weights_strict(model, weights, source=source, allow_missing=fresh, hint=hint)


def _finish(model: nn.Module, folder: Path, config: dict[str, Any], notes: list[str]) -> nn.Module:
    model.eval()
    # Models keep their own parsed config (a dataclass) as ``config``; the raw dict is
    # attached too, to the model and to the encoder inside a task model. object.__setattr__
    # keeps plain data out of the module's parameter tree.
    if getattr(model, "config", None) is None:
        object.__setattr__(model, "config", config)
    encoder = find_encoder(model)
    for target in (model,) if encoder is None or encoder is model else (model, encoder):
        object.__setattr__(target, "config_dict", config)
        object.__setattr__(target, "name_or_path", str(folder))
    object.__setattr__(model, "load_notes", list(notes))
    return model


def from_pretrained(
    name_or_path: str | os.PathLike,
    *,
    dtype: str | mx.Dtype | None = None,
    revision: str | None = None,
    local_files_only: bool = False,
    task: str | None = "encoder",
    num_labels: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Load a model from a local folder, a Hugging Face repo id or a preset name
    (``mlxbert_core.MODELS``).

    The folder needs ``config.json`` and weights (``model.safetensors``, sharded safetensors,
    or ``pytorch_model.bin``, read without PyTorch). ``model_type`` picks the architecture
    (``bert``, ``modernbert``, ``neobert`` and plugins such as mlxbert-m2). Loading is strict:
    every missing, unexpected or mis-shaped weight is listed in one :class:`WeightMismatchError`.
    Task-head weights the requested ``task`` does not use are ignored (noted in
    ``model.load_notes`` and logged).

    task:       ``"encoder"`` (default), ``"masked_lm"`` or ``"sequence_classification"``;
                ``None``: ``sequence_classification`` with ``num_labels``, else what the
                checkpoint holds where the architecture's loader can tell (M2-BERT: a
                classifier when the file has one), else ``encoder``.
    num_labels: for ``sequence_classification``; when the checkpoint has no classifier (or one
                of another size) the head is initialised randomly and a note says so.
    dtype:      ``float32`` / ``float16`` / ``bfloat16``; default float32 (a quantized folder
                keeps the dtypes it was saved with).
    A folder whose config.json has a ``"quantization"`` block (mlxbert-quant's
    ``save_quantized``) is quantized the same way before its weights are loaded.

    Other keyword arguments go to an architecture plugin's own loader (M2-BERT:
    ``checkpoint=`` picks one of several checkpoint files in a folder); the generic loader
    refuses them. A preset (by name, or by its hub id) may supply the config of a checkpoint
    shipped without ``config.json`` and extra files to fetch (``ModelPreset.settings``).

    Returns the model in eval mode with ``name_or_path`` (the resolved folder), ``config_dict``
    (config.json) and ``load_notes`` attached.
    """
    if task is None and num_labels is not None:
        task = "sequence_classification"
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if num_labels is not None and task != "sequence_classification":
        raise ValueError("num_labels is only meaningful with task='sequence_classification'")
    target_dtype = parse_dtype(dtype)
    source, preset = resolve_model_source(name_or_path)
    if preset is None and (package := missing_plugin(name_or_path)):
        raise ValueError(
            f"{name_or_path!r} is a model of the {package} plugin: pip install {package}"
        )
    preset = preset or preset_for_hub_id(source)
    if preset is not None and preset.checkpoint and "checkpoint" not in kwargs:
        kwargs["checkpoint"] = preset.checkpoint
    extra_files = tuple(preset.settings.get("files", ())) if preset is not None else ()
    folder = _resolve_model_folder(source, revision, local_files_only, cache_dir, extra_files)
    config = _folder_config(folder, preset)
    if num_labels is not None:
        config = _with_num_labels(config, num_labels)
    arch = resolve_architecture(config, source=folder / "config.json")

    if arch.load is not None:  # a plugin that knows its own checkpoint formats
        model = arch.load(
            folder, config, task=task, dtype=target_dtype, num_labels=num_labels, **kwargs
        )
        return _finish(model, folder, config, list(getattr(model, "load_notes", []) or []))

    if kwargs:
        raise TypeError(
            f"from_pretrained got unexpected argument(s) {', '.join(sorted(kwargs))} for a "
            f"{arch.name} model"
        )
    task = task or "encoder"
    model = arch.build(config, task)
    quant_block = config.get("quantization")
    if quant_block:
        # mlxbert-quant's layers, with its fast product for many rows.
        apply_quantization_config(model, config)
    weights = load_weights(folder)
    weights, notes = arch.sanitize(weights, model)
    notes = list(notes)
    for note in notes:
        logger.info("%s: %s", folder, note)
    fresh = _head_prefixes(arch) if (task == "sequence_classification" and num_labels) else None
    _check_and_load(model, weights, source=folder, fresh_head_prefixes=fresh, notes=notes)
    if target_dtype is not None:
        model.set_dtype(target_dtype)
    elif not quant_block:
        model.set_dtype(mx.float32)
    return _finish(model, folder, config, notes)
