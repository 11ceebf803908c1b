"""Batched inference of a task model: head outputs for every example, in input order."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np

from mlxbert_core import find_encoder
from mlxbert_core.parallel import parallel_forward
from mlxbert_core.training import batch_iterator


def fixed_lengths(model: Any) -> list[int] | None:
    """``[length]`` for encoders that want every input padded to one length (M2-BERT), as
    ``batch_iterator``'s ``length_buckets``; None for the others."""
    encoder = find_encoder(model)
    length = None if encoder is None else encoder.input_length
    return [int(length)] if length else None


def predict_logits(
    model: Any, features: dict[str, Any], *, batch_size: int = 64, pad_id: int = 0
) -> np.ndarray:
    """Float32 head outputs for every example of ``features``, in the original order.

    Batches are formed by length (longest first, little padding) with the core engine's
    batch iterator; the model runs in eval mode (no dropout) and is put back in the mode it
    was in. Extra per-example head inputs in ``features`` (a forecasting head's ``history``)
    go to the model with each batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    inputs = {k: v for k, v in features.items() if k != "labels"}
    count = len(inputs["input_ids"])
    batches = batch_iterator(
        inputs,
        batch_size,
        shuffle=False,
        bucket_by_length=True,
        pad_id=pad_id,
        length_buckets=fixed_lengths(model),
        return_indices=True,
    )
    was_training = getattr(model, "training", False)
    model.eval()
    out: np.ndarray | None = None
    try:
        for batch in batches:
            order = np.array(batch.pop("example_index"))
            # On the CPU one slice of the batch per core (mlxbert_core.parallel), else plain.
            values = np.array(parallel_forward(model, **batch).astype(mx.float32))
            if values.ndim == 1:
                values = values[:, None]
            if out is None:
                out = np.zeros((count, *values.shape[1:]), np.float32)
            out[order] = values
    finally:
        model.train(was_training)
    if out is None:
        return np.zeros((0, 1), np.float32)
    return out


__all__ = ["fixed_lengths", "predict_logits"]
