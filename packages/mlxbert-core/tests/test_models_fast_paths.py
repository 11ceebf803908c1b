"""Inference fast paths: compiled forwards, host-side input checks, unpadded batches without a
mask, and the GPU code paths (fused q/k/v, fused attention, additive masks), all against the
transformers reference outputs in tests/fixtures/{bert,modernbert,neobert}.

The GPU paths are exercised on CPU by making the layers believe they are not on CPU: the same
code runs, only slower.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from mlxbert_core.models import _layers
from mlxbert_core.registry import get_architecture

FIXTURES = Path(__file__).parent / "fixtures"
ARCHS = ["bert", "modernbert", "neobert"]
TOL = 1e-4  # the fixtures' tolerance on last_hidden_state (see the model tests)


def _load(arch: str):
    folder = FIXTURES / arch
    spec = get_architecture(arch)
    model = spec.build(json.loads((folder / "config.json").read_text()), "encoder")
    weights, _ = spec.sanitize(mx.load(str(folder / "model.safetensors")), model)
    model.load_weights(list(weights.items()), strict=True)
    return model, dict(np.load(folder / "io.npz"))


@pytest.fixture(scope="module", params=ARCHS)
def loaded(request):
    model, io = _load(request.param)
    yield model, io
    model.compile_forward(False)


def _inputs(io: dict) -> tuple:
    types = io.get("token_type_ids")
    return (io["input_ids"], io["attention_mask"]) + ((types,) if types is not None else ())


def _err(actual: mx.array, io: dict) -> float:
    real = io["attention_mask"] == 1
    got = np.array(actual.astype(mx.float32))
    return float(np.abs(got - io["last_hidden_state"])[real].max())


@pytest.fixture
def gpu_code_paths(monkeypatch):
    """Run the GPU-only branches of the layers on the CPU device."""
    monkeypatch.setattr(_layers, "on_cpu", lambda: False)


def test_compiled_forward_matches_reference(loaded):
    model, io = loaded
    eager = model(*_inputs(io))
    assert model.compile_forward() is model and model.forward_compiled
    compiled = model(*_inputs(io))
    assert _err(compiled.last_hidden_state, io) < TOL
    np.testing.assert_allclose(
        np.array(compiled.last_hidden_state),
        np.array(eager.last_hidden_state),
        atol=1e-5,
    )
    if eager.pooler_output is not None:
        np.testing.assert_allclose(
            np.array(compiled.pooler_output), np.array(eager.pooler_output), atol=1e-5
        )
    # Asking for hidden states / attentions, or training mode, takes the eager path.
    full = model(*_inputs(io), output_hidden_states=True)
    assert full.hidden_states is not None
    model.compile_forward(False)
    assert not model.forward_compiled


def test_compiled_forward_follows_weight_updates(loaded):
    model, io = loaded
    ids = io["input_ids"][:2]
    model.compile_forward()
    try:
        before = np.array(model(ids).last_hidden_state)
        # Change one weight after the first compiled call: the compiled output must follow.
        linear = next(
            m for name, m in model.named_modules() if isinstance(m, nn.Linear) and "0." in name
        )
        original = linear.weight
        linear.weight = original * 1.5
        changed = np.array(model(ids).last_hidden_state)
        model.compile_forward(False)
        eager = np.array(model(ids).last_hidden_state)
        model.compile_forward()
        np.testing.assert_allclose(changed, eager, atol=1e-5)
        assert np.abs(changed - before).max() > 1e-3
        linear.weight = original
        np.testing.assert_allclose(np.array(model(ids).last_hidden_state), before, atol=1e-6)
    finally:
        model.compile_forward(False)


def test_training_mode_bypasses_compiled_forward(loaded):
    model, _ = loaded
    model.compile_forward()
    try:
        model.train()
        assert not model._use_compiled(True)
    finally:
        model.eval()
        model.compile_forward(False)
    assert not model._use_compiled(True)


def test_unpadded_batch_runs_without_mask(loaded):
    model, io = loaded
    full = io["attention_mask"].all(axis=1)
    ids = io["input_ids"][full]
    assert len(ids) >= 1
    with_mask = model(ids, np.ones_like(ids)).last_hidden_state
    without = model(ids).last_hidden_state
    np.testing.assert_array_equal(np.array(with_mask), np.array(without))
    ref = io["last_hidden_state"][full]
    assert np.abs(np.array(with_mask.astype(mx.float32)) - ref).max() < TOL


@pytest.mark.parametrize("as_mx", [False, True])
def test_validate_inputs_drops_full_masks_only(as_mx):
    conv = mx.array if as_mx else np.asarray
    kwargs = dict(vocab_size=10, max_positions=8, max_positions_name="max_length")
    ids = conv(np.array([[2, 5, 3], [4, 4, 1]]))
    _, mask, _ = _layers.validate_inputs(ids, conv(np.ones((2, 3), np.int32)), **kwargs)
    assert isinstance(mask, mx.array)  # kept unless asked
    _, mask, _ = _layers.validate_inputs(
        ids, conv(np.ones((2, 3), np.int32)), drop_full_mask=True, **kwargs
    )
    assert mask is None
    padded = np.array([[1, 1, 1], [1, 1, 0]], np.int32)
    _, mask, _ = _layers.validate_inputs(ids, conv(padded), drop_full_mask=True, **kwargs)
    assert np.array_equal(np.array(mask), padded)


@pytest.mark.parametrize("as_mx", [False, True])
def test_range_errors_for_host_and_device_inputs(as_mx):
    conv = mx.array if as_mx else np.asarray
    kwargs = dict(vocab_size=10, max_positions=8, max_positions_name="max_length")
    for bad in ([[2, 10, 3]], [[2, -1, 3]]):
        with pytest.raises(ValueError, match=r"outside the vocabulary \[0, 10\)"):
            _layers.validate_inputs(conv(np.array(bad)), **kwargs)
    ids = np.array([[2, 5, 3]])
    with pytest.raises(ValueError, match="token_type_ids must lie"):
        _layers.validate_inputs(
            conv(ids), None, conv(np.array([[0, 2, 0]])), type_vocab_size=2, **kwargs
        )
    out, _, types = _layers.validate_inputs(
        conv(ids), None, conv(np.array([[0, 1, 0]])), type_vocab_size=2, **kwargs
    )
    assert out.tolist() == [[2, 5, 3]] and types.tolist() == [[0, 1, 0]]


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"GPU_ADDITIVE_MASK": True},
        {"GPU_FUSED_QKV": False},
        {"GPU_ATTENTION": "explicit"},
        {"GPU_SPLIT_BIAS": True},
        {"GPU_SPLIT_BIAS": True, "GPU_FUSED_QKV": False},
    ],
    ids=["default", "additive-mask", "separate-qkv", "explicit-attention", "split-bias", "sb-sq"],
)
def test_gpu_code_paths_match_reference(loaded, gpu_code_paths, monkeypatch, settings):
    model, io = loaded
    for name, value in settings.items():
        monkeypatch.setattr(_layers, name, value)
    assert _err(model(*_inputs(io)).last_hidden_state, io) < TOL
    model.compile_forward()
    try:
        assert _err(model(*_inputs(io)).last_hidden_state, io) < TOL
    finally:
        model.compile_forward(False)


def test_fused_linears_equal_separate_ones(gpu_code_paths):
    layers = [nn.Linear(8, 8), nn.Linear(8, 4), nn.Linear(8, 8)]
    x = mx.random.normal((2, 3, 8))
    fused = _layers.fused_linears(x, layers)
    assert fused is not None
    for got, layer in zip(fused, layers):
        np.testing.assert_allclose(np.array(got), np.array(layer(x)), atol=1e-5)
    # Not applicable: mixed biases, non-Linear layers, or switched off.
    assert _layers.fused_linears(x, [nn.Linear(8, 8), nn.Linear(8, 8, bias=False)]) is None
    assert _layers.fused_linears(x, [nn.QuantizedLinear(64, 64)]) is None


def test_fused_linears_off_on_cpu():
    assert _layers.fused_linears(mx.zeros((1, 8)), [nn.Linear(8, 8)]) is None


def test_embed_through_compiled_forward(monkeypatch):
    """embed's GPU path (widths rounded up to a multiple of 16 for the compiled forward) gives
    the same embeddings as the CPU path and leaves the model's setting alone."""
    import mlxbert_core as mb

    embed_module = importlib.import_module("mlxbert_core.embed")

    model = mb.from_pretrained(FIXTURES / "bert")
    tok = mb.load_tokenizer(FIXTURES / "bert")
    texts = ["Hello world!", "", "The quick brown fox jumps over the lazy dog.", "a b c"]
    expected = mb.embed(model, tok, texts, batch_size=3)
    widths = []
    original_pad = tok.pad

    def recording_pad(*args, **kwargs):
        widths.append(kwargs.get("width"))
        return original_pad(*args, **kwargs)

    monkeypatch.setattr(embed_module, "_use_compiled_forward", lambda m: True)
    monkeypatch.setattr(tok, "pad", recording_pad)
    got = mb.embed(model, tok, texts, batch_size=3)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert widths and all(w % 16 == 0 for w in widths)
    assert model.forward_compiled  # the default, left as it was
    assert embed_module._batch_width([5, 17], True, 20) == 20  # never past the model limit
    assert embed_module._batch_width([5, 17], False, None) == 17


@pytest.mark.parametrize("as_mx", [False, True])
def test_host_copy_check_mode(monkeypatch, as_mx):
    """DEVICE_INPUT_CHECK="host": MLX-array inputs are copied to the host and checked there."""
    monkeypatch.setattr(_layers, "DEVICE_INPUT_CHECK", "host")
    conv = mx.array if as_mx else np.asarray
    kwargs = dict(vocab_size=10, max_positions=8, max_positions_name="max_length")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        _layers.validate_inputs(conv(np.array([[2, 10, 3]])), **kwargs)
    ids = conv(np.array([[2, 5, 3]]))
    _, mask, _ = _layers.validate_inputs(
        ids, conv(np.ones((1, 3), np.int32)), drop_full_mask=True, **kwargs
    )
    assert mask is None


def test_check_device_values_off_skips_only_mlx_inputs():
    kwargs = dict(vocab_size=10, max_positions=8, max_positions_name="max_length")
    bad = np.array([[2, 10, 3]])
    with pytest.raises(ValueError, match="outside the vocabulary"):  # host: still checked
        _layers.validate_inputs(bad, check_device_values=False, **kwargs)
    ids, mask, _ = _layers.validate_inputs(
        mx.array(bad), mx.ones((1, 3)), drop_full_mask=True, check_device_values=False, **kwargs
    )
    assert ids.tolist() == [[2, 10, 3]] and mask is not None  # not read: kept


def test_compile_forward_check_mx_inputs_flag(loaded):
    model, io = loaded
    ids = io["input_ids"][:2]
    bad = ids.copy()
    bad[0, 1] = model.config.vocab_size
    model.compile_forward(check_mx_inputs=False)
    try:
        with pytest.raises(ValueError, match="outside the vocabulary"):
            model(bad)  # NumPy input: checked on the host
        model(mx.array(bad))  # MLX input: trusted, no error, no synchronisation
        got = model(*(mx.array(a[:2]) for a in _inputs(io))).last_hidden_state
        real = io["attention_mask"][:2] == 1
        ref = io["last_hidden_state"][:2]
        assert np.abs(np.array(got.astype(mx.float32)) - ref)[real].max() < TOL
        model.compile_forward(False)
        with pytest.raises(ValueError, match="outside the vocabulary"):
            model(mx.array(bad))  # eager calls always check
    finally:
        model.compile_forward(False)
