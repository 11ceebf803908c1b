"""Sentence embeddings: tokenize, run the encoder in length-sorted batches, pool, normalise."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import mlx.core as mx
import numpy as np

from mlxbert_core.encoder import Encoder
from mlxbert_core.models._layers import CompiledForward
from mlxbert_core.parallel import parallel_forward
from mlxbert_core.pooling import POOLING
from mlxbert_core.pooling import normalize as l2_normalize
from mlxbert_core.tokenizer import Tokenizer

__all__ = ["embed"]

# Show a progress bar by default only when there is enough work to watch.
_AUTO_PROGRESS_BATCHES = 4
# With a compiled forward (GPU), batch widths are rounded up to a multiple of this, so that a
# corpus of many lengths needs few traced shapes (mx.compile traces once per shape).
_COMPILED_WIDTH_MULTIPLE = 16


def _use_compiled_forward(model: Encoder) -> bool:
    """Whether batch widths are rounded for a compiled forward: on a GPU, for encoders whose
    plain inference calls are compiled (their default). On CPU a trace per width is cheap
    beside the padding that rounding would add."""
    if mx.default_device().type == mx.DeviceType.cpu:
        return False
    return isinstance(model, CompiledForward) and model.forward_compiled


def _batch_width(lengths: list[int], compiled: bool, limit: int | None) -> int:
    width = max(lengths)
    if compiled:
        rounded = -(-width // _COMPILED_WIDTH_MULTIPLE) * _COMPILED_WIDTH_MULTIPLE
        width = max(width, min(rounded, limit)) if limit else rounded
    return width


def _default_max_length(model: Encoder, tokenizer: Tokenizer) -> int:
    for value in (tokenizer.embedding_max_length, tokenizer.model_max_length):
        if value:
            return min(value, model.max_positions)
    return model.max_positions


def _progress_bar(total: int, progress: bool | None):
    show = (
        progress
        if progress is not None
        else (total > _AUTO_PROGRESS_BATCHES and sys.stderr.isatty())
    )
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="embed", unit="batch", leave=False)


def embed(
    model: Encoder,
    tokenizer: Tokenizer,
    texts: str | Sequence[str],
    *,
    pooling: str = "mean",
    normalize: bool = True,
    batch_size: int = 32,
    max_length: int | None = None,
    progress: bool | None = None,
) -> np.ndarray:
    """Embed ``texts`` into a ``[len(texts), hidden]`` float32 NumPy array (input order kept).

    pooling:    "mean" (mask-weighted, sentence-transformers' default), "cls", "max", or
                "pooler" (the model's pooler_output, e.g. BERT's tanh pooler).
    normalize:  L2-normalise each embedding (cosine similarity = dot product).
    max_length: truncation limit; default sentence-transformers' ``max_seq_length`` when the
                folder has one, else the tokenizer's ``model_max_length``, at most the
                encoder's ``max_positions``.
    progress:   tqdm bar; default: shown when there are more than a few batches and stderr is a
                terminal.

    Texts are sorted by token length before batching, so each batch pads only to its own
    longest text; results are returned in the original order. Encoders run their default,
    compiled forward; on a GPU batch widths are rounded up to a multiple of 16 to limit the
    number of traced shapes.
    """
    if not isinstance(model, Encoder):
        raise TypeError(
            f"{type(model).__name__} is not an encoder (it does not return "
            "last_hidden_state); embed needs an encoder (from_pretrained(..., task='encoder'))"
        )
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if pooling not in POOLING and pooling != "pooler":
        raise ValueError(f"unknown pooling {pooling!r}; use mean, cls, max or pooler")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if max_length is None:
        max_length = _default_max_length(model, tokenizer)
    if not texts:
        return np.zeros((0, model.hidden_size), dtype=np.float32)

    encoded = tokenizer(texts, max_length=max_length, padding=False, return_tensors=None)
    ids, types = encoded["input_ids"], encoded.get("token_type_ids")
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    starts = range(0, len(order), batch_size)
    results: list[np.ndarray | None] = [None] * len(texts)
    limit = min(max_length, model.max_positions)
    bar = _progress_bar(len(starts), progress)
    compiled = _use_compiled_forward(model)
    try:
        for start in starts:
            rows = order[start : start + batch_size]
            # NumPy inputs: the model checks them on the host, with no device synchronisation,
            # and runs unmasked attention when the batch has no padding.
            batch = tokenizer.pad(
                [ids[i] for i in rows],
                [types[i] for i in rows] if types is not None else None,
                # Encoders that see their padding (M2-BERT) get the length they were made for.
                width=model.input_length
                or _batch_width([len(ids[i]) for i in rows], compiled, limit),
                return_tensors="np",
            )
            # On CPU, one slice of the batch per core (see mlxbert_core.parallel); elsewhere
            # the plain (possibly compiled) forward.
            out = model(**batch) if compiled else parallel_forward(model, **batch)
            if pooling == "pooler":
                pooled = out.pooler_output
                if pooled is None:
                    raise ValueError("pooling='pooler' but this model has no pooler output")
            else:
                pooled = POOLING[pooling](out.last_hidden_state, mx.array(batch["attention_mask"]))
            if normalize:
                pooled = l2_normalize(pooled)
            values = np.array(pooled.astype(mx.float32))
            for row, vector in zip(rows, values):
                results[row] = vector
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return np.stack(results).astype(np.float32, copy=False)
