"""``Classifier``: predictions from a saved task-model folder in three lines.

    >>> from mlxbert_glue import Classifier
    >>> clf = Classifier.from_pretrained("runs/sst2")
    >>> clf.classify("a gorgeous, witty, seductive movie.")
    {'label': 'positive', 'confidence': 0.98, 'scores': {'negative': 0.02, 'positive': 0.98}}

Works for any folder written by :func:`mlxbert_glue.save_task_model` (BERT, ModernBERT,
NeoBERT, M2-BERT when mlxbert-m2 is installed), for binary, multi-class, multi-label and
regression heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .evaluate import predict_logits
from .features import pad_id_of, tokenize_texts


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Classifier:
    """Inference wrapper around a trained task model and its tokenizer.

    Use :meth:`from_pretrained`; ``info`` is the folder's ``mlxbert.json``.
    """

    def __init__(self, model: Any, tokenizer: Any, info: dict[str, Any]):
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.task_type = str(info.get("head", {}).get("task") or info.get("task_type") or "")
        self.labels: list[str] | None = info.get("labels")
        self.max_length = int(info.get("max_length") or 128)
        self.threshold = float(info.get("threshold", 0.5))
        self.model.eval()

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, *, dtype: str | None = None) -> Classifier:
        """Load a task-model folder (``config.json``, ``model.safetensors``,
        ``tokenizer.json``, ``mlxbert.json``)."""
        from .model_io import load_task_model

        model, tokenizer, info = load_task_model(model_dir, dtype=dtype)
        return cls(model, tokenizer, info)

    # ------------------------------------------------------------------ public API
    def classify(self, text: str) -> dict[str, Any]:
        """Label, confidence and per-label scores for one text."""
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
        features = tokenize_texts(self.tokenizer, texts, pairs, max_length=self.max_length)
        logits = predict_logits(
            self.model, features, batch_size=batch_size, pad_id=pad_id_of(self.tokenizer)
        )
        return [self._result(row) for row in logits]

    # ------------------------------------------------------------------ helpers
    def _label_names(self, n: int) -> list[str]:
        if self.labels and len(self.labels) == n:
            return [str(x) for x in self.labels]
        return [str(i) for i in range(n)]

    def _result(self, logits: np.ndarray) -> dict[str, Any]:
        """Turn one row of head outputs into a result, through the head's own predict /
        predict_proba (target scaling, temperature, thresholds and ordinal decoding are the
        head's business)."""
        head = self.model.head
        row = np.asarray(logits, dtype=np.float32)[None]
        kind = self.task_type
        if kind in ("regression", "timeseries"):
            values = np.asarray(head.predict(row), dtype=np.float64).reshape(-1)
            if len(values) == 1:
                return {"value": float(values[0])}
            return {"value": [float(v) for v in values]}
        if kind == "multilabel":
            probs = np.asarray(head.predict_proba(row), dtype=np.float64).reshape(-1)
            chosen = np.asarray(head.predict(row)).reshape(-1).astype(bool)
            names = self._label_names(len(probs))
            return {
                "label": [n for n, keep in zip(names, chosen) if keep],
                "confidence": float(np.max(probs)) if len(probs) else 0.0,
                "scores": dict(zip(names, map(float, probs))),
            }
        if hasattr(head, "predict_proba"):
            probs = np.asarray(head.predict_proba(row), dtype=np.float64)
            probs = probs.reshape(-1)
        else:
            probs = _softmax(row.astype(np.float64)).reshape(-1)
        if kind == "binary" and len(probs) == 1:  # P(positive) -> [P(neg), P(pos)]
            probs = np.array([1.0 - probs[0], probs[0]])
        names = self._label_names(len(probs))
        if hasattr(head, "predict"):
            best = int(np.asarray(head.predict(row)).reshape(-1)[0])
        else:
            best = int(np.argmax(probs))
        return {
            "label": names[best],
            "confidence": float(probs[best]),
            "scores": dict(zip(names, map(float, probs))),
        }

    def __repr__(self) -> str:
        return (
            f"Classifier(task={self.info.get('task')!r}, head={self.task_type!r}, "
            f"labels={self.labels!r})"
        )
