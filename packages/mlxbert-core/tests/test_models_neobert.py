"""NeoBERT against the authors' reference outputs in tests/fixtures/neobert."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from reference_outputs import reference

from mlxbert_core.models import neobert
from mlxbert_core.registry import get_architecture

REF = reference("neobert")
FIXTURES, IO, REAL, INPUTS = REF.folder, REF.io, REF.real, REF.inputs
_config, _load, _max_err_real = REF.config, REF.load, REF.max_err_real


def test_encoder_matches_reference(encoder):
    out = encoder(*INPUTS, output_hidden_states=True)
    assert out.pooler_output is None and out.attentions is None
    assert _max_err_real(out.last_hidden_state, IO["last_hidden_state"]) < 1e-4
    # Hub NeoBERT convention: one pre-final-norm entry per layer, no embedding entry.
    assert len(out.hidden_states) == 3
    for got, want in zip(out.hidden_states, IO["hidden_states"]):
        assert _max_err_real(got, want) < 1e-4
    embedded = encoder.encoder(mx.array(IO["input_ids"]))
    assert _max_err_real(embedded, IO["embedding_output"]) < 1e-6


def test_explicit_attention_probabilities_are_a_masked_softmax(encoder):
    fast = encoder(*INPUTS).last_hidden_state
    out = encoder(*INPUTS, output_attentions=True)
    np.testing.assert_allclose(
        np.array(fast)[REAL], np.array(out.last_hidden_state)[REAL], atol=1e-5
    )
    for probs in out.attentions:
        p = np.array(probs)  # [B, H, Q, K]
        np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
        assert np.all(p.transpose(0, 1, 3, 2)[~REAL[:, None, :].repeat(4, 1)] == 0)


def test_masked_lm_matches_reference():
    model, notes = _load("masked_lm")
    assert notes == []
    assert REF.mlm_error(model) < 1e-3


@pytest.mark.parametrize("sub", ["seqcls3", "regression"])
def test_sequence_classification_matches_reference(sub):
    model, notes = _load("sequence_classification", sub)
    assert notes == []
    logits = np.array(model(*INPUTS).logits)
    assert np.abs(logits - IO[f"{sub}_logits"]).max() < 1e-4


def test_keys_with_or_without_model_prefix():
    weights = dict(mx.load(str(FIXTURES / "model.safetensors")))
    encoder, notes = _load("encoder", weights=weights)
    assert any("ignored 2 task-head weights (decoder" in n for n in notes)
    bare = {k.removeprefix("model."): v for k, v in weights.items() if k.startswith("model.")}
    encoder2, notes = _load("encoder", weights=bare)
    assert notes == []
    np.testing.assert_array_equal(
        np.array(encoder(*INPUTS).last_hidden_state), np.array(encoder2(*INPUTS).last_hidden_state)
    )
    # A bare checkpoint into the LM model: the backbone gains "model.", the decoder is missing.
    model = neobert.build(_config(), "masked_lm")
    clean, _ = neobert.sanitize(bare, model)
    assert "model.transformer_encoder.0.qkv.weight" in clean
    with pytest.raises(ValueError, match="decoder"):
        model.load_weights(list(clean.items()), strict=True)


def test_single_row_equals_batched_row(encoder):
    alone, n = REF.row_alone(encoder, 2)
    assert np.abs(alone - IO["last_hidden_state"][2, :n]).max() < 1e-4


def test_swiglu_size_and_config_validation():
    args = neobert.NeoBertModelArgs.from_dict(_config())
    assert args.swiglu_size == 88 and args.norm_eps == 1e-5 and args.max_length == 64
    assert neobert.NeoBertModelArgs(intermediate_size=3072).swiglu_size == 2048
    assert neobert.NeoBertModelArgs.from_dict(_config("seqcls3")).num_labels == 3
    with pytest.raises(ValueError, match="dim_head"):
        neobert.NeoBertModelArgs.from_dict({**_config(), "dim_head": 32})
    with pytest.raises(ValueError, match="ngpt"):
        neobert.NeoBertModelArgs.from_dict({**_config(), "ngpt": True})
    with pytest.raises(ValueError, match="num_attention_heads"):
        neobert.NeoBertModelArgs.from_dict({**_config(), "num_attention_heads": 0})


def test_input_errors_are_clear(encoder):
    with pytest.raises(ValueError, match="max_length=64"):
        encoder(np.ones((2, 65), dtype=np.int64))
    with pytest.raises(ValueError, match="attention_mask shape"):
        encoder(IO["input_ids"], IO["attention_mask"].T)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        encoder(np.array([[2, 5000, 3]]))


def test_interface(encoder):
    assert encoder.hidden_size == 64 and encoder.num_layers == 3
    assert get_architecture("neobert") is neobert.ARCHITECTURE
