"""Model presets: one table over every architecture, and what a preset's settings supply to
from_pretrained and load_tokenizer (a config for checkpoints shipped without one, a
tokenizer), by preset name or by the preset's hub id."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import pytest
from mlx.utils import tree_flatten

import mlxbert_core as mb
from mlxbert_core import registry
from mlxbert_core.outputs import EncoderOutput, SequenceClassifierOutput
from mlxbert_core.presets import ModelPreset, get_preset, preset_for_hub_id

CONFIG = {"model_type": "presettest", "vocab_size": 20, "hidden_size": 8}


class Tiny(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        self.embeddings = nn.Embedding(config["vocab_size"], config["hidden_size"])

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None):
        return EncoderOutput(last_hidden_state=self.embeddings(input_ids))


class TinyClassifier(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        self.encoder = Tiny(config)
        self.classifier = nn.Linear(config["hidden_size"], config["num_labels"])

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden = self.encoder(input_ids).last_hidden_state
        return SequenceClassifierOutput(logits=self.classifier(hidden[:, 0]))


def _build(config, task):
    return TinyClassifier(config) if task == "sequence_classification" else Tiny(config)


def _sanitize(weights, model):
    prefix = "encoder." if isinstance(model, TinyClassifier) else ""
    return {prefix + k: v for k, v in weights.items()}, []


@pytest.fixture
def checkpoint_only(tmp_path) -> Path:
    """A folder with weights and no config.json (like a Composer checkpoint's repository)."""
    folder = tmp_path / "weights-only"
    folder.mkdir()
    weights = dict(tree_flatten(Tiny(CONFIG).parameters()))
    mx.save_safetensors(str(folder / "model.safetensors"), weights)
    return folder


@pytest.fixture
def preset(monkeypatch, checkpoint_only, fixtures_dir) -> ModelPreset:
    preset = ModelPreset(
        "tiny-preset",
        "org/Tiny-Preset",
        "presettest",
        16,
        1e-4,
        "a checkpoint without config.json",
        local=lambda: str(checkpoint_only),
        settings={"config": CONFIG, "tokenizer": str(fixtures_dir / "bert")},
    )
    arch = registry.Architecture(
        name="presettest", build=_build, sanitize=_sanitize, presets=(preset,)
    )
    registry.available_architectures()  # the entry points first, so the patch is not undone
    monkeypatch.setitem(registry._REGISTRY, arch.name, arch)
    return preset


def test_every_architectures_presets_are_in_one_table(preset):
    assert mb.MODELS["tiny-preset"] is preset
    assert get_preset("Tiny-Preset") is preset
    assert {"bert-base-uncased", "modernbert-base", "neobert"} <= set(mb.MODELS)
    assert preset_for_hub_id("org/tiny-preset") is preset  # case-insensitive
    assert preset_for_hub_id("org/other") is None


def test_a_preset_supplies_the_missing_config_and_the_tokenizer(preset, checkpoint_only):
    model = mb.from_pretrained("tiny-preset")
    assert isinstance(model, Tiny)
    assert model.config_dict == CONFIG
    assert model.name_or_path == str(checkpoint_only)
    tokenizer = mb.load_tokenizer("tiny-preset")
    assert tokenizer.name_or_path == preset.settings["tokenizer"]
    # A folder without config.json and without a preset still says what is missing.
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        mb.from_pretrained(checkpoint_only)


def test_the_hub_id_of_a_preset_gets_its_settings(
    preset, checkpoint_only, tmp_path, monkeypatch, populate_hub_cache
):
    cache = tmp_path / "hub"
    populate_hub_cache(cache, preset.hub_id, checkpoint_only)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = mb.from_pretrained(preset.hub_id, cache_dir=cache)
    assert model.config_dict == CONFIG
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE is set"):
        mb.from_pretrained("org/not-cached", cache_dir=cache)


def test_task_none_lets_num_labels_or_the_loader_decide(preset):
    assert isinstance(mb.from_pretrained("tiny-preset", task=None), Tiny)
    classifier = mb.from_pretrained("tiny-preset", task=None, num_labels=3)
    assert isinstance(classifier, TinyClassifier)
    assert classifier.classifier.weight.shape == (3, CONFIG["hidden_size"])
    assert json.loads(json.dumps(classifier.config_dict))["num_labels"] == 3
