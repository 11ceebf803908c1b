"""Tokenize GLUE examples into the features the core training engine batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .data import GlueExamples


def _unpad(values: Any, mask: Any | None) -> list[list[int]]:
    """Token-id lists without padding, whatever container the tokenizer returned."""
    if isinstance(values, np.ndarray) or hasattr(values, "tolist"):
        values = np.asarray(values).tolist()
    if mask is None:
        return [list(v) for v in values]
    if isinstance(mask, np.ndarray) or hasattr(mask, "tolist"):
        mask = np.asarray(mask).tolist()
    return [list(v[: int(sum(m))]) for v, m in zip(values, mask)]


def tokenize_texts(
    tokenizer: Any,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    *,
    max_length: int = 128,
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


def encode_examples(
    tokenizer: Any, examples: GlueExamples, *, max_length: int = 128
) -> dict[str, Any]:
    """Features for :func:`mlxbert_core.training.batch_iterator`: token ids plus ``labels``
    (class ids, or float scores for STS-B) when the split is labeled."""
    features: dict[str, Any] = tokenize_texts(
        tokenizer, examples.texts, examples.pairs, max_length=max_length
    )
    if examples.labels is not None:
        features["labels"] = examples.labels
    return features


def pad_id_of(tokenizer: Any, default: int = 0) -> int:
    """The tokenizer's padding id (ModernBERT's is not 0)."""
    for attr in ("pad_token_id", "pad_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, int):
            return value
    return default


def max_positions(config: dict[str, Any]) -> int | None:
    """How many tokens the encoder accepts (from its HF config), or None when unknown."""
    for key in ("max_position_embeddings", "max_length", "max_seq_len"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def effective_max_length(requested: int, config: dict[str, Any]) -> int:
    """``requested`` capped at the encoder's position limit (a tiny test model may accept
    fewer tokens than a recipe's 128)."""
    limit = max_positions(config)
    return min(int(requested), limit) if limit else int(requested)
