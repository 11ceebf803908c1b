"""Parity with the reference M2-BERT outputs for the three fixture configs and every format."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from m2_helpers import (
    HIDDEN_TOL,
    KERNEL_TOL,
    POOLED_TOL,
    assert_close,
    config_dict,
    fixture_file,
    has_torch_free_unpickler,
    inputs,
    io_arrays,
)

from mlxbert_m2 import M2BertForSequenceClassification, M2BertModel, load_checkpoint_into

FORMATS = ("composer.pt", "model.safetensors", "pytorch_model.bin")


def _best_source(name: str) -> str:
    """composer.pt when pickles can be read, else the safetensors file (variants need both
    the encoder and the classifier, which only these two formats carry)."""
    return "composer.pt" if has_torch_free_unpickler() else "model.safetensors"


def _load(name: str, filename: str, **overrides):
    path = fixture_file(name, filename)
    return load_checkpoint_into(config_dict(name, **overrides), path)


def _check_encoder(model: M2BertModel, io: dict, name: str, prefix: str = "") -> None:
    out = model(*inputs(io), output_hidden_states=True)
    assert_close(out.last_hidden_state, io[f"{prefix}last_hidden_state"], HIDDEN_TOL, "hidden")
    assert_close(out.pooler_output, io[f"{prefix}pooled_output"], POOLED_TOL, "pooled")
    if prefix:
        return
    assert_close(out.hidden_states[0], io["embedding_output"], POOLED_TOL, "embedding_output")
    assert_close(out.hidden_states[1], io["layer0_output"], HIDDEN_TOL, "layer0_output")
    mixer = model.encoder.layer[0].attention
    assert_close(mixer(out.hidden_states[0]), io["layer0_mixer_output"], HIDDEN_TOL, "layer0_mixer")
    length = io["input_ids"].shape[1]
    for fn in ("filter_fn", "filter_fn2"):
        if f"layer0_{fn}_k_fwd" not in io:
            assert fn not in mixer
            continue
        k_fwd, k_rev = getattr(mixer, fn).kernels(length)
        assert_close(k_fwd.T, io[f"layer0_{fn}_k_fwd"], KERNEL_TOL, f"{fn} k_fwd")
        if f"layer0_{fn}_k_rev" in io:
            assert_close(k_rev.T, io[f"layer0_{fn}_k_rev"], KERNEL_TOL, f"{fn} k_rev")
        else:
            assert k_rev is None


@pytest.mark.parametrize("filename", FORMATS)
def test_checkpoint_formats_match_reference(name, filename):
    io = io_arrays(name)
    model = _load(name, filename)
    if filename == "pytorch_model.bin":  # encoder-only file: no classifier
        assert isinstance(model, M2BertModel)
        _check_encoder(model, io, name)
        return
    assert isinstance(model, M2BertForSequenceClassification)
    _check_encoder(model.bert, io, name)
    out = model(*inputs(io))
    assert_close(out.logits, io["logits"], POOLED_TOL, "logits")
    if "sentence_embedding" in io:
        assert_close(out.sentence_embedding, io["sentence_embedding"], POOLED_TOL, "sentence")


def test_bf16_checkpoint_reads_stored_buffers(name):
    io = io_arrays(name)
    model = _load(name, "composer_bf16.pt")
    out = model(*inputs(io))
    assert_close(out.last_hidden_state, io["bf16ckpt_last_hidden_state"], HIDDEN_TOL, "bf16 hidden")
    assert_close(out.pooler_output, io["bf16ckpt_pooled_output"], POOLED_TOL, "bf16 pooled")
    assert_close(out.logits, io["bf16ckpt_logits"], POOLED_TOL, "bf16 logits")
    if "bf16ckpt_sentence_embedding" in io:
        assert_close(
            out.sentence_embedding, io["bf16ckpt_sentence_embedding"], POOLED_TOL, "bf16 sent"
        )
    # The stored bf16 t/deltas were used, not fp32 recomputed ones: parameters stay float32.
    filt = model.bert.encoder.layer[0].attention.filter_fn
    assert filt.pos_emb.t.dtype == mx.float32


@pytest.mark.parametrize("num_labels", [1, 2, 3])
def test_every_label_count(name, num_labels):
    io = io_arrays(name)
    model = _load(name, _best_source(name))
    head = M2BertForSequenceClassification(model.config, num_labels=num_labels)
    head.update(model.parameters() | {"classifier": head.classifier.parameters()})
    head.classifier.weight = mx.array(io[f"head_nl{num_labels}_weight"])
    head.classifier.bias = mx.array(io[f"head_nl{num_labels}_bias"])
    head.eval()
    logits = head(*inputs(io)).logits
    assert logits.shape == (4, num_labels)
    assert_close(logits, io[f"logits_nl{num_labels}"], POOLED_TOL, f"logits_nl{num_labels}")


def test_pool_all(name):
    io = io_arrays(name)
    model = _load(name, _best_source(name), pool_all=True)
    out = model(*inputs(io))
    assert_close(out.pooler_output, io["pool_all_pooled_output"], POOLED_TOL, "pool_all pooled")
    assert_close(out.logits, io["pool_all_logits"], POOLED_TOL, "pool_all logits")


def test_use_cls_token(name):
    io = io_arrays(name)
    model = _load(name, _best_source(name), use_cls_token=True, gather_sentence_embeddings=True)
    out = model(*inputs(io))
    assert_close(out.logits, io["cls_token_logits"], POOLED_TOL, "cls logits")
    assert_close(
        out.sentence_embedding, io["cls_token_sentence_embedding"], POOLED_TOL, "cls sentence"
    )


def test_short_inputs_use_prefix_of_positions(name):
    io = io_arrays(name)
    model = _load(name, _best_source(name))
    out = model.bert(*inputs(io, "short_"))
    assert_close(out.last_hidden_state, io["short_last_hidden_state"], HIDDEN_TOL, "short")
    assert_close(out.pooler_output, io["short_pooled_output"], POOLED_TOL, "short pooled")


def test_sequence_token_planting():
    name = "retrieval_tiny"
    io = io_arrays(name)
    model = _load(name, _best_source(name), sequence_token_planting=True)
    ids, mask, types = inputs(io)
    out = model(ids, mask, types)
    np.testing.assert_array_equal(
        np.array(model_planted_ids(ids)), io["planting_input_ids"], "planted ids"
    )
    np.testing.assert_array_equal(np.array(ids), io["input_ids"])  # never in place
    assert_close(out.logits, io["planting_logits"], POOLED_TOL, "planting logits")
    assert_close(out.pooler_output, io["planting_pooled_output"], POOLED_TOL, "planting pooled")
    assert_close(
        out.sentence_embedding, io["planting_sentence_embedding"], POOLED_TOL, "planting sent"
    )
    assert_close(
        out.last_hidden_state, io["planting_last_hidden_state"], HIDDEN_TOL, "planting hidden"
    )


def model_planted_ids(ids: mx.array) -> mx.array:
    from mlxbert_m2 import plant_sequence_tokens

    return plant_sequence_tokens(ids)


def test_planting_too_short_raises_clear_error():
    name = "glue_tiny"  # L = 128: no position 128 * r below L, the reference divides by 0
    io = io_arrays(name)
    model = _load(name, _best_source(name), sequence_token_planting=True)
    with pytest.raises(ValueError, match="sequence_token_planting needs inputs of at least 256"):
        model(*inputs(io))


def test_compiled_forward_matches(name):
    io = io_arrays(name)
    model = _load(name, _best_source(name))
    fwd = mx.compile(lambda i, m, t: model(i, m, t).logits)
    assert_close(fwd(*inputs(io)), io["logits"], POOLED_TOL, "compiled logits")


def test_bfloat16_model_runs_close(name):
    io = io_arrays(name)
    model = load_checkpoint_into(
        config_dict(name), fixture_file(name, _best_source(name)), dtype="bfloat16"
    )
    out = model(*inputs(io))
    assert out.last_hidden_state.dtype == mx.bfloat16
    assert np.isfinite(np.array(out.logits.astype(mx.float32))).all()
