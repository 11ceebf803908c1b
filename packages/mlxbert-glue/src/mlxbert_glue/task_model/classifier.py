"""``Classifier``: predictions from a task model in three lines.

    >>> from mlxbert_glue import Classifier
    >>> clf = Classifier.from_pretrained("runs/sst2")
    >>> clf.classify("a gorgeous, witty, seductive movie.")
    {'label': 'positive', 'confidence': 0.98, 'scores': {'negative': 0.02, 'positive': 0.98}}

Works for any head: what a prediction looks like follows the head's ``prediction_kind()``
(one label with probabilities, a set of labels, or values), and the numbers come from the
head's own ``predict`` / ``predict_proba`` (target scaling, temperature, thresholds and
ordinal decoding are the head's business).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .inputs import pad_id_of, tokenize_texts
from .predict import predict_logits
from .record import TaskModelInfo
from .sources import open_model


class Classifier:
    """Inference wrapper around a task model, its tokenizer and its record.

    Open one with :meth:`from_pretrained` (or ``Classifier(checkpoint=..., task=...,
    device=...)``, the same thing); ``info`` is the model's :class:`TaskModelInfo`.
    """

    def __init__(
        self,
        model: Any = None,
        tokenizer: Any = None,
        info: TaskModelInfo | None = None,
        *,
        checkpoint: str | Path | None = None,
        **options: Any,
    ):
        if model is None:
            if checkpoint is None:
                raise TypeError(
                    "Classifier needs a model, tokenizer and info, or checkpoint=... (what "
                    "Classifier.from_pretrained opens)"
                )
            model, tokenizer, info = open_model(checkpoint, **options)
        elif checkpoint is not None or options:
            raise TypeError("give either a model, tokenizer and info, or checkpoint=..., not both")
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.kind = type(model.head).prediction_kind()
        self.model.eval()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        *,
        task: str | None = None,
        checkpoint: str | None = None,
        num_labels: int | None = None,
        dtype: str | None = None,
        device: str | None = None,
        tokenizer: str | Path | None = None,
    ) -> Classifier:
        """Open a trained classifier: an mlxbert model folder; a Hugging Face
        sequence-classification folder, hub id or preset of any supported architecture; or an
        M2-BERT checkpoint (``checkpoint=`` picks the file when a folder holds several).

        ``task`` (e.g. a GLUE task) names the labels when the checkpoint has only
        placeholders; ``num_labels`` checks the number of outputs; ``device`` is ``"cpu"``
        or ``"gpu"``; ``tokenizer`` points at the tokenizer when the checkpoint's folder has
        none. A checkpoint without a classification head is refused: fine-tune it first.
        """
        return cls(
            *open_model(
                name_or_path,
                task=task,
                checkpoint=checkpoint,
                num_labels=num_labels,
                dtype=dtype,
                device=device,
                tokenizer=tokenizer,
            )
        )

    @property
    def labels(self) -> list[str] | None:
        return self.info.labels

    @property
    def max_length(self) -> int:
        return self.info.tokens

    @property
    def task_type(self) -> str:
        return self.info.head_task

    # ------------------------------------------------------------------ public API
    def classify(self, text: str) -> dict[str, Any]:
        """Label, confidence and per-label scores for one text (or ``{"value"}``)."""
        return self.classify_batch([text])[0]

    def classify_pair(self, text: str, text_pair: str) -> dict[str, Any]:
        """The same for a sentence pair (NLI, paraphrase, similarity)."""
        return self.classify_batch([(text, text_pair)])[0]

    def classify_batch(
        self, texts_or_pairs: Sequence[str | tuple[str, str]], *, batch_size: int = 32
    ) -> list[dict[str, Any]]:
        """One result per input; inputs are texts or ``(text, text_pair)`` tuples (not mixed)."""
        items = list(texts_or_pairs)
        if not items:
            return []
        is_pair = [isinstance(x, (tuple, list)) for x in items]
        if any(is_pair) and not all(is_pair):
            raise ValueError("classify_batch: pass either all single texts or all (a, b) pairs")
        if all(is_pair):
            if any(len(x) != 2 for x in items):
                raise ValueError("classify_batch: each pair must be a (text, text_pair) tuple")
            texts = [str(a) for a, _ in items]
            pairs: list[str] | None = [str(b) for _, b in items]
        else:
            texts, pairs = [str(x) for x in items], None
        return self.results(self.logits(texts, pairs, batch_size=batch_size))

    def logits(
        self, texts: Sequence[str], pairs: Sequence[str] | None = None, *, batch_size: int = 32
    ) -> np.ndarray:
        """The head's raw outputs for texts (and pairs), one row per input."""
        features = tokenize_texts(self.tokenizer, texts, pairs, max_length=self.max_length)
        return predict_logits(
            self.model, features, batch_size=batch_size, pad_id=pad_id_of(self.tokenizer)
        )

    def results(self, logits: np.ndarray) -> list[dict[str, Any]]:
        """Head outputs -> one result dict per row (see :meth:`classify`)."""
        head = self.model.head
        rows = np.asarray(logits, dtype=np.float32)
        if self.kind == "value":
            values = np.asarray(head.predict(rows), dtype=np.float64).reshape(len(rows), -1)
            return [
                {"value": float(v[0])} if len(v) == 1 else {"value": [float(x) for x in v]}
                for v in values
            ]
        probs = np.asarray(head.predict_proba(rows), dtype=np.float64).reshape(len(rows), -1)
        chosen = np.asarray(head.predict(rows))
        if self.kind == "labels":
            names = self.info.label_names(probs.shape[1])
            chosen = chosen.reshape(len(rows), -1).astype(bool)
            return [
                {
                    "labels": [n for n, keep in zip(names, picks) if keep],
                    "label": [n for n, keep in zip(names, picks) if keep],
                    "confidence": float(np.max(p)) if len(p) else 0.0,
                    "scores": dict(zip(names, map(float, p))),
                }
                for p, picks in zip(probs, chosen)
            ]
        if probs.shape[1] == 1:  # P(positive) -> [P(negative), P(positive)]
            probs = np.concatenate([1.0 - probs, probs], axis=1)
        names = self.info.label_names(probs.shape[1])
        best = chosen.reshape(len(rows)).astype(np.int64)
        return [
            {
                "label": names[b],
                "confidence": float(p[b]),
                "scores": dict(zip(names, map(float, p))),
            }
            for p, b in zip(probs, best)
        ]

    def __repr__(self) -> str:
        return (
            f"Classifier(task={self.info.task!r}, head={self.info.head_task!r}, "
            f"labels={self.labels!r})"
        )


__all__ = ["Classifier"]
