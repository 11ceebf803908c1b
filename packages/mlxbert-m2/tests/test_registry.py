"""Published-model registry, the core entry point and from_pretrained resolution."""

from __future__ import annotations

import shutil

import pytest
from m2_helpers import FIXTURES, POOLED_TOL, assert_close, inputs, io_arrays
from mlx.utils import tree_flatten

import mlxbert_core
from mlxbert_m2 import PRESETS, M2BertModel, build_model, from_pretrained
from mlxbert_m2.registry import ARCHITECTURE


def _encoder_params(preset) -> float:
    model = build_model(preset.config, "encoder", add_pooling_layer=False)
    buffers = ("position_ids", ".t", "deltas")
    return sum(v.size for k, v in tree_flatten(model.parameters()) if not k.endswith(buffers))


@pytest.mark.parametrize(
    ("name", "millions"),
    [("m2-bert-80M", 79.7), ("m2-bert-110M", 114.6), ("m2-bert-80M-8k-retrieval", 86.8)],
)
def test_preset_sizes_match_published_counts(name, millions):
    assert round(_encoder_params(PRESETS[name]) / 1e6, 1) == millions


def test_every_preset_has_a_hub_id_and_valid_config():
    for preset in PRESETS.values():
        assert preset.hub_id.count("/") == 1
        config = preset.m2_config()
        assert config.num_hidden_layers == 12 and config.monarch_mlp_nblocks == 4
        assert config.long_conv_l_max == config.max_position_embeddings
    assert PRESETS["m2-bert-80M-32k-retrieval"].m2_config().long_conv_l_max == 32768


def test_entry_point_claims_m2_configs_only():
    assert ARCHITECTURE.claims({"model_type": "bert", "monarch_mixer_sequence_mixing": True})
    assert not ARCHITECTURE.claims({"model_type": "bert"})
    archs = mlxbert_core.registry.available_architectures()
    assert archs.get("m2_bert") is not None, "mlxbert-m2's entry point is not installed"


def test_core_from_pretrained_loads_m2_folder(tmp_path):
    folder = tmp_path / "m2"
    folder.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(FIXTURES / "switches_tiny" / f, folder / f)
    model = mlxbert_core.from_pretrained(folder)
    assert isinstance(model, M2BertModel)
    io = io_arrays("switches_tiny")
    out = model(*inputs(io))
    assert_close(out.pooler_output, io["pooled_output"], POOLED_TOL, "pooled via core")
    clf = mlxbert_core.from_pretrained(folder, task="sequence_classification", num_labels=1)
    assert_close(clf(*inputs(io)).logits, io["logits"], POOLED_TOL, "logits via core")


def test_from_pretrained_folder_with_explicit_checkpoint():
    model = from_pretrained(FIXTURES / "switches_tiny", checkpoint="model.safetensors")
    io = io_arrays("switches_tiny")
    assert_close(model(*inputs(io)).logits, io["logits"], POOLED_TOL, "logits")


def test_from_pretrained_rejects_unknown_names(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="registry name"):
        from_pretrained("not-a-model")
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE"):
        from_pretrained("nobody/not-a-cached-m2-model")
