"""``from_pretrained`` and ``load_tokenizer`` for M2-BERT: preset names, hub ids and folders,
loaded through ``mlxbert_core.from_pretrained`` (which reaches this package's loader through
the architecture registry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlx.nn as nn

import mlxbert_core
from mlxbert_core.encoder import find_encoder
from mlxbert_core.presets import get_preset

from .model import M2BertModel
from .presets import PRESETS, TOKENIZER

__all__ = ["from_pretrained", "load_tokenizer"]


def from_pretrained(
    name_or_path: str | Path,
    *,
    checkpoint: str | Path | None = None,
    num_labels: int | None = None,
    dtype: Any = None,
    task: str | None = None,
) -> nn.Module:
    """Load an M2-BERT model.

    ``name_or_path``: a registry name (see :data:`PRESETS`, any case), a Hugging Face repo id,
    or a local folder with the reference ``config.json`` (a preset's repository without one
    gets the preset's config). ``checkpoint`` picks the weight file (Composer ``.pt``,
    ``pytorch_model.bin`` or ``.safetensors``; default: the folder's ``model.safetensors``,
    ``pytorch_model.bin``, ``model.bin`` or single ``*.pt``).

    Returns the encoder (:class:`~mlxbert_m2.M2BertModel`), or a
    :class:`~mlxbert_m2.M2BertForSequenceClassification` when the file has a classifier or
    ``num_labels`` is given (a fresh head if the file has none). ``task="masked_lm"`` builds
    the MLM model. Weights are cast to ``dtype`` (default float32); the model is in eval mode.
    """
    path = Path(name_or_path)
    if path.is_file():
        raise ValueError(
            f"{path} is a file; pass its folder (with config.json) and checkpoint={path.name}"
        )
    name = str(name_or_path)
    if not path.exists() and get_preset(name) is None and name.count("/") != 1:
        raise FileNotFoundError(
            f"{name!r} is neither a folder, a registry name ({', '.join(PRESETS)}) nor a "
            "Hugging Face repo id (owner/name)"
        )
    plugin_args = {} if checkpoint is None else {"checkpoint": checkpoint}
    model = mlxbert_core.from_pretrained(
        name_or_path, task=task, num_labels=num_labels, dtype=dtype, **plugin_args
    )
    if not isinstance(find_encoder(model), M2BertModel):
        raise ValueError(
            f"{name_or_path} is not an M2-BERT checkpoint (its config.json has no "
            "monarch_mixer_sequence_mixing); load it with mlxbert_core.from_pretrained"
        )
    return model


def load_tokenizer(name_or_path: str | Path):
    """The tokenizer for an M2-BERT model: the folder's own tokenizer files when it has them,
    otherwise ``bert-base-uncased`` (the vocabulary every released M2-BERT uses)."""
    path = Path(name_or_path)
    if path.is_dir() and any(
        (path / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")
    ):
        return mlxbert_core.load_tokenizer(path)
    return mlxbert_core.load_tokenizer(TOKENIZER)
