"""QLoRA: adapters on a 4-bit `nn.QuantizedLinear` base, and merging back into it."""

import warnings

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from mlx.utils import tree_flatten

from mlxbert_lora import (
    LoraConfig,
    apply_lora,
    lora_layers,
    merge_lora,
    param_nbytes,
    trainable_parameters,
)


def max_diff(a, b) -> float:
    return float(mx.max(mx.abs(a - b)).item())


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
    step = nn.value_and_grad(model, lambda m: mx.mean(mx.square(m(inputs) - y)))
    opt = optim.Adam(learning_rate=1e-2)
    losses = []
    for _ in range(5):
        loss, grads = step(model)
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)
        losses.append(loss.item())
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


# ----------------------------------------------------------------------------- large batches
def test_qlora_base_layers_dequantize_first_for_many_rows(make_model, inputs, monkeypatch):
    from mlxbert_lora._private import qbase

    model = qlora_model(make_model)
    base_layers = [m for _, m in model.named_modules() if isinstance(m, nn.QuantizedLinear)]
    assert base_layers and all(isinstance(m, qbase.QLoRABaseLinear) for m in base_layers)
    calls = []
    original = mx.quantized_matmul

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(mx, "quantized_matmul", counted)
    y = mx.random.normal((inputs.shape[0], 3))

    def loss(m, x):
        return mx.mean(mx.square(m(x) - y))

    loss_fn = nn.value_and_grad(model, loss)
    input_grad = mx.grad(lambda x: loss(model, x))

    # Forced (as for a few rows): the quantized kernel.
    monkeypatch.setattr(qbase, "dequantize_first", lambda x: False)
    packed_loss, packed_grads = loss_fn(model, inputs)
    packed_input_grad = input_grad(inputs)
    mx.eval(packed_loss, packed_grads, packed_input_grad)
    assert calls, "few rows take the quantized kernel"

    # Forced (as for many rows): the dequantized product, same values and gradients.
    calls.clear()
    monkeypatch.setattr(qbase, "dequantize_first", lambda x: True)
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


def test_dequantize_first_counts_rows_per_device(monkeypatch):
    from mlxbert_lora._private import qbase

    rows = qbase.MIN_ROWS
    monkeypatch.setattr(mx, "default_device", lambda: mx.Device(mx.gpu))
    assert qbase.dequantize_first(mx.zeros((rows // 128, 128, 8)))
    assert not qbase.dequantize_first(mx.zeros((rows - 1, 8)))
    monkeypatch.setattr(mx, "default_device", lambda: mx.Device(mx.cpu))
    assert qbase.dequantize_first(mx.zeros((1, qbase.MIN_ROWS_CPU, 8)))
    assert not qbase.dequantize_first(mx.zeros((qbase.MIN_ROWS_CPU - 1, 8)))


def test_dequantized_product_keeps_no_float_weight_for_the_backward_pass():
    # Eight 4-bit layers of 1024 x 1024 (4 MiB each once dequantized to float32) and an input
    # of 16 rows: keeping each layer's float weight from the forward to the backward pass holds
    # all eight at once (about 40 MiB at the peak); dequantizing again in the backward pass
    # holds one or two, whatever the depth (about 17 MiB).
    from mlxbert_lora._private.qbase import QLoRABaseLinear

    mx.random.seed(0)
    layers = [
        QLoRABaseLinear.from_linear(nn.Linear(1024, 1024, bias=False), 64, 4) for _ in range(8)
    ]
    for layer in layers:
        layer.freeze()
    x = mx.random.normal((16, 1024))
    mx.eval(x, [layer.parameters() for layer in layers])

    def forward(v):
        for layer in layers:
            v = layer(v)
        return v.sum()

    dense_bytes = 1024 * 1024 * 4
    mx.synchronize()
    mx.clear_cache()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    grad = mx.grad(forward)(x)
    mx.eval(grad)
    assert mx.get_peak_memory() - base < 6 * dense_bytes
    assert grad.shape == x.shape and bool(mx.all(mx.isfinite(grad)))
