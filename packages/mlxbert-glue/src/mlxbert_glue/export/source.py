"""What is exported: a task model with its head, or a plain encoder, with its tokenizer.

Loading goes through the task-model layer (``Classifier.from_pretrained``) and
``mlxbert_core.from_pretrained``, so every source they open exports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx

from mlxbert_core import from_pretrained, load_tokenizer

from ..task_model import Classifier, TaskModelInfo
from ..task_model.record import META_FILE
from .errors import ExportError


@dataclass
class ExportSubject:
    """``model`` is a task model (``info`` set) or a bare encoder (``info`` None)."""

    model: Any
    tokenizer: Any
    info: TaskModelInfo | None
    source: str

    @property
    def is_task_model(self) -> bool:
        return self.info is not None

    @property
    def encoder(self) -> Any:
        return self.model.encoder if self.is_task_model else self.model

    @property
    def config(self) -> dict[str, Any]:
        return dict(getattr(self.encoder, "config_dict", None) or {})


def _is_classifier_folder(path: Path) -> bool:
    """A task-model folder, or a Hugging Face sequence-classification folder."""
    if (path / META_FILE).is_file():
        return True
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    names = config.get("architectures") or [] if isinstance(config, dict) else []
    return any(str(n).endswith("ForSequenceClassification") for n in names)


def open_subject(source: Any, *, dtype: str | None = None, encoder_only: bool = False):
    """An :class:`ExportSubject` from a ``Classifier``, a task-model or Hugging Face
    classifier folder (through ``Classifier.from_pretrained``), or an encoder's folder,
    preset name or hub id (through ``mlxbert_core.from_pretrained``). ``encoder_only``
    exports a classifier's encoder without its head."""
    if isinstance(source, Classifier):
        subject = ExportSubject(source.model, source.tokenizer, source.info, repr(source))
    else:
        name = str(source)
        path = Path(name)
        as_classifier = path.is_dir() and _is_classifier_folder(path) and not encoder_only
        try:
            if as_classifier:
                clf = Classifier.from_pretrained(name, dtype=dtype)
                subject = ExportSubject(clf.model, clf.tokenizer, clf.info, name)
            elif path.is_dir() and (path / META_FILE).is_file():
                clf = Classifier.from_pretrained(name, dtype=dtype)
                subject = ExportSubject(clf.model.encoder, clf.tokenizer, None, name)
            else:
                encoder = from_pretrained(name, dtype=dtype)
                subject = ExportSubject(encoder, load_tokenizer(name), None, name)
        except (FileNotFoundError, OSError, KeyError) as exc:
            hint = " (encoder_only / --encoder-only exports its encoder)" if as_classifier else ""
            raise ExportError(f"cannot open model {name!r}: {exc}{hint}") from None
    if encoder_only and subject.is_task_model:
        subject = ExportSubject(subject.model.encoder, subject.tokenizer, None, subject.source)
    subject.model.eval()
    mx.eval(subject.model.parameters())
    return subject


__all__ = ["ExportSubject", "open_subject"]
