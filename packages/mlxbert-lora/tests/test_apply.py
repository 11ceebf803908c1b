import math

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from lora_helpers import adam_steps, max_diff
from mlx.utils import tree_flatten

from mlxbert_lora import (
    LoraConfig,
    LoRALinear,
    apply_lora,
    disable_lora,
    enable_lora,
    lora_disabled,
    lora_layers,
    merge_lora,
    trainable_parameters,
    unload_lora,
)

TARGETS = ["query", "value"]


def train(model, x, steps=5, lr=1e-2):
    """A few Adam steps on a fixed random target; returns the losses."""
    y = mx.array(np.random.default_rng(0).normal(size=(x.shape[0], 3)).astype(np.float32))
    return adam_steps(model, lambda m: mx.mean(mx.square(m(x) - y)), steps, lr)


@pytest.mark.parametrize("kwargs", [{}, {"use_rslora": True}, {"use_dora": True}])
def test_output_at_init_equals_base(make_model, inputs, kwargs):
    model = make_model()
    base = model(inputs)
    apply_lora(model, LoraConfig(r=4, alpha=8, target_modules=TARGETS, **kwargs))
    assert len(lora_layers(model)) == 4
    assert max_diff(model(inputs), base) < 1e-6


def test_init_like_peft(make_model):
    model = make_model()
    apply_lora(model, LoraConfig(r=8, target_modules=["dense"]))
    layer = dict(lora_layers(model))["encoder.layer.0.dense"]
    a = np.array(layer.lora_A.weight)
    assert a.shape == (8, 64) and layer.lora_B.weight.shape == (128, 8)
    assert np.abs(a).max() <= 1 / math.sqrt(64)  # kaiming_uniform(a=sqrt(5)) bound
    assert a.std() > 0.5 / math.sqrt(64) / math.sqrt(3)
    assert not np.array(layer.lora_B.weight).any()


def test_parameter_keys_map_to_peft_names(make_model):
    model = make_model()
    apply_lora(model, LoraConfig(target_modules=["query"], use_dora=True))
    keys = set(dict(tree_flatten(model.parameters())))
    prefix = "encoder.layer.0.attention.query."
    assert {
        prefix + "lora_A.weight",
        prefix + "lora_B.weight",
        prefix + "lora_magnitude_vector",
        prefix + "base_layer.weight",
        prefix + "base_layer.bias",
    } <= keys


def test_training_updates_only_adapters_and_merge_matches(make_model, weights, inputs):
    model = make_model()
    base_out = model(inputs)
    before = weights(model)
    apply_lora(
        model, LoraConfig(r=4, alpha=8, target_modules=TARGETS, modules_to_save=["classifier"])
    )
    losses = train(model, inputs)
    assert losses[-1] < losses[0]

    after = weights(model)
    for key, value in before.items():
        wrapped = key.replace(".query.", ".query.base_layer.").replace(
            ".value.", ".value.base_layer."
        )
        changed = max_diff(after.get(key, after.get(wrapped)), value) > 0
        assert changed is key.startswith("classifier."), key
    # B moved away from zero: the adapter really trained
    assert all(np.abs(np.array(layer.lora_B.weight)).max() > 0 for _, layer in lora_layers(model))

    unmerged = model(inputs)
    assert max_diff(unmerged, base_out) > 1e-3
    with lora_disabled(model):
        head_only = model(inputs)  # base encoder, trained classifier
    assert max_diff(head_only, unmerged) > 1e-4

    merge_lora(model)
    assert not lora_layers(model)
    assert all(type(m) is not LoRALinear for _, m in model.named_modules())
    assert max_diff(model(inputs), unmerged) < 1e-4
    assert set(weights(model)) == set(before)


@pytest.mark.parametrize("kwargs", [{"use_rslora": True}, {"use_dora": True}])
def test_merge_matches_unmerged_variants(make_model, inputs, kwargs):
    model = make_model()
    apply_lora(model, LoraConfig(r=4, alpha=8, target_modules=[*TARGETS, "dense"], **kwargs))
    train(model, inputs, steps=3)
    unmerged = model(inputs)
    merge_lora(model)
    assert max_diff(model(inputs), unmerged) < 1e-4


def test_trainable_parameter_count(make_model):
    model = make_model()
    total_before = sum(v.size for _, v in tree_flatten(model.parameters()))
    apply_lora(model, LoraConfig(r=4, target_modules=TARGETS, modules_to_save=["classifier"]))
    counts = trainable_parameters(model)
    lora = 2 * 2 * (4 * 64 + 64 * 4)  # 2 blocks x (query, value) x (A + B)
    classifier = 64 * 3 + 3
    assert counts["trainable"] == lora + classifier
    assert counts["total"] == total_before + lora
    assert counts["percent"] == pytest.approx(100 * (lora + classifier) / (total_before + lora))


def test_trainable_counts_dora_and_bias_modes(make_model):
    model = make_model()
    apply_lora(model, LoraConfig(r=2, target_modules=["query"], use_dora=True, bias="lora_only"))
    # A [2,64] + B [64,2] + magnitude [64] + the wrapped layer's bias [64], in 2 blocks
    assert trainable_parameters(model)["trainable"] == 2 * (128 + 128 + 64 + 64)

    model = make_model()
    n_biases = sum(v.size for k, v in tree_flatten(model.parameters()) if k.endswith("bias"))
    apply_lora(model, LoraConfig(r=2, target_modules=["query"], bias="all"))
    assert trainable_parameters(model)["trainable"] == 2 * 256 + n_biases


def test_rank_and_alpha_patterns_shape_the_layers(make_model):
    model = make_model()
    config = LoraConfig(
        r=4,
        alpha=8,
        target_modules=TARGETS,
        rank_pattern={"layer.1.attention.query": 8, "value": 2},
        alpha_pattern={"layer.1.attention.query": 32},
    )
    apply_lora(model, config)
    layers = dict(lora_layers(model))
    q1 = layers["encoder.layer.1.attention.query"]
    assert q1.lora_A.weight.shape == (8, 64) and q1.scale == 4.0
    assert layers["encoder.layer.0.attention.query"].scale == 2.0
    v0 = layers["encoder.layer.0.attention.value"]
    assert v0.lora_B.weight.shape == (64, 2) and v0.scale == 4.0


def test_regex_target_modules(make_model):
    model = make_model()
    apply_lora(model, LoraConfig(target_modules=r"encoder\.layer\.1\..*(query|dense)"))
    assert sorted(p for p, _ in lora_layers(model)) == [
        "encoder.layer.1.attention.query",
        "encoder.layer.1.dense",
    ]


def test_all_linear_skips_modules_to_save(make_model):
    model = make_model()
    apply_lora(model, LoraConfig(target_modules="all-linear", modules_to_save=["classifier"]))
    assert len(lora_layers(model)) == 2 * 5
    assert isinstance(model.classifier, nn.Linear)


def test_no_match_error_lists_candidates(make_model):
    model = make_model()
    with pytest.raises(ValueError, match=r"No Linear layer matches.*encoder\.layer\.0\.attention"):
        apply_lora(model, LoraConfig(target_modules=["q_proj"]))


def test_modules_to_save_typo_warns(make_model):
    with pytest.warns(UserWarning, match="matches no module"):
        apply_lora(make_model(), LoraConfig(target_modules=TARGETS, modules_to_save=["clasifier"]))


def test_applying_twice_is_refused(make_model):
    model = make_model()
    apply_lora(model, LoraConfig(target_modules=TARGETS))
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(model, LoraConfig(target_modules=TARGETS))


def test_disable_enable_and_unload(make_model, inputs):
    model = make_model()
    base = model(inputs)
    apply_lora(model, LoraConfig(target_modules=TARGETS))
    for _, layer in lora_layers(model):
        layer.lora_B.weight = mx.ones_like(layer.lora_B.weight) * 0.1
    adapted = model(inputs)
    assert max_diff(adapted, base) > 1e-3
    disable_lora(model)
    assert max_diff(model(inputs), base) == 0
    enable_lora(model)
    assert max_diff(model(inputs), adapted) == 0
    with lora_disabled(model):
        assert max_diff(model(inputs), base) == 0
    assert max_diff(model(inputs), adapted) == 0
    unload_lora(model)
    assert not lora_layers(model)
    assert max_diff(model(inputs), base) == 0
    with pytest.raises(ValueError, match="no LoRA adapters"):
        disable_lora(model)


def test_dropout_only_on_adapter_path(make_model, inputs):
    model = make_model()
    base = model(inputs)
    apply_lora(model, LoraConfig(target_modules=TARGETS, dropout=0.5))
    model.train()
    # B = 0: whatever dropout does to the adapter input, the base path is untouched
    assert max_diff(model(inputs), base) < 1e-6
    for _, layer in lora_layers(model):
        layer.lora_B.weight = mx.ones_like(layer.lora_B.weight) * 0.1
    mx.random.seed(1)
    first = model(inputs)
    mx.random.seed(2)
    assert max_diff(model(inputs), first) > 0  # dropout is live in training
    model.eval()
    assert max_diff(model(inputs), model(inputs)) == 0


def test_compiled_training_step_matches_eager(make_model, inputs):
    results = []
    for compiled in (False, True):
        model = make_model()
        apply_lora(model, LoraConfig(r=4, target_modules=TARGETS, use_dora=True))
        opt = optim.SGD(learning_rate=0.1)
        loss_and_grad = nn.value_and_grad(
            model, lambda m: mx.mean(mx.square(m(inputs) - mx.ones((inputs.shape[0], 3))))
        )

        def step(loss_and_grad=loss_and_grad, model=model, opt=opt):
            loss, grads = loss_and_grad(model)
            opt.update(model, grads)
            return loss

        if compiled:
            step = mx.compile(
                step, inputs=[model.state, opt.state], outputs=[model.state, opt.state]
            )
        for _ in range(3):
            step()
            mx.eval(model.state, opt.state)
        results.append(model(inputs))
    assert max_diff(results[0], results[1]) < 1e-5
