"""PEFT folder format: key names, config fields, round trips and load errors."""

import json
import struct

import mlx.core as mx
import numpy as np
import pytest

from mlxbert_lora import (
    LoraConfig,
    apply_lora,
    load_peft_adapter,
    lora_layers,
    save_peft_adapter,
)

CONFIG = LoraConfig(r=4, alpha=8, target_modules=["query", "value"], modules_to_save=["classifier"])


def safetensors_header(path):
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(size))


def randomize_adapters(model, seed=0):
    """Non-zero B (and perturbed DoRA magnitudes / classifier) so that adapters change outputs."""
    rng = np.random.default_rng(seed)
    for _, layer in lora_layers(model):
        layer.lora_B.weight = mx.array(0.2 * rng.normal(size=layer.lora_B.weight.shape), mx.float32)
        if layer.use_dora:
            m = layer.lora_magnitude_vector
            layer.lora_magnitude_vector = m * mx.array(
                1 + 0.1 * rng.normal(size=m.shape), mx.float32
            )
    model.classifier.weight = model.classifier.weight + 0.1
    mx.eval(model.parameters())
    return model


def test_save_writes_peft_keys_config_and_metadata(make_model, tmp_path):
    model = randomize_adapters(apply_lora(make_model(), CONFIG.replace(use_dora=True)))
    save_peft_adapter(model, tmp_path, base_model_name_or_path="tiny", task_type="SEQ_CLS")
    header = safetensors_header(tmp_path / "adapter_model.safetensors")
    assert header.pop("__metadata__") == {"format": "pt"}
    expected = {
        "base_model.model.classifier.weight": [3, 64],
        "base_model.model.classifier.bias": [3],
    }
    for i in range(2):
        for name in ("query", "value"):
            stem = f"base_model.model.encoder.layer.{i}.attention.{name}"
            expected[f"{stem}.lora_A.weight"] = [4, 64]
            expected[f"{stem}.lora_B.weight"] = [64, 4]
            expected[f"{stem}.lora_magnitude_vector"] = [64]
    assert {k: v["shape"] for k, v in header.items()} == expected
    assert all(v["dtype"] == "F32" for v in header.values())

    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["task_type"] == "SEQ_CLS"
    assert config["r"] == 4 and config["lora_alpha"] == 8 and config["use_dora"] is True
    assert config["base_model_name_or_path"] == "tiny"
    assert config["modules_to_save"] == ["classifier", "score"]  # PEFT's SEQ_CLS rule
    assert config["target_modules"] == ["query", "value"]


@pytest.mark.parametrize(
    "config",
    [
        CONFIG,
        CONFIG.replace(use_rslora=True),
        CONFIG.replace(use_dora=True),
        CONFIG.replace(rank_pattern={"layer.1.attention.query": 8}, alpha_pattern={"value": 2}),
        CONFIG.replace(bias="all"),
    ],
    ids=["lora", "rslora", "dora", "pattern", "bias-all"],
)
def test_save_load_round_trip_gives_identical_outputs(make_model, inputs, tmp_path, config):
    model = randomize_adapters(apply_lora(make_model(), config))
    if config.bias == "all":
        model.encoder.layer[0].norm.bias = model.encoder.layer[0].norm.bias + 0.5
    want = model(inputs)
    save_peft_adapter(model, tmp_path)

    fresh = load_peft_adapter(make_model(), tmp_path)
    assert mx.array_equal(fresh(inputs), want)
    layers = dict(lora_layers(fresh))
    for path, layer in lora_layers(model):
        assert layers[path].r == layer.r and layers[path].scale == layer.scale
    # Saving the loaded adapter again gives the same tensors.
    save_peft_adapter(fresh, tmp_path / "again")
    first = mx.load(str(tmp_path / "adapter_model.safetensors"))
    second = mx.load(str(tmp_path / "again" / "adapter_model.safetensors"))
    assert first.keys() == second.keys()
    assert all(mx.array_equal(first[k], second[k]) for k in first)


def test_load_into_model_that_already_has_the_adapter(make_model, inputs, tmp_path):
    model = randomize_adapters(apply_lora(make_model(), CONFIG))
    save_peft_adapter(model, tmp_path)
    target = apply_lora(make_model(), CONFIG)
    load_peft_adapter(target, tmp_path)
    assert mx.array_equal(target(inputs), model(inputs))

    other = apply_lora(make_model(), CONFIG.replace(alpha=16))
    with pytest.raises(ValueError, match="alpha=16"):
        load_peft_adapter(other, tmp_path)


def test_load_maps_prefixed_paths_and_saves_them_back(make_model, inputs, tmp_path):
    model = randomize_adapters(apply_lora(make_model(), CONFIG))
    # As written for a Hugging Face model whose encoder sits under "bert.".
    save_peft_adapter(model, tmp_path, key_prefix="base_model.model.bert.")
    keys = mx.load(str(tmp_path / "adapter_model.safetensors")).keys()
    assert "base_model.model.bert.encoder.layer.0.attention.query.lora_A.weight" in keys

    fresh = load_peft_adapter(make_model(), tmp_path)  # unambiguous suffix matching
    assert mx.array_equal(fresh(inputs), model(inputs))
    save_peft_adapter(fresh, tmp_path / "again")
    assert mx.load(str(tmp_path / "again" / "adapter_model.safetensors")).keys() == keys

    mapped = load_peft_adapter(make_model(), tmp_path, path_map={"bert": ""})
    assert mx.array_equal(mapped(inputs), model(inputs))


def write_adapter(directory, tensors, **config):
    directory.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(directory / "adapter_model.safetensors"), tensors, {"format": "pt"})
    data = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["query"], **config}
    (directory / "adapter_config.json").write_text(json.dumps(data))


def test_load_lists_every_problem_at_once(make_model, tmp_path):
    p = "base_model.model.encoder.layer"
    tensors = {
        f"{p}.0.attention.query.lora_A.weight": mx.zeros((4, 32)),  # wrong in-dim
        f"{p}.0.attention.query.lora_B.weight": mx.zeros((64, 4)),
        f"{p}.1.attention.query.lora_A.weight": mx.zeros((4, 64)),
        f"{p}.1.attention.query.lora_B.weight": mx.zeros((60, 4)),  # wrong out-dim
        f"{p}.7.attention.query.lora_A.weight": mx.zeros((4, 64)),  # no such layer
        f"{p}.7.attention.query.lora_B.weight": mx.zeros((64, 4)),
        f"{p}.0.attention.value.lora_A.weight": mx.zeros((4, 64)),  # B missing
        "base_model.model.classifier.weight": mx.zeros((5, 64)),  # wrong head size
    }
    write_adapter(tmp_path, tensors)
    with pytest.raises(ValueError) as info:
        load_peft_adapter(make_model(), tmp_path)
    message = str(info.value)
    assert "layer.0.attention.query.lora_A: shape (4, 32)" in message
    assert "layer.1.attention.query.lora_B: shape (60, 4)" in message
    assert "layer.7.attention.query" in message and "no matching module" in message
    assert "layer.0.attention.value: the file has no lora_B" in message
    assert "classifier.weight: shape (5, 64), model has (3, 64)" in message
    assert "(5 problems)" in message


def test_load_reports_ambiguous_paths(make_model, tmp_path):
    tensors = {
        "base_model.model.attention.query.lora_A.weight": mx.zeros((4, 64)),
        "base_model.model.attention.query.lora_B.weight": mx.zeros((64, 4)),
    }
    write_adapter(tmp_path, tensors)
    with pytest.raises(ValueError, match="ambiguous"):
        load_peft_adapter(make_model(), tmp_path)
    load_peft_adapter(make_model(), tmp_path, path_map={"attention": "encoder.layer.1.attention"})


def test_load_missing_files_and_wrong_method(make_model, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"adapter_config\.json"):
        load_peft_adapter(make_model(), tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (tmp_path / "adapter_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="needs torch"):
        load_peft_adapter(make_model(), tmp_path)
    write_adapter(tmp_path, {"x": mx.zeros((1,))}, peft_type="PREFIX_TUNING")
    with pytest.raises(ValueError, match="Not a LoRA adapter"):
        load_peft_adapter(make_model(), tmp_path)


def test_save_without_adapters_is_refused(make_model, tmp_path):
    with pytest.raises(ValueError, match="no LoRA adapters"):
        save_peft_adapter(make_model(), tmp_path)


def test_non_strict_load_with_nothing_matching_is_refused(make_model, tmp_path):
    tensors = {
        "base_model.model.decoder.q_proj.lora_A.weight": mx.zeros((4, 64)),
        "base_model.model.decoder.q_proj.lora_B.weight": mx.zeros((64, 4)),
    }
    write_adapter(tmp_path, tensors)
    model = make_model()
    with pytest.raises(ValueError, match="none of the file's 1 adapted modules"):
        load_peft_adapter(model, tmp_path, strict=False)
    assert not lora_layers(model)
