"""What the exported graph must compute: the subject's own MLX forward, and the small
batch every export is checked on."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np

from mlxbert_core.pooling import normalize as l2_normalize
from mlxbert_core.pooling import pool

from .graph import GraphPlan, GraphSpec
from .source import ExportSubject

#: Texts of the check batch: two rows of different lengths, so one is padded.
CHECK_TEXTS = (
    "Exported encoders must agree with MLX on every token, padded batches included.",
    "A short one.",
)


def check_batch(subject: ExportSubject, plan: GraphPlan, max_length: int) -> dict[str, Any]:
    """The check texts tokenized as the graph's int64 inputs."""
    enc = subject.tokenizer(list(CHECK_TEXTS), max_length=max_length, return_tensors="np")
    batch = {}
    for name in plan.inputs:
        value = enc.get(name)
        if value is None:  # e.g. token types of a tokenizer that does not make them
            value = np.zeros_like(enc["input_ids"])
        batch[name] = np.asarray(value, dtype=np.int64)
    return batch


def mlx_outputs(
    subject: ExportSubject, plan: GraphPlan, spec: GraphSpec, batch: dict[str, Any]
) -> list[np.ndarray]:
    """The subject's MLX outputs for ``batch``, float32, in ``plan.outputs`` order."""
    arrays = {k: mx.array(np.asarray(v)) for k, v in batch.items()}
    if subject.is_task_model:
        logits = subject.model(**arrays)
        values = np.array(logits.astype(mx.float32))
        return [values[:, None] if values.ndim == 1 else values]
    out = subject.encoder(
        arrays["input_ids"],
        attention_mask=arrays.get("attention_mask"),
        token_type_ids=arrays.get("token_type_ids"),
    )
    hidden = out.last_hidden_state
    results = [np.array(hidden.astype(mx.float32))]
    if spec.pooling is not None:
        if spec.pooling == "pooler":
            pooled = out.pooler_output
        else:
            pooled = pool(hidden, arrays.get("attention_mask"), spec.pooling)
        if spec.normalize:
            pooled = l2_normalize(pooled)
        results.append(np.array(pooled.astype(mx.float32)))
    return results


def max_difference(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """Largest absolute difference over all outputs."""
    return max(float(np.max(np.abs(np.asarray(g) - np.asarray(w)))) for g, w in zip(got, want))


def min_cosine(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """Lowest cosine similarity between matching rows (each row flattened), all outputs."""
    lowest = 1.0
    for g, w in zip(got, want):
        a = np.asarray(g, np.float64).reshape(len(g), -1)
        b = np.asarray(w, np.float64).reshape(len(w), -1)
        norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
        lowest = min(lowest, float(np.min(np.sum(a * b, axis=1) / norms)))
    return lowest


__all__ = ["CHECK_TEXTS", "check_batch", "max_difference", "min_cosine", "mlx_outputs"]
