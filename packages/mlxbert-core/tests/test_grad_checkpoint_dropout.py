"""Gradient checkpointing with dropout on: the recomputation in the backward pass must draw the
same masks as the forward pass, or the gradient is not the gradient of the loss that was
computed. Checked against a central finite difference of the seeded (hence deterministic)
loss, which only a consistent recomputation matches."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from mlxbert_core.models.bert import BertForSequenceClassification, BertModelArgs
from mlxbert_core.training import (
    Trainer,
    TrainingConfig,
    disable_gradient_checkpointing,
    enable_gradient_checkpointing,
)

CONFIG = {
    "vocab_size": 50,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 32,
    "num_labels": 3,
    "hidden_dropout_prob": 0.5,  # large, so that a different mask changes the gradient a lot
}


def make_model() -> BertForSequenceClassification:
    mx.random.seed(0)
    model = BertForSequenceClassification(BertModelArgs.from_dict(CONFIG))
    mx.eval(model.parameters())
    model.train()
    return model


def make_batch() -> dict:
    rng = np.random.default_rng(0)
    return {
        "input_ids": mx.array(rng.integers(1, 50, (4, 12)).astype(np.int32)),
        "attention_mask": mx.ones((4, 12), dtype=mx.int32),
        "labels": mx.array([0, 1, 2, 1], dtype=mx.int32),
    }


def seeded_loss(model, batch):
    def loss(params):
        model.update(params)
        mx.random.seed(7)  # the same dropout masks on every call
        logits = model(batch["input_ids"], batch["attention_mask"]).logits
        return nn.losses.cross_entropy(logits, batch["labels"], reduction="mean")

    return loss


def directional_check(model) -> tuple[float, float]:
    """(analytic, finite-difference) derivative of the seeded loss along a fixed direction."""
    batch = make_batch()
    loss = seeded_loss(model, batch)
    params = model.trainable_parameters()
    grads = mx.grad(loss)(params)
    rng = np.random.default_rng(1)
    direction = tree_map(
        lambda p: mx.array(rng.standard_normal(p.shape).astype(np.float32)), params
    )
    analytic = sum(
        float(mx.sum(g * d)) for (_, g), (_, d) in zip(tree_flatten(grads), tree_flatten(direction))
    )
    eps = 1e-3

    def shifted(sign):
        return tree_unflatten(
            [
                (k, p + sign * eps * d)
                for (k, p), (_, d) in zip(tree_flatten(params), tree_flatten(direction))
            ]
        )

    finite = (float(loss(shifted(1.0))) - float(loss(shifted(-1.0)))) / (2 * eps)
    model.update(params)
    return analytic, finite


def test_plain_gradient_matches_the_finite_difference():
    analytic, finite = directional_check(make_model())
    assert analytic == pytest.approx(finite, rel=2e-2, abs=2e-3)


def test_checkpointed_gradient_uses_the_forward_dropout_masks():
    model = make_model()
    assert enable_gradient_checkpointing(model) == 2
    analytic, finite = directional_check(model)
    assert analytic == pytest.approx(finite, rel=2e-2, abs=2e-3)
    # the checkpointed loss is the same function of the parameters as before (masks drawn
    # from the seeded global state, one key per layer), whatever the call
    batch = make_batch()
    first = float(seeded_loss(model, batch)(model.trainable_parameters()))
    second = float(seeded_loss(model, batch)(model.trainable_parameters()))
    assert first == second
    disable_gradient_checkpointing(model)


def test_random_functions_are_restored_after_a_checkpointed_layer():
    originals = (mx.random.bernoulli, mx.random.uniform, mx.random.normal)
    model = make_model()
    enable_gradient_checkpointing(model)
    mx.grad(seeded_loss(model, make_batch()))(model.trainable_parameters())
    assert (mx.random.bernoulli, mx.random.uniform, mx.random.normal) == originals


def test_checkpointed_layers_return_attentions_too():
    model = make_model()
    model.eval()
    batch = make_batch()
    plain = model.bert(batch["input_ids"], batch["attention_mask"], output_attentions=True)
    enable_gradient_checkpointing(model)
    ckpt = model.bert(batch["input_ids"], batch["attention_mask"], output_attentions=True)
    np.testing.assert_allclose(
        np.array(ckpt.last_hidden_state), np.array(plain.last_hidden_state), atol=1e-6
    )
    for a, b in zip(ckpt.attentions, plain.attentions):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-6)


def test_compiled_trainer_with_dropout_and_checkpointing_learns():
    model = make_model()
    batch = make_batch()

    def loss_fn(m, b):
        logits = m(b["input_ids"], b["attention_mask"]).logits
        return nn.losses.cross_entropy(logits, b["labels"], reduction="mean")

    cfg = TrainingConfig(learning_rate=3e-3, schedule="constant", gradient_checkpointing=True)
    trainer = Trainer(model, loss_fn, cfg)
    losses = [float(trainer.step(batch)) for _ in range(30)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
