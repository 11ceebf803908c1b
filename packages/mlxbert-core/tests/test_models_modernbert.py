"""ModernBERT against the transformers 5.x reference outputs in tests/fixtures/modernbert."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from reference_outputs import reference

from mlxbert_core.models import modernbert
from mlxbert_core.registry import get_architecture

REF = reference("modernbert")
FIXTURES, IO, REAL, INPUTS = REF.folder, REF.io, REF.real, REF.inputs
_config, _load, _max_err_real = REF.config, REF.load, REF.max_err_real


def test_encoder_matches_reference(encoder):
    out = encoder(*INPUTS, output_hidden_states=True, output_attentions=True)
    assert out.pooler_output is None
    assert _max_err_real(out.last_hidden_state, IO["last_hidden_state"]) < 1e-4
    # transformers 5.x: embedding output, layers 0..2, then the final-normed output.
    assert len(out.hidden_states) == 5
    for got, want in zip(out.hidden_states, IO["hidden_states"]):
        assert _max_err_real(got, want) < 1e-4
    assert out.hidden_states[-1] is out.last_hidden_state
    assert len(out.attentions) == 4
    for got, want in zip(out.attentions, IO["attentions"]):
        diff = np.abs(np.array(got) - want).transpose(0, 2, 1, 3)[REAL]
        assert diff.max() < 1e-4


def test_local_layers_respect_the_window(encoder):
    probs = encoder(*INPUTS, output_attentions=True).attentions
    q, k = np.meshgrid(np.arange(40), np.arange(40), indexing="ij")
    outside = np.abs(q - k) > 4
    for layer in (1, 2):  # local layers
        assert np.all(np.array(probs[layer])[0][:, outside] == 0)
    assert np.array(probs[0])[0][:, outside].max() > 0  # a global layer sees everything


def test_last_layer_before_final_norm(encoder):
    raw, _, _ = encoder.encode_layers(*INPUTS)
    assert _max_err_real(raw, IO["last_layer_prenorm"]) < 1e-4


def test_output_attentions_does_not_change_outputs(encoder):
    fast = encoder(*INPUTS).last_hidden_state
    explicit = encoder(*INPUTS, output_attentions=True).last_hidden_state
    np.testing.assert_allclose(np.array(fast)[REAL], np.array(explicit)[REAL], atol=1e-5)


def test_masked_lm_matches_reference():
    model, notes = _load("masked_lm")
    assert notes == []
    assert model(*INPUTS).logits.shape == (6, 40, 512)
    assert REF.mlm_error(model) < 1e-3


@pytest.mark.parametrize("sub,pooling", [("seqcls3", "mean"), ("regression", "cls")])
def test_sequence_classification_matches_reference(sub, pooling):
    model, _ = _load("sequence_classification", sub)
    assert model.config.classifier_pooling == pooling
    logits = np.array(model(*INPUTS).logits)
    assert np.abs(logits - IO[f"{sub}_logits"]).max() < 1e-4


def test_checkpoint_prefixes_and_tied_decoder():
    weights = dict(mx.load(str(FIXTURES / "model.safetensors")))
    encoder = modernbert.build(_config(), "encoder")
    clean, notes = modernbert.sanitize(weights, encoder)
    assert "layers.0.attn.Wqkv.weight" in clean and "final_norm.weight" in clean
    assert any("ignored 3 task-head weights" in n for n in notes)
    # A stored decoder weight (tied) is dropped with a note; a bare checkpoint gains "model.".
    weights["decoder.weight"] = weights["model.embeddings.tok_embeddings.weight"]
    bare = {k.removeprefix("model."): v for k, v in weights.items()}
    mlm = modernbert.build(_config(), "masked_lm")
    clean, notes = modernbert.sanitize(bare, mlm)
    assert any("decoder.weight" in n and "tied" in n for n in notes)
    mlm.load_weights(list(clean.items()), strict=True)


def test_padded_rows_do_not_change_real_tokens(encoder):
    alone, n = REF.row_alone(encoder, 2)
    batched = np.array(encoder(*INPUTS).last_hidden_state)[2, :n]
    assert np.abs(alone - batched).max() < 1e-4


def test_config_spellings_agree():
    new = _config()
    legacy = {k: v for k, v in new.items() if k not in ("layer_types", "rope_parameters")}
    v5 = {
        k: v
        for k, v in new.items()
        if k not in ("global_attn_every_n_layers", "global_rope_theta", "local_rope_theta")
    }
    a = modernbert.ModernBertModelArgs.from_dict(legacy)
    b = modernbert.ModernBertModelArgs.from_dict(v5)
    assert (
        a.layer_types
        == b.layer_types
        == [
            "full_attention",
            "sliding_attention",
            "sliding_attention",
            "full_attention",
        ]
    )
    assert (a.global_rope_theta, a.local_rope_theta) == (160000.0, 10000.0)
    assert (b.global_rope_theta, b.local_rope_theta) == (160000.0, 10000.0)


def test_config_validation():
    cfg = _config()
    with pytest.raises(ValueError, match="layer_types"):
        modernbert.ModernBertModelArgs.from_dict({**cfg, "layer_types": ["full_attention"]})
    with pytest.raises(ValueError, match="classifier_pooling"):
        modernbert.ModernBertModelArgs.from_dict({**cfg, "classifier_pooling": "max"})
    with pytest.raises(ValueError, match="rope_type"):
        modernbert.ModernBertModelArgs.from_dict(
            {**cfg, "rope_parameters": {"full_attention": {"rope_type": "yarn"}}}
        )
    with pytest.raises(ValueError, match="heads of even size"):
        modernbert.ModernBertModelArgs.from_dict({**cfg, "num_attention_heads": 3})
    assert modernbert.ModernBertModelArgs.from_dict(_config("seqcls3")).num_labels == 3


def test_input_errors_are_clear(encoder):
    with pytest.raises(ValueError, match="max_position_embeddings=128"):
        encoder(np.ones((1, 129), dtype=np.int64))
    with pytest.raises(ValueError, match="attention_mask shape"):
        encoder(IO["input_ids"], IO["attention_mask"][:3])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        encoder(np.array([[481, 512, 482]]))


def test_interface(encoder):
    assert encoder.hidden_size == 64 and encoder.num_layers == 4
    assert "attn_norm" not in encoder.layers[0] and "attn_norm" in encoder.layers[1]
    assert get_architecture("modernbert") is modernbert.ARCHITECTURE
