"""QLoRA on mlxbert-quant's quantized linear layer, the fast base for training batches: built
by `apply_lora(..., quantize_layer=QuantizedLinear.from_linear)` or by quantizing with
mlxbert-quant first. mlxbert-lora never imports mlxbert-quant; these tests use both."""

import mlx.core as mx
import mlx.nn as nn
import pytest
from lora_helpers import max_diff
from mlx.utils import tree_flatten

from mlxbert_lora import LoraConfig, apply_lora, lora_layers

mlxbert_quant = pytest.importorskip("mlxbert_quant")
linear = pytest.importorskip("mlxbert_quant._private.linear")


def fast_qlora_model(make_model):
    model = make_model()
    config = LoraConfig.preset("qlora", model=model, modules_to_save=["classifier"])
    return apply_lora(model, config, quantize_layer=mlxbert_quant.QuantizedLinear.from_linear)


def quantized_layers(model):
    return [m for _, m in model.named_modules() if isinstance(m, nn.QuantizedLinear)]


def test_quantize_layer_gives_qlora_the_quant_layer(make_model):
    model = fast_qlora_model(make_model)
    layers = quantized_layers(model)
    assert len(layers) == 10 and all(type(m) is mlxbert_quant.QuantizedLinear for m in layers)
    assert all(m.bits == 4 and m.group_size == 64 for m in layers)


def test_quantizing_with_mlxbert_quant_first_gives_the_same_base(make_model, inputs):
    # The two routes to a QLoRA model on the fast layer: quantize first, or let apply_lora
    # quantize through quantize_layer. Same layers, same values.
    first = make_model()
    mlxbert_quant.quantize(
        first, bits=4, group_size=64, skip=["classifier"], protect_sensitive=False
    )
    apply_lora(first, LoraConfig.preset("balanced", model=first, modules_to_save=["classifier"]))
    second = fast_qlora_model(make_model)
    assert all(type(m) is mlxbert_quant.QuantizedLinear for m in quantized_layers(first))
    assert [p for p, _ in lora_layers(first)] == [p for p, _ in lora_layers(second)]
    first_weights = dict(tree_flatten(first.parameters()))
    second_weights = dict(tree_flatten(second.parameters()))
    assert first_weights.keys() == second_weights.keys()
    for key, value in first_weights.items():
        if "lora_A" not in key:  # A is drawn at random
            assert mx.array_equal(value, second_weights[key]), key


def count_quantized_matmul(monkeypatch) -> list:
    calls = []
    original = mx.quantized_matmul

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(mx, "quantized_matmul", counted)
    return calls


def test_qlora_base_layers_dequantize_first_for_many_rows(make_model, inputs, monkeypatch):
    model = fast_qlora_model(make_model)
    calls = count_quantized_matmul(monkeypatch)
    y = mx.random.normal((inputs.shape[0], 3))

    def loss(m, x):
        return mx.mean(mx.square(m(x) - y))

    loss_fn = nn.value_and_grad(model, loss)
    input_grad = mx.grad(lambda x: loss(model, x))

    # Forced (as for a few rows): the quantized kernel.
    monkeypatch.setattr(linear, "dequantize_first", lambda x: False)
    packed_loss, packed_grads = loss_fn(model, inputs)
    packed_input_grad = input_grad(inputs)
    mx.eval(packed_loss, packed_grads, packed_input_grad)
    assert calls, "few rows take the quantized kernel"

    # Forced (as for many rows): the dequantized product, same values and gradients.
    calls.clear()
    monkeypatch.setattr(linear, "dequantize_first", lambda x: True)
    dense_loss, dense_grads = loss_fn(model, inputs)
    dense_input_grad = input_grad(inputs)
    mx.eval(dense_loss, dense_grads, dense_input_grad)
    assert not calls
    assert abs(packed_loss.item() - dense_loss.item()) < 1e-5
    assert max_diff(packed_input_grad, dense_input_grad) < 1e-5
    flat_packed = dict(tree_flatten(packed_grads))
    flat_dense = dict(tree_flatten(dense_grads))
    assert flat_packed.keys() == flat_dense.keys() and flat_packed
    for name, grad in flat_packed.items():
        assert max_diff(grad, flat_dense[name]) < 1e-4, name
    # Gradients reach the adapters and the saved head, never the frozen 4-bit weights.
    assert any("lora_B" in name for name in flat_dense)
    assert not any(
        name.endswith((".weight", ".scales", ".biases"))
        and "lora" not in name
        and "classifier" not in name
        for name in flat_dense
    )
