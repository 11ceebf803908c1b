import json

import pytest

from mlxbert_lora import LoraConfig, apply_lora, lora_layers
from mlxbert_lora._private.config import name_matches, pattern_key

NAME = "bert.encoder.layer.1.attention.self.query"


@pytest.mark.parametrize(
    ("key", "matches"),
    [
        ("query", True),  # bare module name
        ("self.query", True),  # a longer suffix
        ("layer.1.attention.self.query", True),  # the fixture's form
        (NAME, True),  # the whole name
        ("uery", False),  # suffix must start at a dot boundary
        ("layer.1", False),  # must run to the end of the name
        ("layer.1.attention.self", False),
        ("layer\\.1\\..*query", True),  # keys are regexes
        ("layer.11.attention.self.query", False),
        ("layer.1.attention.self.quer.", True),  # dots are wildcards, as in PEFT
        ("encoder.layer.[0-9].attention.self.query", True),
    ],
)
def test_pattern_key_follows_peft_rule(key, matches):
    assert (pattern_key([key], NAME) == key) is matches


def test_pattern_first_key_in_dict_order_wins():
    config = LoraConfig(r=4, rank_pattern={"query": 2, "layer.1.attention.self.query": 16})
    assert config.rank_for(NAME) == 2
    config = LoraConfig(r=4, rank_pattern={"layer.1.attention.self.query": 16, "query": 2})
    assert config.rank_for(NAME) == 16
    assert config.rank_for("bert.encoder.layer.0.attention.self.query") == 2
    assert config.rank_for("bert.encoder.layer.0.attention.self.value") == 4


def test_layer_1_pattern_does_not_hit_layer_11():
    config = LoraConfig(r=4, rank_pattern={"layer.1.attention.self.query": 8})
    assert config.rank_for("encoder.layer.11.attention.self.query") == 4
    assert config.rank_for("encoder.layer.1.attention.self.query") == 8


def test_scaling_lora_and_rslora():
    assert LoraConfig(r=4, alpha=8).scaling_for(NAME) == 2.0
    assert LoraConfig(r=4, alpha=8, use_rslora=True).scaling_for(NAME) == 4.0
    config = LoraConfig(r=4, alpha=8, rank_pattern={"query": 8}, alpha_pattern={"query": 32})
    assert config.scaling_for(NAME) == 4.0
    assert config.scaling_for("bert.encoder.layer.1.attention.self.value") == 2.0


def test_target_modules_list_is_suffix_match_and_string_is_fullmatch():
    assert name_matches(NAME, ["query"])
    assert name_matches(NAME, ["self.query"])
    assert not name_matches(NAME, ["uery"])
    assert name_matches("query", ["query"])
    assert name_matches(NAME, r".*layer\.1\..*query")
    assert not name_matches(NAME, r"layer\.1\..*query")  # regex must match the whole path
    assert not name_matches("layers.0.mlp.Wo", ["attn.Wo"])
    assert name_matches("layers.0.attn.Wo", ["attn.Wo"])


def test_exclude_modules():
    config = LoraConfig(target_modules=["query"], exclude_modules=["layer.1.attention.self.query"])
    assert config.is_target("bert.encoder.layer.0.attention.self.query")
    assert not config.is_target(NAME)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"r": 0}, "positive integer"),
        ({"dropout": 1.0}, "dropout"),
        ({"bias": "some"}, "bias"),
        ({"rank_pattern": {"query": 0}}, "rank_pattern"),
        ({"quantize_bits": 7}, "quantize_bits"),
    ],
)
def test_bad_config_values_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LoraConfig(**kwargs)


def test_presets_ranks_and_targets(make_model):
    assert [LoraConfig.preset(p).r for p in ("efficient", "balanced", "expressive", "qlora")] == [
        4,
        8,
        16,
        8,
    ]
    assert LoraConfig.preset("qlora").quantize_bits == 4
    assert LoraConfig.preset("balanced").quantize_bits is None
    assert "attn.Wqkv" in LoraConfig.preset("efficient").target_modules
    assert "qkv" in LoraConfig.preset("efficient").target_modules
    assert {"attn.Wo", "wo", "attention.output.dense"} <= set(
        LoraConfig.preset("balanced").target_modules
    )
    assert {"mlp.Wi", "ffn.w12", "intermediate.dense"} <= set(
        LoraConfig.preset("expressive").target_modules
    )
    assert LoraConfig.preset("balanced", r=32).r == 32
    with pytest.raises(ValueError, match="Unknown LoRA preset"):
        LoraConfig.preset("huge")


def test_preset_with_model_keeps_present_targets(make_model):
    model = make_model()
    config = LoraConfig.preset("balanced", model=model)
    assert config.target_modules == ["query", "key", "value"]
    apply_lora(model, config)
    assert len(lora_layers(model)) == 6


def test_preset_with_model_without_matches_lists_linears():
    import mlx.nn as nn

    model = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(ValueError, match=r"layers\.0"):
        LoraConfig.preset("efficient", model=model)


def test_peft_dict_round_trip():
    config = LoraConfig(
        r=4,
        alpha=8,
        target_modules=["value", "query"],
        rank_pattern={"layer.1.attention.self.query": 8},
        alpha_pattern={"layer.1.attention.self.query": 32},
        use_dora=True,
        modules_to_save=["classifier"],
        task_type="SEQ_CLS",
    )
    data = json.loads(json.dumps(config.to_peft_dict()))
    assert data["peft_type"] == "LORA"
    assert data["lora_alpha"] == 8 and data["r"] == 4
    assert data["fan_in_fan_out"] is False and data["inference_mode"] is True
    assert data["target_modules"] == ["query", "value"]
    back = LoraConfig.from_peft_dict(data)
    assert back.rank_pattern == config.rank_pattern
    assert back.alpha_pattern == config.alpha_pattern
    assert back.use_dora and back.modules_to_save == ["classifier", "score"]
    assert back.scaling_for(NAME) == config.scaling_for(NAME) == 4.0


def test_from_peft_dict_refuses_other_methods_and_unsupported_options():
    with pytest.raises(ValueError, match="peft_type"):
        LoraConfig.from_peft_dict({"peft_type": "IA3"})
    with pytest.raises(ValueError, match="layers_to_transform"):
        LoraConfig.from_peft_dict({"peft_type": "LORA", "layers_to_transform": [0]})


def test_seq_cls_task_saves_the_head_like_peft():
    assert LoraConfig(task_type="SEQ_CLS").modules_to_save == ["classifier", "score"]
    assert LoraConfig(task_type="SEQ_CLS", modules_to_save=["pooler"]).modules_to_save == [
        "pooler",
        "classifier",
        "score",
    ]
    assert LoraConfig(task_type="FEATURE_EXTRACTION").modules_to_save is None
