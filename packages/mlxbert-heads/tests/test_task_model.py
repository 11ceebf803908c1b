"""TaskModel with a toy encoder (no model library): every pooling trains end to end."""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from heads_helpers import adam_steps

from mlxbert_heads import POOLING_MODES, Pooler, TaskModel, create_head
from mlxbert_heads.pooling import max_pool, mean_pool

VOCAB, HIDDEN, LAYERS = 12, 16, 2


@dataclass
class ToyOutput:
    last_hidden_state: mx.array
    hidden_states: tuple | None = None


@dataclass
class ToyConfig:
    num_hidden_layers: int = LAYERS


class ToyEncoder(nn.Module):
    """Embeddings + a few MLP blocks; records which keyword arguments it received."""

    def __init__(self):
        super().__init__()
        self.config = ToyConfig()
        self.embed = nn.Embedding(VOCAB, HIDDEN)
        self.type_embed = nn.Embedding(2, HIDDEN)
        self.blocks = [nn.Linear(HIDDEN, HIDDEN) for _ in range(LAYERS)]
        self._seen_kwargs: list[set] = []  # underscore: not a parameter container

    def __call__(
        self, input_ids, attention_mask=None, token_type_ids=None, output_hidden_states=False
    ):
        self._seen_kwargs.append(
            {
                k
                for k, v in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids))
                if v is not None
            }
        )
        h = self.embed(input_ids)
        if token_type_ids is not None:
            h = h + self.type_embed(token_type_ids)
        states = [h]
        mask = None if attention_mask is None else attention_mask.astype(h.dtype)[..., None]
        for block in self.blocks:
            # Token mixing by a masked mean, so the first token can see the others.
            if mask is None:
                context = h.mean(axis=1, keepdims=True)
            else:
                context = (h * mask).sum(axis=1, keepdims=True) / mask.sum(axis=1, keepdims=True)
            h = h + nn.gelu(block(h + context))
            states.append(h)
        return ToyOutput(h, tuple(states) if output_hidden_states else None)


def toy_batch(n=64, seq=6, seed=0):
    """Label = whether token 1 occurs among the unmasked tokens; padding is token 0, except
    that some negatives hide a 1 in their padding, which must be ignored."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, VOCAB, (n, seq))
    lengths = rng.integers(2, seq + 1, n)
    mask = np.arange(seq)[None, :] < lengths[:, None]
    label = rng.random(n) < 0.5
    position = rng.integers(1, lengths)
    ids[label, position[label]] = 1
    ids = np.where(mask, ids, 0)
    ids[~label & (lengths < seq), -1] = 1
    return {
        "input_ids": mx.array(ids),
        "attention_mask": mx.array(mask.astype(np.int32)),
        "labels": mx.array(label.astype(np.int64)),
    }


@pytest.mark.parametrize("pooling", POOLING_MODES)
def test_every_pooling_trains_end_to_end(pooling):
    mx.random.seed(1)
    model = TaskModel(ToyEncoder(), create_head("binary", HIDDEN), pooling=pooling, dropout=0.0)
    batch = toy_batch()
    initial_embeddings = np.array(model.encoder.embed.weight)
    losses = adam_steps(model, lambda m: m.loss(batch), 60, lr=2e-2)
    assert losses[-1] < 0.6 * losses[0], pooling
    # The encoder itself was trained (gradients flow through pooling into the embeddings).
    assert not np.allclose(np.array(model.encoder.embed.weight), initial_embeddings)
    accuracy = float(np.mean(model.predict(batch) == np.array(batch["labels"])))
    assert accuracy > 0.8, pooling
    if pooling == "weighted_layer":
        weights = np.array(model.pooler.layer_weights())
        assert weights.shape == (LAYERS + 1,) and weights.sum() == pytest.approx(1.0)
        assert model.encoder._seen_kwargs[-1] == {"attention_mask"}


def test_token_type_ids_and_mask_are_passed_only_when_given():
    encoder = ToyEncoder()
    model = TaskModel(encoder, create_head("regression", HIDDEN), pooling="mean")
    ids = mx.array([[2, 3, 4]])
    model(ids)
    model(ids, attention_mask=mx.array([[1, 1, 0]]))
    model(ids, token_type_ids=mx.array([[0, 0, 1]]))
    assert encoder._seen_kwargs == [set(), {"attention_mask"}, {"token_type_ids"}]


def test_timeseries_extra_inputs_flow_through_the_batch():
    head = create_head("timeseries", HIDDEN, horizon=2, history_length=4)
    model = TaskModel(ToyEncoder(), head, pooling="cls")
    batch = {
        "input_ids": mx.array([[2, 3], [4, 5]]),
        "history": mx.array(np.ones((2, 4), dtype=np.float32)),
        "labels": mx.array(np.ones((2, 2), dtype=np.float32)),
    }
    assert model.loss(batch).shape == ()
    assert model.predict(batch).shape == (2, 2)
    with pytest.raises(ValueError, match="takes no input"):
        TaskModel(ToyEncoder(), create_head("binary", HIDDEN))(
            batch["input_ids"], history=batch["history"]
        )


def test_task_model_errors_and_config():
    with pytest.raises(ValueError, match="num_layers"):
        TaskModel(lambda ids: None, create_head("binary", HIDDEN), pooling="weighted_layer")
    with pytest.raises(ValueError, match="pooling"):
        TaskModel(ToyEncoder(), create_head("binary", HIDDEN), pooling="first")
    with pytest.raises(ValueError, match="last_hidden_state"):
        TaskModel(lambda ids: {"x": ids}, create_head("binary", HIDDEN))(mx.array([[1, 2]]))
    with pytest.raises(ValueError, match="labels"):
        TaskModel(ToyEncoder(), create_head("binary", HIDDEN)).loss({"input_ids": mx.array([[1]])})
    model = TaskModel(
        ToyEncoder(), create_head("ordinal", HIDDEN, num_classes=3), pooling="weighted_layer"
    )
    config = model.get_config()
    assert config["pooling"] == "weighted_layer" and config["num_layers"] == LAYERS + 1
    assert config["head"]["task"] == "ordinal"


def test_pooling_respects_masks_and_none():
    rng = np.random.default_rng(0)
    hidden = mx.array(rng.normal(size=(3, 4, 5)).astype(np.float32))
    mask = mx.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    h = np.array(hidden)
    np.testing.assert_allclose(np.array(mean_pool(hidden, mask))[0], h[0, :2].mean(0), rtol=1e-6)
    np.testing.assert_allclose(np.array(max_pool(hidden, mask))[0], h[0, :2].max(0), rtol=1e-6)
    np.testing.assert_allclose(np.array(mean_pool(hidden, None)), h.mean(1), rtol=1e-6)
    # A row without any token pools to zeros, never to -inf/NaN.
    for mode in ("mean", "max", "attention"):
        pooled = np.array(Pooler(mode, hidden_size=5)(hidden, mask))
        assert np.all(np.isfinite(pooled)) and np.all(pooled[2] == 0), mode
    # Attention pooling ignores masked tokens completely.
    pooler = Pooler("attention", hidden_size=5)
    changed = np.array(hidden)
    changed[0, 2:] = 1e3
    np.testing.assert_allclose(
        np.array(pooler(mx.array(changed), mask))[0], np.array(pooler(hidden, mask))[0], rtol=1e-6
    )
    # float16 states: masking with the dtype's finite minimum stays finite.
    half = Pooler("max")(hidden.astype(mx.float16), mask)
    assert bool(mx.all(mx.isfinite(half)))
    with pytest.raises(ValueError, match="attention_mask"):
        mean_pool(hidden, mx.ones((3, 3)))
    with pytest.raises(ValueError, match="hidden_states"):
        Pooler("weighted_layer", num_layers=2)(hidden, mask)
