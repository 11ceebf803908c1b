"""Entry point for ``mlxbert_core.from_pretrained``: claims configs with
``monarch_mixer_sequence_mixing`` (M2-BERT configs say ``model_type: bert``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlx.nn as nn

from mlxbert_core.registry import Architecture

from .checkpoints import sanitize
from .loading import build_model, load_folder


def _build(config: dict[str, Any], task: str) -> nn.Module:
    return build_model(config, task)


def _load(
    folder: Path,
    config: dict[str, Any],
    *,
    task: str | None = None,
    dtype: Any = None,
    **kwargs: Any,
) -> nn.Module:
    return load_folder(
        folder,
        config,
        checkpoint=kwargs.get("checkpoint"),
        task=task,
        num_labels=kwargs.get("num_labels"),
        dtype=dtype,
    )


ARCHITECTURE = Architecture(
    name="m2_bert",
    matches=lambda c: bool(c.get("monarch_mixer_sequence_mixing")),
    priority=10,
    build=_build,
    sanitize=sanitize,
    load=_load,
    description="M2-BERT (Monarch Mixer): Hyena long convolutions and block-diagonal GLU MLPs",
)
