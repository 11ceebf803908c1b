"""What a task model is, besides its weights: the typed record that ``mlxbert.json`` holds.

One record, written and read here only. Everything that opens a model folder (loading,
``Classifier``, the CLI's ``predict``) reads this record, never the raw JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Tokens per input when nothing else says (a recipe, a preset, the model folder).
DEFAULT_MAX_LENGTH = 128

FORMAT = "mlxbert-task-model"
FORMAT_VERSION = 1
META_FILE = "mlxbert.json"

# Config keys describing a classifier's labels: they belong to the task model, not to the
# encoder it was built from.
CLASSIFIER_CONFIG_KEYS = ("id2label", "label2id", "num_labels", "problem_type", "architectures")


@dataclass
class TaskModelInfo:
    """Attached to models built by the task-model layer as ``model.mlxbert_info``.

    task:          what the model was trained for, as its trainer named it (a GLUE task such
                   as ``sst2``, or the head type).
    head_task:     the head type (``binary``, ``multiclass``, ... or a user-registered one).
    architecture:  the mlxbert-core architecture name (``bert``, ``modernbert``, ``neobert``,
                   or a plugin's such as M2-BERT's).
    config:        the encoder's Hugging Face config dict (classifier keys removed).
    source:        what the encoder was loaded from (preset name, hub id or folder).
    source_dir:    the local folder holding its tokenizer files.
    head:          the head's ``get_config()`` (set when saved or loaded).
    layout:        ``"hf"`` (weights under the reference classifier's names) or
                   ``"mlxbert"`` (a quantized model, under mlxbert's own names).
    head_keys:     head parameter -> checkpoint key where the head has reference names.
    extra:         callers' own settings (the CLI keeps its table template and targets here).
    """

    task: str | None
    head_task: str
    num_labels: int
    labels: list[str] | None
    pooling: str
    architecture: str
    config: dict[str, Any]
    source: str
    source_dir: str | None = None
    max_length: int | None = None
    text_template: str | None = None
    dropout: float = 0.0
    lora: dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None
    head: dict[str, Any] | None = None
    adapter: dict[str, Any] | None = None
    layout: str = "hf"
    head_keys: dict[str, str] | None = None
    hf_compatible: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model_type(self) -> str:
        return self.architecture

    @property
    def tokens(self) -> int:
        """The maximum length inputs are cut to."""
        return int(self.max_length or DEFAULT_MAX_LENGTH)

    def label_names(self, count: int | None = None) -> list[str]:
        """Label names for ``count`` outputs (their indices when the record has none)."""
        n = self.num_labels if count is None else count
        if self.labels and len(self.labels) == n:
            return [str(x) for x in self.labels]
        return [str(i) for i in range(n)]

    def to_meta(self) -> dict[str, Any]:
        """The ``mlxbert.json`` dict."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "task_type": self.head_task,
            "num_labels": self.num_labels,
            "labels": self.labels,
            "pooling": self.pooling,
            "dropout": self.dropout,
            "architecture": self.architecture,
            "model_type": self.config.get("model_type"),
            "base_model": self.source,
            "max_length": self.tokens,
            "text_template": self.text_template,
            "lora": self.lora,
            "quantization": self.quantization,
            "adapter": self.adapter,
            "head": self.head,
            "weights_layout": self.layout,
            "head_keys": self.head_keys,
            "hf_compatible": self.hf_compatible,
            "extra": self.extra,
        }

    @classmethod
    def from_meta(
        cls, meta: dict[str, Any], folder: Path, config: dict[str, Any] | None = None
    ) -> TaskModelInfo:
        """The record of a folder's ``mlxbert.json`` (``config``: its config.json)."""
        if config is None:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        head = meta.get("head")
        return cls(
            task=meta.get("task"),
            head_task=str((head or {}).get("task") or meta["task_type"]),
            num_labels=int(meta["num_labels"]),
            labels=meta.get("labels"),
            pooling=meta.get("pooling", "cls"),
            architecture=meta.get("architecture") or config.get("model_type", ""),
            config=config,
            source=meta.get("base_model") or str(folder),
            source_dir=str(folder),
            max_length=meta.get("max_length"),
            text_template=meta.get("text_template"),
            dropout=float(meta.get("dropout", 0.0)),
            lora=meta.get("lora"),
            quantization=meta.get("quantization"),
            head=head,
            adapter=meta.get("adapter"),
            layout=meta.get("weights_layout") or "hf",
            head_keys=meta.get("head_keys"),
            hf_compatible=bool(meta.get("hf_compatible", False)),
            extra=dict(meta.get("extra") or {}),
        )


def encoder_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` without its classifier and quantization keys: the encoder's own config."""
    out = dict(config)
    for key in (*CLASSIFIER_CONFIG_KEYS, "quantization"):
        out.pop(key, None)
    return out


__all__ = [
    "DEFAULT_MAX_LENGTH",
    "FORMAT",
    "FORMAT_VERSION",
    "META_FILE",
    "TaskModelInfo",
    "encoder_config",
]
