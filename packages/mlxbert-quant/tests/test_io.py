import json

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from mlxbert_quant import (
    FORMAT,
    MODES,
    QuantizationError,
    QuantizedLinear,
    apply_quantization_config,
    load_quantized,
    quantization_config,
    quantize,
    read_quantization_config,
    save_quantized,
)


def params(model):
    return {k: np.array(v) for k, v in tree_flatten(model.parameters())}


def test_round_trip_gives_identical_outputs_and_exact_block(make_model, ids, tmp_path):
    model = quantize(
        make_model(seed=0),
        bits=4,
        group_size=64,
        overrides={"layers.1.dense_out": {"bits": 8, "group_size": 32}},
    )
    expected = np.array(model(ids))
    hf_config = {"model_type": "tiny", "hidden_size": 64}
    save_quantized(model, tmp_path, config=hf_config)
    assert hf_config == {"model_type": "tiny", "hidden_size": 64}  # caller's dict not mutated

    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "tiny"
    assert config["quantization"] == {
        "format": FORMAT,
        "bits": 4,
        "group_size": 64,
        "mode": "affine",
        "layers": {
            "layers.0.dense_in": {"bits": 4, "group_size": 64, "mode": "affine"},
            "layers.0.dense_out": {"bits": 4, "group_size": 64, "mode": "affine"},
            "layers.1.dense_in": {"bits": 4, "group_size": 64, "mode": "affine"},
            "layers.1.dense_out": {"bits": 8, "group_size": 32, "mode": "affine"},
        },
        "skipped": ["embeddings", "classifier"],  # in model order
    }
    stored = mx.load(str(tmp_path / "model.safetensors"))
    assert stored["layers.0.dense_in.weight"].dtype == mx.uint32
    assert "layers.0.dense_in.scales" in stored and "layers.0.dense_in.biases" in stored

    skeleton = make_model(seed=123)  # different random float weights
    assert load_quantized(skeleton, tmp_path) is skeleton
    assert isinstance(skeleton.layers[1].dense_out, nn.QuantizedLinear)
    assert skeleton.layers[1].dense_out.bits == 8
    np.testing.assert_array_equal(np.array(skeleton(ids)), expected)
    loaded, original = params(skeleton), params(model)
    assert loaded.keys() == original.keys()
    for key in original:
        np.testing.assert_array_equal(loaded[key], original[key], err_msg=key)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_round_trip_every_mode_with_embeddings(make_model, ids, tmp_path, mode):
    group = 32 if mode == "affine" else None
    model = quantize(make_model(), mode=mode, group_size=group, quantize_embeddings=True)
    assert isinstance(model.embeddings, nn.QuantizedEmbedding)
    save_quantized(model, tmp_path)
    block = read_quantization_config(tmp_path)
    assert block["mode"] == mode and "embeddings" in block["layers"]
    skeleton = load_quantized(make_model(seed=7), tmp_path)
    np.testing.assert_array_equal(np.array(skeleton(ids)), np.array(model(ids)))


def test_save_merges_into_existing_config_json(make_model, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "quantization": 1}))
    save_quantized(quantize(make_model()), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "bert"
    assert config["quantization"]["format"] == FORMAT


def test_save_refuses_a_float_model(make_model, tmp_path):
    with pytest.raises(QuantizationError, match="call quantize"):
        save_quantized(make_model(), tmp_path)
    assert not (tmp_path / "model.safetensors").exists()


def test_load_lists_every_mismatch_and_leaves_model_untouched(make_model, tmp_path):
    save_quantized(quantize(make_model(), group_size=32), tmp_path)
    skeleton = make_model(dims=96, labels=5)  # another architecture
    before = params(skeleton)
    with pytest.raises(QuantizationError) as err:
        load_quantized(skeleton, tmp_path)
    message = str(err.value)
    assert "left unchanged" in message
    assert "shape mismatch: classifier.weight" in message
    assert "shape mismatch: layers.0.dense_in.weight" in message
    assert "shape mismatch: layers.1.dense_out.scales" in message
    assert "shape mismatch: embeddings.weight" in message
    assert type(skeleton.layers[0].dense_in) is nn.Linear
    after = params(skeleton)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


def test_load_reports_missing_and_unexpected_weights_and_layers(make_model, tmp_path):
    model = quantize(make_model())
    save_quantized(model, tmp_path)
    weights = dict(tree_flatten(model.parameters()))
    del weights["layers.0.dense_in.scales"]
    weights["extra.weight"] = mx.zeros((2, 2))
    mx.save_safetensors(str(tmp_path / "model.safetensors"), weights)
    config = json.loads((tmp_path / "config.json").read_text())
    config["quantization"]["layers"]["layers.5.dense_in"] = {
        "bits": 4,
        "group_size": 64,
        "mode": "affine",
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(QuantizationError) as err:
        load_quantized(make_model(), tmp_path)
    message = str(err.value)
    assert "missing weight: layers.0.dense_in.scales" in message
    assert "unexpected weight: extra.weight" in message
    assert "layers.5.dense_in: listed as quantized but the model has no such layer" in message


def test_load_needs_a_float_skeleton(make_model, tmp_path):
    save_quantized(quantize(make_model()), tmp_path)
    with pytest.raises(QuantizationError, match="expected a float Linear"):
        load_quantized(quantize(make_model()), tmp_path)


def test_read_quantization_config_checks_the_block(tmp_path):
    with pytest.raises(QuantizationError, match=r"No config.json"):
        read_quantization_config(tmp_path)
    with pytest.raises(QuantizationError, match="no 'quantization' block"):
        read_quantization_config({"model_type": "bert"})
    with pytest.raises(QuantizationError, match="is not 'mlxbert-quant/1'"):
        read_quantization_config({"quantization": {"format": "other", "layers": {"a": {}}}})
    with pytest.raises(QuantizationError, match="unknown mode 'int4'"):
        read_quantization_config(
            {
                "quantization": {
                    "format": FORMAT,
                    "layers": {"a": {"bits": 4, "group_size": 64, "mode": "int4"}},
                }
            }
        )


def test_quantization_config_reads_the_layers(make_model):
    model = quantize(make_model(), mode="nvfp4", skip="layers.1")
    block = quantization_config(model)
    assert (block["bits"], block["group_size"], block["mode"]) == (4, 16, "nvfp4")
    assert sorted(block["layers"]) == ["layers.0.dense_in", "layers.0.dense_out"]
    assert sorted(block["skipped"]) == [
        "classifier",
        "embeddings",
        "layers.1.dense_in",
        "layers.1.dense_out",
    ]


def test_apply_quantization_config_quantizes_a_skeleton_without_weights(make_model, tmp_path):
    # What mlxbert_core.from_pretrained does with a saved folder: quantize the float skeleton
    # as the block says, then load the weights itself.
    model = quantize(make_model(), bits=4, quantize_embeddings=True)
    save_quantized(model, tmp_path, config={"model_type": "tiny"})
    skeleton = apply_quantization_config(make_model(seed=1), tmp_path)
    assert quantization_config(skeleton) == quantization_config(model)
    assert all(
        type(m) is QuantizedLinear
        for _, m in skeleton.named_modules()
        if isinstance(m, nn.QuantizedLinear)
    )
    config = json.loads((tmp_path / "config.json").read_text())
    config["quantization"]["layers"]["no.such.layer"] = {
        "bits": 4,
        "group_size": 64,
        "mode": "affine",
    }
    untouched = make_model(seed=2)
    with pytest.raises(QuantizationError, match=r"no\.such\.layer"):
        apply_quantization_config(untouched, config)
    assert not any(isinstance(m, nn.QuantizedLinear) for _, m in untouched.named_modules())
