"""``create_model`` for GLUE and head types alike: GLUE task names are resolved here (labels
and outputs follow the task), everything else goes to the task-model layer by head type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .task_model import create_task_model, register_labels
from .tasks import TASKS, get_task

# GLUE names the labels of checkpoints that only have placeholders (``Classifier(...,
# task="sst2")``): the task-model layer asks this registry, never GLUE's tables.
for _task in TASKS.values():
    if _task.display_labels:
        register_labels(_task.name, _task.display_labels)


def resolve_task(
    task: str, num_labels: int | None, labels: list[str] | None
) -> tuple[str | None, str, int | None, list[str] | None]:
    """(GLUE task name or None, head type, outputs, label names): GLUE names first."""
    key = str(getattr(task, "name", task)).strip().lower()
    try:
        glue = get_task(key)
    except KeyError:
        return None, key, num_labels, labels
    if num_labels is not None and num_labels != glue.num_labels:
        raise ValueError(
            f"GLUE {glue.name} has {glue.num_labels} outputs, not num_labels={num_labels}"
        )
    head = "regression" if glue.is_regression else "multiclass"
    names = None if glue.display_labels is None else list(glue.display_labels)
    return glue.name, head, glue.num_labels, labels or names


def create_model_and_tokenizer(
    name_or_path: str | Path,
    task: str,
    *,
    num_labels: int | None = None,
    labels: list[str] | None = None,
    **kwargs: Any,
):
    """Like :func:`create_model`, also returning the tokenizer and the model's record:
    ``(model, tokenizer, info)``. Keyword arguments: those of
    :func:`mlxbert_glue.task_model.create_task_model`."""
    glue, head, n, names = resolve_task(task, num_labels, labels)
    recorded = kwargs.pop("task", None)
    return create_task_model(
        name_or_path, head, num_labels=n, labels=names, task=glue or recorded, **kwargs
    )


def create_model(name_or_path: str | Path, task: str, **kwargs: Any):
    """A trainable task model: encoder + head [+ LoRA adapters] [+ quantized base].

    Args:
        name_or_path: a preset from :data:`mlxbert_glue.MODELS` (``bert-base-uncased``,
            ``modernbert-base``, ``neobert``, ``all-minilm-l6-v2``, ``m2-bert-80m`` ...), a
            local folder or a Hugging Face repo id; any architecture mlxbert-core knows
            (BERT, ModernBERT, NeoBERT; M2-BERT with ``mlxbert-glue[m2]``).
        task: a GLUE task (``sst2``, ``stsb`` ...: outputs and labels follow the task) or a
            head type (``binary``, ``multiclass``, ``multilabel``, ``regression``,
            ``ordinal``, ``timeseries`` or any head registered with
            ``mlxbert_heads.register_head``) with ``num_labels`` / ``labels``.
        num_labels, labels, lora, quantize, dtype, pooling, head_options, checkpoint, ...:
            see :func:`mlxbert_glue.task_model.create_task_model`.

    The model carries ``model.mlxbert_info`` (what :func:`save_task_model` records).
    """
    model, _tokenizer, _info = create_model_and_tokenizer(name_or_path, task, **kwargs)
    return model


__all__ = ["create_model", "create_model_and_tokenizer", "resolve_task"]
