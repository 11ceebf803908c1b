"""Building blocks against direct NumPy references, gradients, and loader error handling."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from m2_helpers import assert_central_differences, config_dict, fixture_file
from mlx.utils import tree_flatten

from mlxbert_m2 import (
    BlockdiagLinear,
    M2BertConfig,
    M2BertModel,
    build_model,
    expand_positions,
    fft_long_conv,
    load_checkpoint_into,
    read_checkpoint,
    sanitize,
)
from mlxbert_m2.mixer import short_causal_conv


def direct_long_conv(v: np.ndarray, k_fwd: np.ndarray, k_rev: np.ndarray | None) -> np.ndarray:
    """The README's direct sums, float64: v (L, C), kernels (L, C)."""
    length = v.shape[0]
    y = np.zeros_like(v, dtype=np.float64)
    for t in range(length):
        for s in range(t + 1):
            y[t] += v[s] * k_fwd[t - s]
        if k_rev is not None:
            for s in range(t + 1, length):
                y[t] += v[s] * k_rev[s - t - 1]
    return y


def _kernel(k_fwd, k_rev):
    if k_rev is None:
        return np.concatenate([k_fwd, np.zeros_like(k_fwd)])
    return np.concatenate([k_fwd, k_rev[::-1]])


@pytest.mark.parametrize("bidirectional", [True, False])
def test_fft_long_conv_equals_direct_sums(bidirectional):
    rng = np.random.default_rng(0)
    length, channels = 11, 3
    v = rng.standard_normal((2, length, channels))
    k_fwd = rng.standard_normal((length, channels))
    k_rev = rng.standard_normal((length, channels)) if bidirectional else None
    y = fft_long_conv(mx.array(v, mx.float32), mx.array(_kernel(k_fwd, k_rev), mx.float32))
    for b in range(2):
        expected = direct_long_conv(v[b], k_fwd, k_rev)
        np.testing.assert_allclose(np.array(y[b]), expected, atol=1e-5)


def test_long_conv_gradients_match_finite_differences():
    """The convolution is bilinear, so central differences are exact up to rounding."""
    rng = np.random.default_rng(1)
    length, channels = 8, 2
    v = rng.standard_normal((1, length, channels))
    kern = _kernel(rng.standard_normal((length, channels)), rng.standard_normal((length, channels)))
    w = rng.standard_normal((1, length, channels))

    def loss(v_, k_):
        return (fft_long_conv(v_, k_) * mx.array(w, mx.float32)).sum()

    def loss64(v_, k_):
        y = np.stack([direct_long_conv(v_[0], k_[:length], k_[length:][::-1][:length])])
        return float((y * w).sum())

    gv, gk = mx.grad(loss, argnums=(0, 1))(mx.array(v, mx.float32), mx.array(kern, mx.float32))
    probes = [(0, (0, 5, 1)), (1, (3, 0)), (1, (12, 1))]
    assert_central_differences(loss64, (v, kern), (gv, gk), probes)


def test_mixer_gradient_reaches_filter_parameters():
    """Directional derivative through the whole mixer (filter MLP, Sin, modulation, FFT)."""
    config = M2BertConfig.from_dict(config_dict("glue_tiny"))
    mx.random.seed(0)
    mixer = build_model(config, "encoder").encoder.layer[0].attention
    rng = np.random.default_rng(2)
    x = mx.array(rng.standard_normal((2, 16, 64)), mx.float32)
    w = mx.array(rng.standard_normal((2, 16, 64)), mx.float32)
    names = [
        "filter_fn.implicit_filter.0.weight",
        "filter_fn.implicit_filter.1.freq",
        "filter_fn.pos_emb.z",
        "filter_fn2.implicit_filter_rev.4.weight",
    ]
    flat = dict(tree_flatten(mixer.trainable_parameters()))
    direction = {k: mx.array(rng.standard_normal(flat[k].shape), mx.float32) for k in names}

    def loss_fn(params):
        mixer.update(params)
        return (mixer(x) * w).sum()

    grads = dict(tree_flatten(mx.grad(loss_fn)(mixer.trainable_parameters())))
    mixer.update(dict_tree(list(flat.items())))
    analytic = sum(float((grads[k] * direction[k]).sum()) for k in names)

    def loss_at(step: float) -> float:
        mixer.update(dict_tree([(k, flat[k] + step * direction[k]) for k in names]))
        value = float((mixer(x) * w).sum())
        mixer.update(dict_tree([(k, flat[k]) for k in names]))
        return value

    eps = 1e-3
    fd = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
    assert abs(fd) > 1e-2
    assert abs(analytic - fd) < 2e-2 * abs(fd), (analytic, fd)
    # The frequency tensor is stored once per filter; its aliases own no parameter.
    assert not any(k.endswith((".3.freq", ".5.freq")) or "rev.1.freq" in k for k in grads)


def dict_tree(items):
    from mlx.utils import tree_unflatten

    return tree_unflatten(items)


def test_blockdiag_linear_equals_dense_block_diagonal():
    layer = BlockdiagLinear(8, 12, nblocks=4)
    x = mx.random.normal((3, 5, 8))
    w = np.array(layer.weight)
    dense = np.zeros((12, 8))
    for b in range(4):
        dense[b * 3 : (b + 1) * 3, b * 2 : (b + 1) * 2] = w[b]
    expected = np.array(x) @ dense.T + np.array(layer.bias)
    np.testing.assert_allclose(np.array(layer(x)), expected, atol=1e-5)


def test_short_conv_is_causal_depthwise():
    rng = np.random.default_rng(4)
    p = rng.standard_normal((1, 6, 2)).astype(np.float32)
    w = rng.standard_normal((2, 1, 3)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    q = np.array(short_causal_conv(mx.array(p), mx.array(w), mx.array(b)))
    padded = np.concatenate([np.zeros((1, 2, 2)), p], axis=1)
    for t in range(6):
        exp = w[:, 0, 0] * padded[0, t] + w[:, 0, 1] * padded[0, t + 1] + w[:, 0, 2] * p[0, t] + b
        np.testing.assert_allclose(q[0, t], exp, atol=1e-6)


def test_encoder_input_validation():
    model = build_model(config_dict("switches_tiny"), "encoder")
    with pytest.raises(ValueError, match="exceeds this M2-BERT model's maximum of 64"):
        model(mx.zeros((1, 65), dtype=mx.int32))
    with pytest.raises(ValueError, match="batch, length"):
        model(mx.zeros((65,), dtype=mx.int32))


def test_strict_load_lists_every_mismatch():
    path = fixture_file("switches_tiny", "model.safetensors")
    wrong = config_dict("switches_tiny", hidden_size=48, residual_long_conv=True)
    with pytest.raises(ValueError) as err:
        load_checkpoint_into(wrong, path)
    text = str(err.value)
    assert "missing" in text and "filter_fn2" in text
    assert "shape mismatch" in text and "word_embeddings.weight" in text


def test_unexpected_keys_are_reported_but_flash_fft_buffers_ignored():
    path = fixture_file("switches_tiny", "model.safetensors")
    weights, _ = read_checkpoint(path)
    model = build_model(config_dict("switches_tiny"), "sequence_classification", num_labels=1)
    extra = dict(weights)
    extra["bert.encoder.layer.0.attention.flashfftconv.f_32_fft"] = mx.zeros((4,))
    cleaned, notes = sanitize(extra, model)
    assert not any("flashfftconv" in k for k in cleaned)
    assert any("FlashFFTConv" in n for n in notes)
    extra["bert.encoder.layer.0.attention.something_else"] = mx.zeros((4,))
    from mlxbert_m2 import load_weights_strict

    cleaned, _ = sanitize(extra, model)
    with pytest.raises(ValueError, match=r"unexpected.*something_else"):
        load_weights_strict(model, cleaned)


def test_safetensors_aliases_and_encoder_task():
    path = fixture_file("switches_tiny", "model.safetensors")
    model = load_checkpoint_into(config_dict("switches_tiny"), path, task="encoder")
    assert isinstance(model, M2BertModel)
    assert any("task-head" in n for n in model.load_notes)
    assert any("shared-tensor aliases" in n for n in model.load_notes)
    assert not model.training


def test_fresh_head_when_num_labels_differs():
    path = fixture_file("switches_tiny", "model.safetensors")
    model = load_checkpoint_into(config_dict("switches_tiny"), path, num_labels=3)
    assert model.classifier.weight.shape == (3, 32)
    assert any("fresh 3-label head" in n for n in model.load_notes)


def test_position_expansion_follows_reference_layout():
    config = M2BertConfig.from_dict(
        config_dict(
            "glue_tiny",
            max_position_embeddings=512,
            long_conv_l_max=2048,
            expand_positional_embeddings=True,
        )
    )
    pos = mx.random.normal((128, 64))
    z = mx.random.normal((1, 128, 5))
    weights = {
        "bert.embeddings.position_embeddings.weight": pos,
        "bert.embeddings.position_ids": mx.arange(128)[None],
        "bert.encoder.layer.0.attention.filter_fn.pos_emb.z": z,
        "bert.encoder.layer.0.attention.filter_fn.pos_emb.t": mx.zeros((1, 128, 1)),
    }
    out, kept, notes = expand_positions(weights, config)
    new_pos = np.array(out["bert.embeddings.position_embeddings.weight"])
    assert new_pos.shape == (512, 64)
    np.testing.assert_array_equal(new_pos[300], np.array(pos)[300 % 128])
    new_z = np.array(out["bert.encoder.layer.0.attention.filter_fn.pos_emb.z"])
    assert new_z.shape == (1, 2048, 5)
    assert not new_z[:, :128].any() and not new_z[:, 512:].any()
    for copy in range(3):
        np.testing.assert_array_equal(new_z[:, 128 * (copy + 1) : 128 * (copy + 2)], np.array(z))
    assert "bert.embeddings.position_ids" in kept
    assert "bert.encoder.layer.0.attention.filter_fn.pos_emb.t" in kept
    assert notes
    bad = M2BertConfig.from_dict(
        config_dict("glue_tiny", long_conv_l_max=1000, expand_positional_embeddings=True)
    )
    with pytest.raises(ValueError, match="16 x 128"):
        expand_positions({"x.pos_emb.z": z}, bad)


def test_masked_lm_ties_decoder_to_word_embeddings():
    model = build_model(config_dict("switches_tiny"), "masked_lm")
    names = dict(tree_flatten(model.parameters()))
    assert "cls.predictions.decoder.bias" in names
    assert "cls.predictions.decoder.weight" not in names
    assert "bert.pooler.dense.weight" not in names
    model.eval()
    logits = model(mx.array([[101, 200, 102]])).logits
    assert logits.shape == (1, 3, 256)
    weights = {k: v for k, v in names.items()}
    weights["cls.predictions.decoder.weight"] = weights["bert.embeddings.word_embeddings.weight"]
    cleaned, _ = sanitize(weights, model)
    assert "cls.predictions.decoder.weight" not in cleaned
    weights["cls.predictions.decoder.weight"] = weights["cls.predictions.decoder.weight"] + 1
    with pytest.raises(ValueError, match="ties them"):
        sanitize(weights, model)


def test_config_rejects_unsupported_switches():
    with pytest.raises(ValueError, match="attention_pooling"):
        M2BertConfig.from_dict(config_dict("glue_tiny", attention_pooling=True))
    with pytest.raises(ValueError, match="divisible"):
        M2BertConfig.from_dict(config_dict("glue_tiny", hidden_size=66))


def test_module_is_an_nn_module():
    assert isinstance(build_model(config_dict("glue_tiny"), "encoder"), nn.Module)
