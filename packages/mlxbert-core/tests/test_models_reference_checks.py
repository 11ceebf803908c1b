"""Checks every built-in encoder passes against its reference fixture (tests/fixtures/<name>)."""

from __future__ import annotations

import mlx.core as mx
import pytest
from reference_outputs import INPUT_KEYS, reference

from mlxbert_core.models import _layers

ARCHITECTURES = list(INPUT_KEYS)


@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float16])
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_half_precision_is_finite_and_close(name, dtype):
    """With and without explicit attention, every returned state is finite, padded rows
    included (ModernBERT's row 2 has 8 real tokens out of 40: its padded queries in the local
    layers lie far outside any real key's window), and real tokens stay close."""
    ref = reference(name)
    model, _ = ref.load("encoder")
    model.set_dtype(dtype)
    for explicit in (False, True):
        out = model(*ref.inputs, output_hidden_states=True, output_attentions=explicit)
        for h in (*out.hidden_states, out.last_hidden_state, *(out.attentions or ())):
            assert mx.all(mx.isfinite(h)).item()
        assert ref.max_err_real(out.last_hidden_state, ref.io["last_hidden_state"]) < 0.25


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_gpu_code_path_matches_reference(name, monkeypatch):
    """Fused attention, nn.gelu and mx.softmax (the non-CPU path), run here on the CPU."""
    ref = reference(name)
    monkeypatch.setattr(_layers, "on_cpu", lambda: False)
    model = ref.load("encoder")[0]
    assert (
        ref.max_err_real(model(*ref.inputs).last_hidden_state, ref.io["last_hidden_state"]) < 1e-4
    )
    model.set_dtype(mx.float16)
    assert mx.all(mx.isfinite(model(*ref.inputs).last_hidden_state)).item()
