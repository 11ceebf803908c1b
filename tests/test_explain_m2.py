"""Explain on an encoder without attention: the real M2-BERT (Monarch mixer) of mlxbert-m2's
tiny GLUE checkpoint returns no attention probabilities, which explain detects (no map, no
rollout), while gradient x input on its token embeddings works as for any encoder."""

import mlxbert_core  # noqa: F401  isort: skip  (before mlx: the fast BLAS on Linux)

from pathlib import Path

import mlx.core as mx
import numpy as np

import mlxbert_m2
from mlxbert_heads import TaskModel, create_head
from mlxbert_kaggle.explain import attention_maps, gradient_x_input, token_embedding

TINY_M2 = Path(__file__).resolve().parents[1] / "packages/mlxbert-m2/tests/fixtures/glue_tiny"


def test_m2_has_no_attention_but_gradients():
    encoder = mlxbert_m2.from_pretrained(TINY_M2, checkpoint=TINY_M2 / "composer.pt").bert
    ids = mx.array([[101, 200, 305, 411, 250, 102, 0, 0]])  # a 512-token vocabulary
    inputs = {"input_ids": ids, "attention_mask": (ids != 0).astype(mx.int32)}
    assert attention_maps(encoder, inputs) is None
    head = create_head("multiclass", hidden_size=encoder.config.hidden_size, num_classes=2)
    model = TaskModel(encoder, head, pooling="mean")
    model.eval()
    vocab = encoder.config.vocab_size
    _, _, table = token_embedding(encoder, vocab)
    importance = gradient_x_input(model, inputs, 1, vocab)
    assert importance.shape == (8,) and np.isfinite(importance).all()
    assert abs(importance.sum() - 1.0) < 1e-9 and (importance >= 0).all()
    # The table is put back after the gradient was taken.
    assert token_embedding(encoder, vocab)[2] is table
