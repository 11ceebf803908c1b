"""QLoRA: adapters on a 4-bit `nn.QuantizedLinear` base, and merging back into it."""

import warnings

import mlx.core as mx
import mlx.nn as nn
import pytest
from lora_helpers import adam_steps, max_diff

from mlxbert_lora import (
    LoraConfig,
    apply_lora,
    lora_layers,
    merge_lora,
    param_nbytes,
    trainable_parameters,
)


def qlora_model(make_model, **overrides):
    model = make_model()
    config = LoraConfig.preset("qlora", model=model, modules_to_save=["classifier"], **overrides)
    return apply_lora(model, config)


def test_qlora_quantizes_the_base_and_keeps_the_head_float(make_model, inputs):
    model = qlora_model(make_model)
    layers = dict(lora_layers(model))
    assert len(layers) == 6  # query, key, value in 2 blocks
    assert all(isinstance(layer.base_layer, nn.QuantizedLinear) for layer in layers.values())
    assert all(layer.base_layer.bits == 4 for layer in layers.values())
    assert isinstance(model.encoder.layer[0].dense, nn.QuantizedLinear)  # not adapted, quantized
    assert isinstance(model.classifier, nn.Linear)  # modules_to_save stays float and trainable
    counts = trainable_parameters(model)
    assert counts["trainable"] == 6 * (8 * 64 * 2) + 64 * 3 + 3


def test_qlora_uses_less_memory_than_lora_on_fp32(make_model):
    qlora = qlora_model(make_model)
    lora = apply_lora(make_model(), LoraConfig.preset("balanced", modules_to_save=["classifier"]))
    assert trainable_parameters(qlora)["trainable"] == trainable_parameters(lora)["trainable"]
    assert param_nbytes(qlora) < 0.5 * param_nbytes(lora)


def test_qlora_trains_adapters_on_frozen_quantized_base(make_model, inputs):
    model = qlora_model(make_model)
    start = model(inputs)
    frozen = {p: mx.array(layer.base_layer.weight) for p, layer in lora_layers(model)}
    y = mx.zeros((inputs.shape[0], 3))
    losses = adam_steps(model, lambda m: mx.mean(mx.square(m(inputs) - y)), steps=5)
    assert losses[-1] < losses[0]
    assert max_diff(model(inputs), start) > 1e-3
    for path, layer in lora_layers(model):
        assert mx.array_equal(layer.base_layer.weight, frozen[path])
        assert mx.abs(layer.lora_B.weight).max().item() > 0

    unmerged = model(inputs)
    merge_lora(model)  # float merge: dequantize + delta, nothing lost
    assert isinstance(model.encoder.layer[0].attention.query, nn.Linear)
    assert max_diff(model(inputs), unmerged) < 1e-4


def set_b(model, value):
    for _, layer in lora_layers(model):
        layer.lora_B.weight = mx.random.normal(layer.lora_B.weight.shape) * value


def test_requantized_merge_warns_when_the_delta_vanishes(make_model, inputs):
    model = qlora_model(make_model)
    set_b(model, 1e-5)
    with pytest.warns(UserWarning, match="half a quantization step"):
        _, reports = merge_lora(model, requantize=True, return_report=True)
    assert all(isinstance(m, nn.QuantizedLinear) for m in (model.encoder.layer[1].attention.value,))
    assert all(r.requantized and r.groups_below_half_step > 0.9 for r in reports)
    assert all(abs(r.delta_retained) < 0.5 for r in reports)


def test_requantized_merge_keeps_a_large_delta_silently(make_model, inputs):
    model = qlora_model(make_model)
    set_b(model, 0.5)
    unmerged = model(inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, reports = merge_lora(model, requantize=True, return_report=True)
    assert isinstance(model.encoder.layer[0].attention.query, nn.QuantizedLinear)
    assert all(r.groups_below_half_step < 0.1 for r in reports)
    assert all(r.delta_retained > 0.9 for r in reports)
    # requantizing adds fresh rounding error but the adapted function is kept
    assert max_diff(model(inputs), unmerged) < 0.1 * mx.abs(unmerged).max().item()


def test_merge_of_float_base_reports_full_retention(make_model):
    model = apply_lora(make_model(), LoraConfig(target_modules=["query"]))
    set_b(model, 1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, reports = merge_lora(model, requantize=True, return_report=True)  # no-op for float
    assert all(not r.quantized_base and r.delta_retained == 1.0 for r in reports)


# ------------------------------------------------------------------------ the quantized base
def test_qlora_quantizes_with_mlx_by_default(make_model):
    model = qlora_model(make_model)
    base_layers = [m for _, m in model.named_modules() if isinstance(m, nn.QuantizedLinear)]
    assert base_layers and all(type(m) is nn.QuantizedLinear for m in base_layers)


def test_qlora_quantizes_with_the_given_layer_factory(make_model, inputs):
    class MarkedQuantizedLinear(nn.QuantizedLinear):
        pass

    calls = []

    def quantize_layer(linear, group_size, bits):
        calls.append((group_size, bits))
        return MarkedQuantizedLinear.from_linear(linear, group_size, bits)

    model = make_model()
    config = LoraConfig.preset("qlora", model=model, modules_to_save=["classifier"])
    apply_lora(model, config, quantize_layer=quantize_layer)
    base_layers = [m for _, m in model.named_modules() if isinstance(m, nn.QuantizedLinear)]
    assert len(base_layers) == len(calls) == 10  # 5 Linear layers in each of 2 blocks
    assert all(type(m) is MarkedQuantizedLinear for m in base_layers)
    assert set(calls) == {(64, 4)}
    assert all(
        isinstance(layer.base_layer, MarkedQuantizedLinear) for _, layer in lora_layers(model)
    )
    # A requantized merge keeps the base's class.
    set_b(model, 0.5)
    merge_lora(model, requantize=True)
    assert type(model.encoder.layer[0].attention.query) is MarkedQuantizedLinear
    assert model(inputs).shape == (inputs.shape[0], 3)
