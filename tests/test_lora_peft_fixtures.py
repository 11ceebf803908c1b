"""PEFT adapters written by `PeftModel.save_pretrained` (peft 0.21.2) load onto mlxbert-core's
BertForSequenceClassification with mlxbert-lora and reproduce PEFT's outputs (fixtures in
tests/fixtures/peft, described in its README)."""

import mlxbert_core  # before mlx: it sets up the fast BLAS on Linux

# isort: split
import json
import warnings
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlxbert_lora import (
    LoraConfig,
    load_peft_adapter,
    lora_disabled,
    lora_layers,
    merge_lora,
    save_peft_adapter,
)

FIXTURES = Path(__file__).parent / "fixtures" / "peft"
ADAPTERS = ["lora", "rslora", "dora", "pattern"]
ATOL = 1e-4


@pytest.fixture(scope="module")
def io():
    return dict(np.load(FIXTURES / "io.npz"))


@pytest.fixture(scope="module")
def meta():
    return json.loads((FIXTURES / "meta.json").read_text())


def base_model():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # BLAS notice on some CPUs
        return mlxbert_core.from_pretrained(FIXTURES / "base", task="sequence_classification")


def run(model, io):
    args = (
        mx.array(io["input_ids"]),
        mx.array(io["attention_mask"]),
        mx.array(io["token_type_ids"]),
    )
    logits = model(*args).logits
    hidden = model.bert(*args).last_hidden_state
    return np.array(logits), np.array(hidden)


def real(hidden, io):
    return hidden[io["attention_mask"].astype(bool)]


def test_base_model_matches_base_logits(io):
    logits, hidden = run(base_model(), io)
    np.testing.assert_allclose(logits, io["base_logits"], atol=ATOL)
    np.testing.assert_allclose(real(hidden, io), real(io["base_last_hidden_state"], io), atol=ATOL)


@pytest.mark.parametrize("name", ADAPTERS)
def test_adapter_reproduces_peft_outputs(io, meta, name):
    model = load_peft_adapter(base_model(), FIXTURES / name)
    layers = dict(lora_layers(model))
    info = meta["adapters"][name]
    prefix = "base_model.model."
    assert {prefix + p for p in layers} == set(info["scaling_per_module"])
    for path, layer in layers.items():
        assert layer.scale == pytest.approx(info["scaling_per_module"][prefix + path])
        assert layer.r == info["rank_per_module"][prefix + path]
        assert layer.use_dora is (name == "dora")

    logits, hidden = run(model, io)
    np.testing.assert_allclose(logits, io[f"{name}_logits"], atol=ATOL)
    np.testing.assert_allclose(
        real(hidden, io), real(io[f"{name}_last_hidden_state"], io), atol=ATOL
    )
    # The adapter really changes the backbone: switched off, the base encoder comes back.
    with lora_disabled(model):
        _, base_hidden = run(model, io)
    np.testing.assert_allclose(
        real(base_hidden, io), real(io["base_last_hidden_state"], io), atol=ATOL
    )
    assert np.abs(hidden - base_hidden).max() > 1e-2


@pytest.mark.parametrize("name", ADAPTERS)
def test_merged_model_matches_peft_merge_and_unload(io, name):
    model = merge_lora(load_peft_adapter(base_model(), FIXTURES / name))
    assert not lora_layers(model)
    logits, _ = run(model, io)
    np.testing.assert_allclose(logits, io[f"{name}_merged_logits"], atol=ATOL)

    merged = mx.load(str(FIXTURES / name / "merged.safetensors"))
    ours = dict(tree_flatten(model.parameters()))
    assert len(merged) == 8  # six query/value weights + the adapter's classifier
    for key, value in merged.items():
        np.testing.assert_allclose(np.array(ours[key]), np.array(value), atol=ATOL, err_msg=key)


@pytest.mark.parametrize("name", ADAPTERS)
def test_saving_a_loaded_adapter_gives_the_original_tensors(tmp_path, name):
    model = load_peft_adapter(base_model(), FIXTURES / name)
    save_peft_adapter(model, tmp_path)
    original = mx.load(str(FIXTURES / name / "adapter_model.safetensors"))
    saved = mx.load(str(tmp_path / "adapter_model.safetensors"))
    assert saved.keys() == original.keys()
    for key in original:
        assert mx.array_equal(saved[key], original[key]), key

    ours = LoraConfig.from_peft_dict(json.loads((tmp_path / "adapter_config.json").read_text()))
    theirs = LoraConfig.from_peft_dict(
        json.loads((FIXTURES / name / "adapter_config.json").read_text())
    )
    for field in ("r", "alpha", "rank_pattern", "alpha_pattern", "use_rslora", "use_dora", "bias"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert set(ours.target_modules) == set(theirs.target_modules)
    assert ours.modules_to_save == theirs.modules_to_save
    assert ours.task_type == "SEQ_CLS"


def test_adapter_for_a_bare_encoder_maps_by_suffix(io, tmp_path):
    """An adapter saved from the classifier loads onto the bare encoder (paths without "bert.")."""
    encoder = base_model().bert
    with pytest.raises(ValueError, match=r"parameter 'weight' of 'classifier': no matching module"):
        load_peft_adapter(encoder, FIXTURES / "lora")
    assert not lora_layers(encoder)  # a failed load leaves the model untouched
    with pytest.warns(UserWarning, match=r"Skipped 2 adapter entries.*classifier"):
        load_peft_adapter(encoder, FIXTURES / "lora", strict=False)
    assert len(lora_layers(encoder)) == 6
    args = (
        mx.array(io["input_ids"]),
        mx.array(io["attention_mask"]),
        mx.array(io["token_type_ids"]),
    )
    hidden = np.array(encoder(*args).last_hidden_state)
    np.testing.assert_allclose(real(hidden, io), real(io["lora_last_hidden_state"], io), atol=ATOL)


def test_adapted_bert_trains_with_gradient_checkpointing_and_compile(io):
    """Adapters inside mlxbert-core's BERT: checkpointed and compiled gradients equal eager ones."""
    import mlx.nn as nn

    from mlxbert_core.training import enable_gradient_checkpointing

    args = (
        mx.array(io["input_ids"]),
        mx.array(io["attention_mask"]),
        mx.array(io["token_type_ids"]),
    )
    weights = mx.array(np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32))

    def grads_of(model, compiled=False):
        fn = nn.value_and_grad(model, lambda: mx.sum(model(*args).logits * weights))
        if compiled:
            fn = mx.compile(fn, inputs=model.state)
        _, grads = fn()
        return dict(tree_flatten(grads))

    eager = grads_of(load_peft_adapter(base_model(), FIXTURES / "dora"))
    checkpointed_model = load_peft_adapter(base_model(), FIXTURES / "dora")
    enable_gradient_checkpointing(checkpointed_model)
    checkpointed = grads_of(checkpointed_model)
    compiled = grads_of(load_peft_adapter(base_model(), FIXTURES / "dora"), compiled=True)
    assert any(k.endswith("lora_magnitude_vector") for k in eager)
    assert all("lora_" in k or k.startswith("classifier.") for k in eager)
    for other in (checkpointed, compiled):
        assert other.keys() == eager.keys()
        for key in eager:
            np.testing.assert_allclose(
                np.array(other[key]), np.array(eager[key]), atol=1e-5, err_msg=key
            )
