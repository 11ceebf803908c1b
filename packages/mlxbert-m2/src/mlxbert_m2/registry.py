"""Entry point for ``mlxbert_core.from_pretrained``: claims configs with
``monarch_mixer_sequence_mixing`` (M2-BERT configs say ``model_type: bert``), and records
M2-BERT's reference classifier and published checkpoints for code above core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlx.nn as nn

from mlxbert_core.classifier_layout import ClassifierLayout
from mlxbert_core.registry import Architecture

from .checkpoints import sanitize
from .loading import build_model, load_folder
from .model import NAME
from .presets import MODEL_PRESETS


def _build(config: dict[str, Any], task: str) -> nn.Module:
    return build_model(config, task)


def _load(
    folder: Path,
    config: dict[str, Any],
    *,
    task: str | None = None,
    dtype: Any = None,
    num_labels: int | None = None,
    checkpoint: str | Path | None = None,
) -> nn.Module:
    return load_folder(
        folder, config, checkpoint=checkpoint, task=task, num_labels=num_labels, dtype=dtype
    )


def _pooling(config: dict[str, Any]) -> str:
    return "mean" if config.get("pool_all") else "cls"


#: The reference ``BertForSequenceClassification`` of M2-BERT: classifier(dropout(pooler)),
#: the pooler being ``tanh(bert.pooler.dense(v))`` with v the [CLS] state or, with
#: ``pool_all``, the masked mean. transformers has no M2-BERT class (``hf_class`` None).
#: Not described here: ``sequence_token_planting`` (v averages planted [CLS] states) and
#: ``use_cls_token`` (the classifier reads the raw [CLS] state); no preset uses either.
CLASSIFIER = ClassifierLayout(
    hf_class=None,
    encoder_prefix="bert.",
    body="pooler",
    body_keys={"dense.weight": "bert.pooler.dense.weight", "dense.bias": "bert.pooler.dense.bias"},
    pooling=_pooling,
    extra={"poolings": ("cls", "mean")},
)

ARCHITECTURE = Architecture(
    name=NAME,
    matches=lambda c: bool(c.get("monarch_mixer_sequence_mixing")),
    priority=10,
    build=_build,
    sanitize=sanitize,
    load=_load,
    description="M2-BERT (Monarch Mixer): Hyena long convolutions and block-diagonal GLU MLPs",
    classifier=CLASSIFIER,
    presets=MODEL_PRESETS,
)
