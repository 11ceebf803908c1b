"""What a task model is, besides its weights: the facts ``mlxbert.json`` records."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TaskModelInfo:
    """Attached to models built by :func:`mlxbert_glue.create_model` as ``model.mlxbert_info``.

    ``architecture`` is the mlxbert-core architecture name (``bert``, ``modernbert``,
    ``neobert``, or a plugin's such as M2-BERT's); ``config`` the encoder's HF config dict;
    ``source_dir`` the local folder holding its tokenizer files.
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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def model_type(self) -> str:
        """The key the HF export tables use: the core architecture name."""
        return self.architecture

    def to_meta(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "task_type": self.head_task,
            "num_labels": self.num_labels,
            "labels": self.labels,
            "pooling": self.pooling,
            "dropout": self.dropout,
            "architecture": self.architecture,
            "model_type": self.config.get("model_type"),
            "base_model": self.source,
            "max_length": self.max_length,
            "text_template": self.text_template,
            "lora": self.lora,
            "quantization": self.quantization,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any], folder: Path) -> TaskModelInfo:
        import json

        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return cls(
            task=meta.get("task"),
            head_task=meta["task_type"],
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
            extra=dict(meta.get("extra") or {}),
        )
