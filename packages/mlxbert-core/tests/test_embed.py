"""Pooling functions and batched, length-bucketed sentence embeddings."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

import mlxbert_core as mb
from mlxbert_core.pooling import cls_pooling, max_pooling, mean_pooling, normalize, pool

RNG = np.random.default_rng(0)
HIDDEN = RNG.normal(size=(3, 5, 4)).astype(np.float32)
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.int64)


def test_mean_pooling_ignores_padding():
    out = np.array(mean_pooling(mx.array(HIDDEN), mx.array(MASK)))
    np.testing.assert_allclose(out[0], HIDDEN[0].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(out[1], HIDDEN[1, :2].mean(axis=0), atol=1e-6)
    np.testing.assert_array_equal(out[2], 0)  # an all-padding row gives zeros, not NaN
    np.testing.assert_allclose(
        np.array(mean_pooling(mx.array(HIDDEN))), HIDDEN.mean(axis=1), atol=1e-6
    )
    half = mean_pooling(mx.array(HIDDEN).astype(mx.float16), mx.array(MASK))
    assert half.dtype == mx.float16


def test_max_and_cls_pooling():
    shifted = HIDDEN.copy()
    shifted[1, 2:] = 100.0  # padded positions must never win
    out = np.array(max_pooling(mx.array(shifted), mx.array(MASK)))
    np.testing.assert_allclose(out[1], shifted[1, :2].max(axis=0))
    np.testing.assert_array_equal(
        np.array(cls_pooling(mx.array(HIDDEN), mx.array(MASK))), HIDDEN[:, 0]
    )
    with pytest.raises(ValueError, match="unknown pooling"):
        pool(mx.array(HIDDEN), mx.array(MASK), "median")
    with pytest.raises(ValueError, match="does not match"):
        mean_pooling(mx.array(HIDDEN), mx.array(MASK[:, :3]))


def test_normalize():
    x = mx.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(np.array(normalize(x)), [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)


@pytest.fixture(scope="module")
def bert(fixtures_dir):
    return mb.from_pretrained(fixtures_dir / "bert"), mb.load_tokenizer(fixtures_dir / "bert")


TEXTS = [
    "Hello world!",
    "",
    "The quick brown fox jumps over the lazy dog.",
    "a",
    "the cat sat on the mat",
    "x y z",
]


def _reference(model, tok, texts, how="mean"):
    batch = tok(texts, return_tensors="mx")
    out = model(**batch)
    pooled = (
        out.pooler_output
        if how == "pooler"
        else pool(out.last_hidden_state, batch["attention_mask"], how)
    )
    return np.array(normalize(pooled))


@pytest.mark.parametrize("how", ["mean", "cls", "max", "pooler"])
def test_embed_matches_one_padded_batch(bert, how):
    model, tok = bert
    expected = _reference(model, tok, TEXTS, how)
    got = mb.embed(model, tok, TEXTS, pooling=how, batch_size=2)
    assert got.dtype == np.float32 and got.shape == (len(TEXTS), 64)
    np.testing.assert_allclose(got, expected, atol=1e-5)  # order restored after length sorting
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_embed_options(bert, capsys):
    model, tok = bert
    raw = mb.embed(model, tok, TEXTS, normalize=False, batch_size=4)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    single = mb.embed(model, tok, TEXTS[2])
    np.testing.assert_allclose(single[0], mb.embed(model, tok, TEXTS)[2], atol=1e-5)
    assert mb.embed(model, tok, []).shape == (0, 64)
    truncated = mb.embed(model, tok, [TEXTS[2]], max_length=4)
    assert not np.allclose(truncated, single, atol=1e-3)
    mb.embed(model, tok, TEXTS, batch_size=1, progress=True)
    assert "embed" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown pooling"):
        mb.embed(model, tok, TEXTS, pooling="median")
    with pytest.raises(ValueError, match="batch_size"):
        mb.embed(model, tok, TEXTS, batch_size=0)


def test_embed_needs_an_encoder(fixtures_dir, bert):
    _, tok = bert
    classifier = mb.from_pretrained(
        fixtures_dir / "bert" / "seqcls3", task="sequence_classification"
    )
    with pytest.raises(TypeError, match="last_hidden_state"):
        mb.embed(classifier, tok, ["hello"])
