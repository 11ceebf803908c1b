import re

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlxbert_quant import MODES, QuantizationError, dequantize, quantize

LINEARS = ["layers.0.dense_in", "layers.0.dense_out", "layers.1.dense_in", "layers.1.dense_out"]


def module(model, path):
    for name, m in model.named_modules():
        if name == path:
            return m
    raise KeyError(path)


def snapshot(model):
    return {k: np.array(v) for k, v in tree_flatten(model.parameters())}


def assert_unchanged(model, before):
    after = snapshot(model)
    assert after.keys() == before.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)
    assert all(type(module(model, p)) is nn.Linear for p in LINEARS)


def test_default_quantizes_linears_packed_and_keeps_heads_embeddings_norms(make_model, ids):
    model = make_model()
    reference = model(ids)
    assert quantize(model) is model
    for path in LINEARS:
        layer = module(model, path)
        assert isinstance(layer, nn.QuantizedLinear)
        assert (layer.bits, layer.group_size, layer.mode) == (4, 64, "affine")
        assert layer.weight.dtype == mx.uint32
        rows, cols = layer.weight.shape
        in_dims = 64 if path.endswith("dense_in") else 128
        assert cols == in_dims * 4 // 32  # eight 4-bit codes per uint32
        assert layer.scales.shape == layer.biases.shape == (rows, in_dims // 64)
    assert type(model.classifier) is nn.Linear
    assert type(model.embeddings) is nn.Embedding
    assert type(model.layers[0].norm) is nn.LayerNorm
    # No float copy of a quantized weight is kept anywhere.
    floats = [
        k for k, v in tree_flatten(model.parameters()) if v.ndim == 2 and v.dtype != mx.uint32
    ]
    assert sorted(floats) == sorted(
        ["embeddings.weight", "classifier.weight"]
        + [f"{p}.{n}" for p in LINEARS for n in ("scales", "biases")]
    )
    out = model(ids)
    assert out.shape == reference.shape
    cos = mx.sum(out * reference, -1) / (
        mx.linalg.norm(out, axis=-1) * mx.linalg.norm(reference, axis=-1)
    )
    assert float(cos.min()) > 0.9


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
def test_affine_bits_supported_by_mlx(make_model, bits):
    model = quantize(make_model(), bits=bits, group_size=32)
    assert model.layers[0].dense_in.bits == bits
    assert model.layers[0].dense_in.weight.shape == (128, 64 * bits // 32)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_runs_with_its_defaults(make_model, ids, mode):
    model = make_model()
    reference = np.array(model(ids))
    quantize(model, mode=mode)
    spec = MODES[mode]
    layer = model.layers[1].dense_out
    assert (layer.mode, layer.bits, layer.group_size) == (
        mode,
        spec.default_bits,
        spec.default_group_size,
    )
    assert layer.weight.dtype == mx.uint32
    assert ("biases" in layer) == spec.has_biases
    out = np.array(model(ids))
    assert np.abs(out - reference).mean() < 0.25 * np.abs(reference).mean()


def test_unsupported_bits_error_names_every_layer_and_leaves_model_untouched(make_model):
    model = make_model()
    before = snapshot(model)
    with pytest.raises(QuantizationError) as err:
        quantize(model, bits=7)
    message = str(err.value)
    assert "bits=7" in message and "left unchanged" in message
    for path in LINEARS:
        assert path in message
    assert_unchanged(model, before)


def test_bits_not_allowed_by_a_float_mode(make_model):
    model = make_model()
    before = snapshot(model)
    with pytest.raises(QuantizationError, match=r"bits=3 is not supported by mode 'mxfp4'"):
        quantize(model, bits=3, mode="mxfp4")
    with pytest.raises(QuantizationError, match=r"group_size=64 is not supported by mode 'nvfp4'"):
        quantize(model, group_size=64, mode="nvfp4")
    assert_unchanged(model, before)


def test_group_size_not_dividing_input_lists_all_offenders_at_once(make_model):
    # dims=96: dense_in (96 -> 128) of both blocks cannot use groups of 64; dense_out can.
    model = make_model(dims=96)
    before = snapshot(model)
    with pytest.raises(QuantizationError) as err:
        quantize(model, group_size=64)
    message = str(err.value)
    assert "layers.0.dense_in (Linear 96->128)" in message
    assert "layers.1.dense_in (Linear 96->128)" in message
    assert "does not divide the input dimension 96" in message
    assert "dense_out" not in message
    assert_unchanged(model, before)
    # Skipping the offenders makes it valid.
    quantize(model, group_size=64, skip="dense_in")
    assert isinstance(model.layers[0].dense_out, nn.QuantizedLinear)
    assert type(model.layers[0].dense_in) is nn.Linear


def test_unknown_mode_and_bad_types(make_model):
    model = make_model()
    with pytest.raises(QuantizationError, match="Unknown quantization mode 'int4'"):
        quantize(model, mode="int4")
    with pytest.raises(QuantizationError, match="bits must be an integer"):
        quantize(model, bits=4.0)
    with pytest.raises(TypeError, match="Cannot select layers"):
        quantize(model, skip=[3])


@pytest.mark.parametrize(
    "skip",
    [
        "layers.0.dense_in",  # exact path
        ["layers.0.dense_in"],
        r"layers\.0\..*_in",  # regex over the whole path
        re.compile(r"0\.dense_in$"),  # compiled pattern, searched
        lambda path, m: path.startswith("layers.0.") and m.weight.shape[0] == 128,
    ],
)
def test_skip_by_name_regex_or_predicate(make_model, skip):
    model = quantize(make_model(), skip=skip)
    assert type(model.layers[0].dense_in) is nn.Linear
    for path in LINEARS[1:]:
        assert isinstance(module(model, path), nn.QuantizedLinear)


def test_skip_by_dotted_suffix_hits_every_block(make_model):
    model = quantize(make_model(), skip="dense_out")
    assert [type(module(model, p)).__name__ for p in LINEARS] == [
        "QuantizedLinear",
        "Linear",
        "QuantizedLinear",
        "Linear",
    ]


def test_skip_that_matches_nothing_warns(make_model):
    with pytest.warns(UserWarning, match="matches no Linear"):
        quantize(make_model(), skip="no_such_layer")


def test_overrides_per_layer(make_model):
    model = quantize(
        make_model(),
        overrides={
            "layers.0.dense_in": {"bits": 8},
            r"layers\.1\..*": {"group_size": 32},
            "layers.1.dense_out": {"mode": "mxfp8"},
        },
    )
    settings = {
        p: (module(model, p).bits, module(model, p).group_size, module(model, p).mode)
        for p in LINEARS
    }
    assert settings == {
        "layers.0.dense_in": (8, 64, "affine"),
        "layers.0.dense_out": (4, 64, "affine"),
        "layers.1.dense_in": (4, 32, "affine"),
        # A different mode starts from that mode's defaults, then later overrides apply.
        "layers.1.dense_out": (8, 32, "mxfp8"),
    }


def test_overrides_bring_back_heads_and_embeddings_but_skip_wins(make_model):
    model = quantize(
        make_model(),
        overrides={"classifier": {"bits": 8, "group_size": 32}, "embeddings": {"bits": 8}},
        skip="layers.1.dense_in",
    )
    assert isinstance(model.classifier, nn.QuantizedLinear) and model.classifier.bits == 8
    assert isinstance(model.embeddings, nn.QuantizedEmbedding)
    assert type(model.layers[1].dense_in) is nn.Linear
    model = quantize(make_model(), skip="classifier", overrides={"classifier": {"bits": 8}})
    assert type(model.classifier) is nn.Linear


def test_bad_overrides_are_reported(make_model):
    model = make_model()
    before = snapshot(model)
    with pytest.raises(QuantizationError, match="unknown keys"):
        quantize(model, overrides={"dense_in": {"bitz": 8}})
    with pytest.raises(QuantizationError, match="'nothing_here' matches no Linear"):
        quantize(model, overrides={"nothing_here": {"bits": 8}})
    with pytest.raises(QuantizationError, match=r"layers.0.dense_in .*bits=7"):
        quantize(model, overrides={"layers.0.dense_in": {"bits": 7}})
    assert_unchanged(model, before)


def test_quantize_embeddings_and_default_skip_off(make_model, ids):
    model = quantize(make_model(), quantize_embeddings=True, default_skip=False, group_size=32)
    assert isinstance(model.embeddings, nn.QuantizedEmbedding)
    assert isinstance(model.classifier, nn.QuantizedLinear)
    assert model(ids).shape == (2, 6, 3)


def test_dequantize_returns_close_float_layers(make_model, ids):
    model = make_model()
    reference = np.array(model(ids))
    original = snapshot(model)
    quantize(model, bits=8, quantize_embeddings=True)
    quantized_out = np.array(model(ids))
    assert dequantize(model) is model
    assert all(type(module(model, p)) is nn.Linear for p in LINEARS)
    assert type(model.embeddings) is nn.Embedding
    weights = snapshot(model)
    assert weights.keys() == original.keys()
    for key, value in original.items():
        assert weights[key].dtype == value.dtype
        np.testing.assert_allclose(weights[key], value, atol=0.01, err_msg=key)
    out = np.array(model(ids))
    np.testing.assert_allclose(out, quantized_out, atol=1e-4)  # same numbers, float layers
    np.testing.assert_allclose(out, reference, atol=0.05)


def test_dequantize_float_modes_and_dtype(make_model):
    model = quantize(make_model(), mode="mxfp4")
    dequantize(model, dtype=mx.bfloat16)
    assert model.layers[0].dense_in.weight.dtype == mx.bfloat16
    assert model.layers[0].dense_in.bias.dtype == mx.bfloat16


def test_bfloat16_model_keeps_bfloat16_scales(make_model, ids):
    model = make_model()
    model.set_dtype(mx.bfloat16)
    quantize(model, bits=8)
    assert model.layers[0].dense_in.scales.dtype == mx.bfloat16
    assert model(ids).dtype == mx.bfloat16


def test_skip_a_whole_block_by_its_path(make_model):
    model = quantize(make_model(), skip="layers.1")
    assert isinstance(model.layers[0].dense_in, nn.QuantizedLinear)
    assert type(model.layers[1].dense_in) is nn.Linear
    assert type(model.layers[1].dense_out) is nn.Linear


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(64, 64)
        self.value = nn.Linear(64, 64)
        self.v_proj = nn.Linear(64, 64)


def test_value_projections_get_8_bits_below_8_bits():
    model = quantize(Attention(), bits=4)
    assert (model.query.bits, model.value.bits, model.v_proj.bits) == (4, 8, 8)
    assert model.value.group_size == 64
    model = quantize(Attention(), mode="nvfp4")
    assert model.query.mode == "nvfp4"
    assert (model.value.mode, model.value.bits, model.value.group_size) == ("mxfp8", 8, 32)
    model = quantize(Attention(), bits=4, protect_sensitive=False)
    assert model.value.bits == 4
    # An explicit override wins over the rule.
    model = quantize(Attention(), bits=4, overrides={"value": {"bits": 2}})
    assert (model.value.bits, model.v_proj.bits) == (2, 8)
