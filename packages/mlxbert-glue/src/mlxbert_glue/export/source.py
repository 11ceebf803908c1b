"""What is exported: a task model with its head, or a plain encoder, with its tokenizer.

Loading goes through the task-model layer (``Classifier.from_pretrained``) and
``mlxbert_core.from_pretrained``, so every source they open exports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlx.core as mx

from mlxbert_core import from_pretrained, load_tokenizer

from ..task_model import Classifier, EncoderOnlyError, TaskModelInfo, is_model_folder
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


def open_subject(source: Any, *, dtype: str | None = None, encoder_only: bool = False):
    """An :class:`ExportSubject`: a ``Classifier``, or whatever ``Classifier.from_pretrained``
    opens (a task-model folder, a Hugging Face classifier folder or hub id, an M2-BERT
    checkpoint), or else an encoder's folder, preset name or hub id (through
    ``mlxbert_core.from_pretrained``). ``encoder_only`` exports a classifier's encoder
    without its head."""
    if isinstance(source, Classifier):
        subject = ExportSubject(source.model, source.tokenizer, source.info, repr(source))
    else:
        name = str(source)
        try:
            try:
                if encoder_only and not is_model_folder(name):
                    raise EncoderOnlyError(name)  # the checkpoint's encoder as it is stored
                clf = Classifier.from_pretrained(name, dtype=dtype)
                subject = ExportSubject(clf.model, clf.tokenizer, clf.info, name)
            except EncoderOnlyError:  # no classification head: the encoder alone
                encoder = from_pretrained(name, dtype=dtype)
                subject = ExportSubject(encoder, load_tokenizer(name), None, name)
        except (FileNotFoundError, OSError, KeyError) as exc:
            raise ExportError(f"cannot open model {name!r}: {exc}") from None
    if encoder_only and subject.is_task_model:
        subject = ExportSubject(subject.model.encoder, subject.tokenizer, None, subject.source)
    subject.model.eval()
    mx.eval(subject.model.parameters())
    return subject


__all__ = ["ExportSubject", "open_subject"]
