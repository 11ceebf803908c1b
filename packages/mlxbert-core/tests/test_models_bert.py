"""BERT against the transformers reference outputs in tests/fixtures/bert (see its io.npz)."""

from __future__ import annotations

import json

import mlx.core as mx
import numpy as np
import pytest
from reference_outputs import reference

from mlxbert_core.models import bert
from mlxbert_core.registry import get_architecture

REF = reference("bert")
FIXTURES, IO, REAL, INPUTS = REF.folder, REF.io, REF.real, REF.inputs
_config, _load, _max_err_real = REF.config, REF.load, REF.max_err_real


def test_encoder_matches_reference(encoder):
    out = encoder(*INPUTS, output_hidden_states=True, output_attentions=True)
    assert _max_err_real(out.last_hidden_state, IO["last_hidden_state"]) < 1e-4
    assert len(out.hidden_states) == 4
    for got, want in zip(out.hidden_states, IO["hidden_states"]):
        assert _max_err_real(got, want) < 1e-4
    assert len(out.attentions) == 3
    for got, want in zip(out.attentions, IO["attentions"]):
        # [B, H, Q, K] -> [B, Q, H, K]: compare real queries over every key.
        diff = np.abs(np.array(got) - want).transpose(0, 2, 1, 3)[REAL]
        assert diff.max() < 1e-4
    assert np.abs(np.array(out.pooler_output) - IO["pooler_output"]).max() < 1e-4


def test_output_attentions_does_not_change_outputs(encoder):
    fast = encoder(*INPUTS)
    explicit = encoder(*INPUTS, output_attentions=True)
    assert fast.attentions is None and fast.hidden_states is None
    np.testing.assert_allclose(
        np.array(fast.last_hidden_state)[REAL],
        np.array(explicit.last_hidden_state)[REAL],
        atol=1e-5,
    )


def test_pretraining_checkpoint_into_encoder_notes_ignored_heads():
    _, notes = _load("encoder")
    assert any("ignored 7 task-head weights" in n and "cls.predictions" in n for n in notes)


def test_masked_lm_matches_reference():
    model, notes = _load("masked_lm")
    assert any("pooler" in n and "seq_relationship" in n for n in notes)
    assert REF.mlm_error(model) < 1e-3


@pytest.mark.parametrize("sub", ["seqcls3", "regression"])
def test_sequence_classification_matches_reference(sub):
    model, _ = _load("sequence_classification", sub)
    logits = np.array(model(*INPUTS).logits)
    assert logits.shape == IO[f"{sub}_logits"].shape
    assert np.abs(logits - IO[f"{sub}_logits"]).max() < 1e-4


def test_stored_decoder_weight_and_tf_names_are_accepted():
    weights = dict(mx.load(str(FIXTURES / "model.safetensors")))
    weights["cls.predictions.decoder.weight"] = weights["bert.embeddings.word_embeddings.weight"]
    weights["bert.embeddings.position_ids"] = mx.arange(64)[None]
    for name in [k for k in weights if k.endswith("LayerNorm.weight")]:
        weights[name[: -len("weight")] + "gamma"] = weights.pop(name)
    for name in [k for k in weights if k.endswith("LayerNorm.bias")]:
        weights[name[: -len("bias")] + "beta"] = weights.pop(name)
    model = bert.build(_config(), "masked_lm")
    clean, notes = bert.sanitize(weights, model)
    assert any("decoder.weight" in n for n in notes)
    assert any("position_ids" in n for n in notes)
    model.load_weights(list(clean.items()), strict=True)
    assert REF.mlm_error(model) < 1e-3


def test_bare_checkpoint_into_classifier_leaves_head_missing():
    bare = {
        k.removeprefix("bert."): v for k, v in mx.load(str(FIXTURES / "model.safetensors")).items()
    }
    model = bert.build(_config("seqcls3"), "sequence_classification")
    clean, _ = bert.sanitize(bare, model)
    assert "bert.encoder.layer.0.attention.self.query.weight" in clean
    with pytest.raises(ValueError, match="classifier"):
        model.load_weights(list(clean.items()), strict=True)


def test_checkpoint_without_pooler_builds_encoder_without_pooler():
    weights = {
        k: v
        for k, v in mx.load(str(FIXTURES / "model.safetensors")).items()
        if not k.startswith("bert.pooler.")
    }
    model = bert.build(_config(), "encoder")
    clean, notes = bert.sanitize(weights, model)
    model.load_weights(list(clean.items()), strict=True)
    assert any("no pooler" in n for n in notes)
    assert model(*INPUTS).pooler_output is None


def test_unknown_keys_are_left_for_the_strict_check():
    weights = dict(mx.load(str(FIXTURES / "model.safetensors")))
    weights["roberta.extra.weight"] = mx.zeros((2,))
    clean, _ = bert.sanitize(weights, bert.build(_config(), "encoder"))
    assert "roberta.extra.weight" in clean


def test_fully_padded_row_stays_finite(encoder):
    ids, mask, types = (x.copy() for x in INPUTS)
    mask[4] = 0
    out = encoder(ids, mask, types)
    assert mx.all(mx.isfinite(out.last_hidden_state)).item()
    # The other rows are unaffected.
    keep = REAL.copy()
    keep[4] = False
    assert np.abs(np.array(out.last_hidden_state) - IO["last_hidden_state"])[keep].max() < 1e-4


def test_no_mask_means_all_tokens(encoder):
    row = IO["input_ids"][2:3, :8]
    a = encoder(row).last_hidden_state
    b = encoder(row, np.ones_like(row), np.zeros_like(row)).last_hidden_state
    np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-6)
    assert np.abs(np.array(a)[0] - IO["last_hidden_state"][2, :8]).max() < 1e-4


def test_input_errors_are_clear(encoder):
    ids = IO["input_ids"]
    with pytest.raises(ValueError, match="max_position_embeddings=64"):
        encoder(np.ones((1, 65), dtype=np.int64))
    with pytest.raises(ValueError, match="attention_mask shape"):
        encoder(ids, IO["attention_mask"][:, :5])
    with pytest.raises(ValueError, match="token_type_ids shape"):
        encoder(ids, None, IO["token_type_ids"][:2])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        encoder(np.array([[2, 1024, 3]]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        encoder(np.array([[2, -1, 3]]))
    with pytest.raises(ValueError, match="token_type_ids must lie"):
        encoder(ids, None, np.full_like(ids, 2))
    with pytest.raises(ValueError, match="2-D"):
        encoder(ids[0])


def test_config_validation_and_labels():
    cfg = _config()
    assert bert.BertModelArgs.from_dict(_config("seqcls3")).num_labels == 3
    assert bert.BertModelArgs.from_dict(_config("regression")).num_labels == 1
    assert bert.BertModelArgs.from_dict(cfg).num_labels == 2
    with pytest.raises(ValueError, match="not divisible"):
        bert.BertModelArgs.from_dict({**cfg, "num_attention_heads": 5})
    with pytest.raises(ValueError, match="position_embedding_type"):
        bert.BertModelArgs.from_dict({**cfg, "position_embedding_type": "relative_key"})
    with pytest.raises(ValueError, match="hidden_size"):
        bert.BertModelArgs.from_dict({**cfg, "hidden_size": 0})
    with pytest.raises(ValueError, match="unknown task"):
        bert.build(cfg, "token_classification")


def test_interface_and_parameter_names(encoder):
    assert encoder.hidden_size == 64 and encoder.num_layers == 3
    assert isinstance(encoder.config, bert.BertModelArgs)
    names = {k for k, _ in _flatten(encoder.parameters())}
    assert "encoder.layer.0.attention.self.query.weight" in names
    assert "pooler.dense.weight" in names
    assert not encoder.training  # build() returns eval mode
    assert get_architecture("bert") is bert.ARCHITECTURE


def _flatten(tree, prefix=""):
    from mlx.utils import tree_flatten

    return tree_flatten(tree, prefix=prefix)


def test_real_minilm_checkpoint_matches_reference(minilm_dir, shared_dir):
    """The real all-MiniLM-L6-v2 (bare BertModel keys, position_ids buffer) vs transformers."""
    folder = minilm_dir
    io = np.load(shared_dir / "fixtures" / "minilm" / "io.npz")
    model = bert.build(json.loads((folder / "config.json").read_text()), "encoder")
    weights, notes = bert.sanitize(mx.load(str(folder / "model.safetensors")), model)
    assert any("position_ids" in n for n in notes)
    model.load_weights(list(weights.items()), strict=True)
    # The short rows only (<= 12 tokens, still padded), to keep the test fast.
    rows = np.flatnonzero(io["attention_mask"].sum(1) <= 12)
    ids, mask, types = (io[k][rows, :12] for k in ("input_ids", "attention_mask", "token_type_ids"))
    real = mask == 1
    out = model(ids, mask, types, output_hidden_states=True)
    want = io["last_hidden_state"][rows, :12]
    assert np.abs(np.array(out.last_hidden_state) - want)[real].max() < 1e-4
    assert np.abs(np.array(out.pooler_output) - io["pooler_output"][rows]).max() < 1e-4
    row2 = int(np.flatnonzero(rows == 2)[0])
    for got, ref in zip(out.hidden_states, io["hidden_states_row2"]):
        assert np.abs(np.array(got)[row2] - ref).max() < 1e-4


def test_training_step_gives_finite_gradients():
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    model, _ = _load("sequence_classification", "seqcls3")
    model.train()
    labels = mx.array([0, 1, 2, 0, 1, 2])

    def loss_fn(m):
        logits = m(*INPUTS).logits
        return nn.losses.cross_entropy(logits, labels, reduction="mean")

    loss, grads = nn.value_and_grad(model, loss_fn)(model)
    flat = tree_flatten(grads)
    assert np.isfinite(loss.item())
    assert len(flat) == len(tree_flatten(model.trainable_parameters()))
    assert all(mx.all(mx.isfinite(g)).item() for _, g in flat)
    assert mx.abs(dict(flat)["bert.encoder.layer.0.attention.self.query.weight"]).sum().item() > 0


def test_quantized_embedding_tables_still_work():
    """Embeddings are looked up through the modules, so 8-bit quantized tables work and stay
    close to the float model."""
    import mlx.nn as nn

    model, _ = _load("encoder")
    ids = mx.array(IO["input_ids"][:2, :8])
    reference = np.array(model(ids).last_hidden_state)
    nn.quantize(
        model, group_size=32, bits=8, class_predicate=lambda _, m: isinstance(m, nn.Embedding)
    )
    assert isinstance(model.embeddings.position_embeddings, nn.QuantizedEmbedding)
    quantized = np.array(model(ids).last_hidden_state)
    assert np.isfinite(quantized).all()
    assert np.abs(quantized - reference).max() < 0.2
