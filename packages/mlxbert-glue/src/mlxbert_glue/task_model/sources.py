"""Open a trained classifier from whatever it comes as: an mlxbert model folder, or a
reference sequence-classification checkpoint -- a Hugging Face folder or hub id
(``BertForSequenceClassification``, ``ModernBertForSequenceClassification``, NeoBERT's), a
preset, or an M2-BERT checkpoint in any of its formats (Composer ``.pt``,
``pytorch_model.bin``, ``model.safetensors``).

A reference checkpoint becomes the same task model mlxbert trains (encoder + head laid out
after the architecture's :class:`mlxbert_core.ClassifierLayout`): the head's weights are read
under their reference names, strictly, and the labels come from the config's ``id2label``
(or, when those are placeholders, from a named task's labels: see :func:`register_labels`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlx.core as mx
from mlx.utils import tree_flatten

from mlxbert_core import (
    WeightMismatchError,
    available_architectures,
    find_encoder,
    from_pretrained,
    load_tokenizer,
    set_device,
)

from .build import build_task_model
from .folder import open_task_model
from .layout import (
    classifier_layout,
    from_checkpoint,
    head_task_of_config,
    plan_head,
    reference_head_keys,
)
from .record import META_FILE, TaskModelInfo, encoder_config

#: Inputs are cut to this many tokens when a checkpoint says nothing shorter.
DEFAULT_INFERENCE_LENGTH = 512

_TASK_LABELS: dict[str, tuple[str, ...]] = {}
_PLACEHOLDER = re.compile(r"^(LABEL_)?\d+$")


def register_labels(task: str, labels: Sequence[str]) -> None:
    """Name the labels of ``task`` (e.g. GLUE's ``sst2`` -> negative, positive), for
    checkpoints whose config has only placeholder labels (``LABEL_0`` ...)."""
    _TASK_LABELS[task.strip().lower()] = tuple(str(x) for x in labels)


def task_labels(task: str) -> tuple[str, ...] | None:
    """The labels registered for ``task``, or None."""
    return _TASK_LABELS.get(task.strip().lower())


class EncoderOnlyError(ValueError):
    """A checkpoint with no classification head: it must be fine-tuned first."""


def _labels(config: dict[str, Any], count: int, task: str | None, source: Any) -> list[str] | None:
    id2label = config.get("id2label") or {}
    names = [str(id2label.get(str(i), id2label.get(i, i))) for i in range(count)]
    if names and not all(_PLACEHOLDER.match(n) for n in names):
        return names
    if task is None:
        return None
    named = task_labels(task)
    if named is None:
        known = ", ".join(sorted(_TASK_LABELS)) or "none registered"
        raise ValueError(f"task={task!r} names no labels (known tasks: {known})")
    if len(named) != count:
        raise ValueError(
            f"{source} has {count} outputs but task {task!r} has {len(named)} labels "
            f"({', '.join(named)})"
        )
    return list(named)


def _classifier_keys() -> set[str]:
    """Checkpoint names of every registered architecture's classifier weights."""
    return {
        key
        for arch in available_architectures().values()
        if arch.classifier is not None
        for key in arch.classifier.checkpoint_keys().values()
    }


def _load_reference(source: str, checkpoint: str | None, num_labels: int | None, dtype):
    extra = {"checkpoint": checkpoint} if checkpoint else {}
    try:
        full = from_pretrained(
            source, task="sequence_classification", num_labels=num_labels, dtype=dtype, **extra
        )
    except WeightMismatchError as exc:
        if exc.missing and not exc.unexpected and set(exc.missing) <= _classifier_keys():
            raise EncoderOnlyError(
                f"{source} has no classification head (an encoder-only checkpoint); fine-tune "
                "it first (`mlxbert train --model ...` or `mlxbert glue finetune --model ...`), "
                "then open the model folder that writes"
            ) from None
        raise
    fresh = [n for n in getattr(full, "load_notes", []) if "initialised randomly" in n]
    if fresh:
        raise ValueError(
            f"{source}: its classifier does not have num_labels={num_labels} outputs ({fresh[0]})"
        )
    return full


def open_reference_classifier(
    source: str | Path,
    *,
    task: str | None = None,
    checkpoint: str | None = None,
    num_labels: int | None = None,
    dtype: str | None = None,
    tokenizer: str | Path | None = None,
):
    """A reference sequence-classification checkpoint as a task model:
    ``(model, tokenizer, info)`` (see the module doc). ``tokenizer``: where its tokenizer is,
    when the checkpoint's folder has none (M2-BERT's use bert-base-uncased's)."""
    full = _load_reference(str(source), checkpoint, num_labels, dtype)
    encoder = find_encoder(full)
    layout = classifier_layout(encoder.architecture)
    if layout is None:
        raise ValueError(f"{encoder.architecture} has no reference classifier layout")
    config = dict(getattr(full, "config_dict", None) or encoder.config_dict)
    flat = dict(tree_flatten(full.parameters()))
    outputs = int(flat["classifier.weight"].shape[0])
    head_task = head_task_of_config({**config, "num_labels": outputs})
    hidden = int(encoder.hidden_size)
    plan = plan_head(layout, config, hidden, None)
    folder = Path(encoder.name_or_path or str(source))
    limit = min(encoder.max_positions, DEFAULT_INFERENCE_LENGTH)
    info = TaskModelInfo(
        task=task or head_task,
        head_task=head_task,
        num_labels=outputs,
        labels=_labels(config, outputs, task, source) if head_task != "regression" else None,
        pooling=plan.pooling,
        architecture=encoder.architecture,
        config=encoder_config(config),
        source=str(source),
        source_dir=str(folder) if folder.is_dir() else None,
        max_length=encoder.input_length or limit,
        dropout=plan.pooled_dropout,
    )
    model = build_task_model(encoder, info, plan=plan)
    keys = reference_head_keys(info, model.head)
    if keys is None:
        name = layout.hf_class or f"the {encoder.architecture} reference classifier"
        raise ValueError(f"{source}: its classifier is not laid out as {name}'s")
    missing = [key for key in keys.values() if key not in flat]
    if missing:
        raise WeightMismatchError(f"{source} lacks classifier weights {missing}", missing=missing)
    pairs = [
        (param, from_checkpoint(param, flat[key], head_task, model.head))
        for param, key in keys.items()
    ]
    model.head.load_weights(pairs, strict=True)
    info.head = model.head.get_config()
    info.head_keys = keys
    mx.eval(model.parameters())
    model.eval()
    tokenizer = load_tokenizer(tokenizer or (folder if folder.is_dir() else source))
    return model, tokenizer, info


def is_model_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder mlxbert saved (it holds ``mlxbert.json``)."""
    return (Path(path) / META_FILE).is_file()


def open_model(
    name_or_path: str | Path,
    *,
    task: str | None = None,
    checkpoint: str | None = None,
    num_labels: int | None = None,
    dtype: str | None = None,
    device: str | None = None,
    tokenizer: str | Path | None = None,
):
    """Any trained classifier as ``(model, tokenizer, info)``: an mlxbert model folder, or a
    reference checkpoint (see the module doc). ``device``: ``"cpu"`` or ``"gpu"``, made MLX's
    default before loading."""
    if device is not None:
        set_device(device)
    path = Path(name_or_path)
    if not path.exists() and (
        path.is_absolute() or len(path.parts) > 2 or str(name_or_path).startswith((".", "~"))
    ):
        raise FileNotFoundError(f"model folder {path} does not exist")
    if is_model_folder(name_or_path):
        model, tokenizer, info = open_task_model(name_or_path, dtype=dtype)
        if num_labels is not None and num_labels != info.num_labels:
            raise ValueError(
                f"{name_or_path} has {info.num_labels} outputs, not num_labels={num_labels}"
            )
        return model, tokenizer, info
    return open_reference_classifier(
        name_or_path,
        task=task,
        checkpoint=checkpoint,
        num_labels=num_labels,
        dtype=dtype,
        tokenizer=tokenizer,
    )


__all__ = [
    "EncoderOnlyError",
    "is_model_folder",
    "open_model",
    "open_reference_classifier",
    "register_labels",
    "task_labels",
]
