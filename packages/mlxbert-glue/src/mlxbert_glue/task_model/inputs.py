"""Texts (and text pairs) to the token-id features the training engine batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .files import read_json, write_json


@dataclass
class Examples:
    """What a task model learns from or predicts: texts, optional second texts of pairs,
    optional targets (``labels``: class ids, 0/1 rows, values), and optional extra head
    inputs per row (``extra``: e.g. a forecasting head's ``history``)."""

    texts: list[str]
    pairs: list[str] | None = None
    labels: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.texts)
        sizes = {"pairs": self.pairs, "labels": self.labels, **self.extra}
        wrong = [k for k, v in sizes.items() if v is not None and len(v) != n]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} must have one entry per text ({n})")

    def __len__(self) -> int:
        return len(self.texts)


def save_examples(path: str | Path, examples: Examples) -> Path:
    """Write the texts, pairs and targets of ``examples`` as JSON (``write_json``), so a run
    folder can show which inputs its validation outputs belong to."""
    labels = None if examples.labels is None else np.asarray(examples.labels).tolist()
    return write_json(path, {"texts": examples.texts, "pairs": examples.pairs, "labels": labels})


def load_examples(path: str | Path) -> Examples | None:
    """The examples :func:`save_examples` wrote (None when there is no such file)."""
    data = read_json(path)
    if data is None:
        return None
    labels = data.get("labels")
    return Examples(
        list(data["texts"]), data.get("pairs"), None if labels is None else np.asarray(labels)
    )


def _unpad(values: Any, mask: Any | None) -> list[list[int]]:
    """Token-id lists without padding, whatever container the tokenizer returned."""
    values = np.asarray(values).tolist() if hasattr(values, "tolist") else values
    if mask is None:
        return [list(v) for v in values]
    mask = np.asarray(mask).tolist() if hasattr(mask, "tolist") else mask
    return [list(v[: int(sum(m))]) for v, m in zip(values, mask)]


def tokenize_texts(
    tokenizer: Any,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    *,
    max_length: int,
    chunk_size: int = 2048,
) -> dict[str, list[list[int]]]:
    """``input_ids`` / ``token_type_ids`` lists (unpadded, truncated to ``max_length``).

    Works in chunks so the fast tokenizer's batch encoding is used without holding a huge
    padded array. Pairs are truncated longest-first, as transformers does.
    """
    out: dict[str, list[list[int]]] = {"input_ids": [], "token_type_ids": []}
    for start in range(0, len(texts), chunk_size):
        chunk = list(texts[start : start + chunk_size])
        pair_chunk = None if pairs is None else list(pairs[start : start + chunk_size])
        enc = tokenizer(
            chunk,
            text_pairs=pair_chunk,
            max_length=max_length,
            truncation=True,
            padding=False,
            return_tensors=None,
        )
        mask = enc.get("attention_mask")
        ids = _unpad(enc["input_ids"], mask)
        out["input_ids"].extend(ids)
        types = enc.get("token_type_ids")
        if types is None:
            out["token_type_ids"].extend([0] * len(x) for x in ids)
        else:
            out["token_type_ids"].extend(_unpad(types, mask))
    return out


def encode_examples(tokenizer: Any, examples: Examples, *, max_length: int) -> dict[str, Any]:
    """Features for :func:`mlxbert_core.training.batch_iterator`: token ids, the extra head
    inputs, and ``labels`` when the examples have targets."""
    features: dict[str, Any] = tokenize_texts(
        tokenizer, examples.texts, examples.pairs, max_length=max_length
    )
    for name, values in examples.extra.items():
        features[name] = np.asarray(values, dtype=np.float32)
    if examples.labels is not None:
        features["labels"] = examples.labels
    return features


def pad_id_of(tokenizer: Any) -> int:
    """The tokenizer's padding id (ModernBERT's is not 0)."""
    value = getattr(tokenizer, "pad_token_id", None)
    return int(value) if value is not None else 0


def fit_length(requested: int, encoder: Any) -> int:
    """``requested`` capped at the encoder's position limit (a tiny test model may accept
    fewer tokens than a recipe's 128)."""
    limit = encoder_positions(encoder)
    return min(int(requested), limit) if limit else int(requested)


def encoder_positions(encoder: Any) -> int | None:
    """How many tokens the encoder accepts."""
    value = getattr(encoder, "max_positions", None)
    return int(value) if value else None


__all__ = [
    "Examples",
    "encode_examples",
    "encoder_positions",
    "fit_length",
    "load_examples",
    "pad_id_of",
    "save_examples",
    "tokenize_texts",
]
