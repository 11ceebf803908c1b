"""M2-BERT on mlxbert-core's records: the Encoder protocol, the classifier layout, and the
published models as presets of mlxbert_core.MODELS (made from this package's one table)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil

import mlx.core as mx
import numpy as np
import pytest
from m2_helpers import POOLED_TOL, assert_close, config_dict, fixture_file, inputs, io_arrays
from mlx.utils import tree_flatten

import mlxbert_core
from mlxbert_core import Encoder, find_encoder
from mlxbert_core import registry as core_registry
from mlxbert_core.training import find_layers
from mlxbert_m2 import MODEL_PRESETS, PRESETS, M2BertModel, build_model, load_checkpoint_into
from mlxbert_m2.registry import ARCHITECTURE

MEMBERS = ("hidden_size", "max_positions", "layers", "config_dict", "name_or_path", "architecture")


def test_the_encoder_implements_the_protocol():
    config = config_dict("glue_tiny")
    model = build_model(config, "encoder")
    assert isinstance(model, Encoder)
    for name in (*MEMBERS, "__call__"):
        inspect.getattr_static(model, name)  # what isinstance uses from Python 3.12
    assert model.architecture == ARCHITECTURE.name == "m2_bert"
    assert model.hidden_size == config["hidden_size"]
    assert model.max_positions == model.config.max_length == config["long_conv_l_max"]
    assert model.layers is model.encoder.layer
    assert len(model.layers) == config["num_hidden_layers"]
    assert model.config_dict["monarch_mixer_sequence_mixing"] is True
    assert model.name_or_path == ""
    assert model.has_pooler
    model.remove_pooler()
    assert not model.has_pooler
    ids = mx.zeros((1, model.max_positions), dtype=mx.int32)
    assert model(ids).pooler_output is None


def test_classifier_holds_the_encoder_and_its_layers():
    model = build_model(config_dict("glue_tiny"), "sequence_classification", num_labels=2)
    assert not isinstance(model, Encoder)
    assert find_encoder(model) is model.bert
    assert find_layers(model) == list(model.bert.layers)


def test_classifier_layout_names_real_weights():
    layout = ARCHITECTURE.classifier
    assert layout.hf_class is None and layout.encoder_prefix == "bert." and layout.body == "pooler"
    model = build_model(config_dict("glue_tiny"), "sequence_classification", num_labels=2)
    params = dict(tree_flatten(model.parameters()))
    assert set(layout.checkpoint_keys().values()) <= set(params)
    assert all(k.startswith(layout.encoder_prefix) for k in params if "classifier" not in k)
    assert layout.pooling({"pool_all": False}) == "cls"
    assert layout.pooling({"pool_all": True}) == "mean"
    assert layout.dropout({"hidden_dropout_prob": 0.2}) == 0.2
    assert layout.dropout({"hidden_dropout_prob": 0.2, "classifier_dropout": 0.3}) == 0.3


EXPECTED_PRESETS = {
    "m2-bert-80m": ("danfu09/m2-bert-80M", 128),
    "m2-bert-110m": ("danfu09/m2-bert-110M", 128),
    "m2-bert-260m": ("danfu09/m2-bert-260m", 128),
    "m2-bert-341m": ("danfu09/m2-bert-341m", 128),
    "m2-bert-80m-2k-retrieval": ("togethercomputer/m2-bert-80M-2k-retrieval", 2048),
    "m2-bert-80m-8k-retrieval": ("togethercomputer/m2-bert-80M-8k-retrieval", 8192),
    "m2-bert-80m-32k-retrieval": ("togethercomputer/m2-bert-80M-32k-retrieval", 32768),
}


def test_presets_come_from_the_one_table_into_core():
    assert ARCHITECTURE.presets == MODEL_PRESETS
    assert {p.name for p in MODEL_PRESETS} == set(EXPECTED_PRESETS)
    for name, (hub_id, length) in EXPECTED_PRESETS.items():
        preset = mlxbert_core.MODELS[name]
        source = next(p for p in PRESETS.values() if p.name.lower() == name)
        assert preset.hub_id == hub_id == source.hub_id
        assert preset.architecture == "m2_bert"
        assert preset.max_length == length
        assert preset.learning_rate == 5e-5
        assert preset.settings["config"] == source.config
        assert preset.settings["tokenizer"] == "bert-base-uncased"
    assert mlxbert_core.get_preset("M2-BERT-80M") is mlxbert_core.MODELS["m2-bert-80m"]
    # The Composer repositories hold a .pt checkpoint and no config.json.
    assert mlxbert_core.MODELS["m2-bert-80m"].settings["files"] == ("*.pt",)


def test_core_resolves_m2_preset_names(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(FileNotFoundError, match=r"danfu09/m2-bert-80M.*HF_HUB_OFFLINE"):
        mlxbert_core.from_pretrained("m2-bert-80m")


@pytest.fixture
def composer_only(tmp_path, monkeypatch):
    """A preset whose folder holds only a Composer checkpoint, as the GLUE-size repositories
    do, with the reference config in the preset."""
    folder = tmp_path / "composer-only"
    folder.mkdir()
    shutil.copy(fixture_file("glue_tiny", "composer.pt"), folder / "composer.pt")
    base = MODEL_PRESETS[0]
    preset = dataclasses.replace(
        base,
        name="m2-bert-tiny-test",
        hub_id="example/m2-bert-tiny-test",
        local=lambda: str(folder),
        settings={**base.settings, "config": config_dict("glue_tiny")},
    )
    core_registry.available_architectures()
    arch = dataclasses.replace(ARCHITECTURE, presets=(*MODEL_PRESETS, preset))
    monkeypatch.setitem(core_registry._REGISTRY, arch.name, arch)
    return folder


def test_a_composer_folder_without_config_loads_through_its_preset(composer_only):
    from mlxbert_m2 import from_pretrained

    model = mlxbert_core.from_pretrained("m2-bert-tiny-test")
    assert isinstance(model, M2BertModel)
    assert model.name_or_path == str(composer_only)
    assert model.config_dict == config_dict("glue_tiny")
    reference = load_checkpoint_into(config_dict("glue_tiny"), composer_only / "composer.pt")
    io = io_arrays("glue_tiny")
    expected = reference(*inputs(io)).pooler_output
    assert_close(model(*inputs(io)).pooler_output, np.array(expected), POOLED_TOL, "pooled")
    # mlxbert-m2's own from_pretrained is the same path, with its inference of the task.
    classifier = from_pretrained("m2-bert-tiny-test")
    assert_close(
        classifier(*inputs(io)).logits,
        np.array(reference(*inputs(io)).logits),
        POOLED_TOL,
        "logits",
    )


def test_m2_from_pretrained_refuses_other_architectures(tmp_path):
    from mlxbert_core.models import bert
    from mlxbert_m2 import from_pretrained

    config = {"model_type": "bert", "vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": 16}  # fmt: skip
    model = bert.build(config, "encoder")
    mx.save_safetensors(str(tmp_path / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="not an M2-BERT checkpoint"):
        from_pretrained(tmp_path)
