"""from_pretrained: generic path with a tiny registered architecture, strictness, errors,
dtype, quantized folders, fresh heads, the hub cache, and the built-in architectures."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

import mlxbert_core as mb
import mlxbert_quant
from mlxbert_core.loading import WeightMismatchError
from mlxbert_core.outputs import EncoderOutput, SequenceClassifierOutput
from mlxbert_core.registry import Architecture, register_architecture

HIDDEN, VOCAB = 64, 50


class TinyEncoder(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        self.embeddings = nn.Embedding(config["vocab_size"], config["hidden_size"])
        self.proj = nn.Linear(config["hidden_size"], config["hidden_size"])

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None):
        return EncoderOutput(last_hidden_state=self.proj(self.embeddings(input_ids)))


class TinyClassifier(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        self.encoder = TinyEncoder(config)
        self.classifier = nn.Linear(config["hidden_size"], config.get("num_labels", 2))

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden = self.encoder(input_ids).last_hidden_state
        return SequenceClassifierOutput(logits=self.classifier(hidden[:, 0]))


def _build(config, task):
    if task == "sequence_classification":
        return TinyClassifier(config)
    return TinyEncoder(config)


def _sanitize(weights, model):
    notes, out = [], {}
    for key, value in weights.items():
        if key.startswith("lm_head."):
            notes.append(f"ignored task-head weight {key}")
            continue
        if isinstance(model, TinyClassifier) and not key.startswith("classifier."):
            key = "encoder." + key
        out[key] = value
    return out, notes


TINY = register_architecture(
    Architecture(name="tinytest", build=_build, sanitize=_sanitize), overwrite=True
)


def _config(**extra) -> dict:
    return {"model_type": "tinytest", "vocab_size": VOCAB, "hidden_size": HIDDEN, **extra}


def _save_tiny(folder: Path, *, extra_weights=None, drop=(), config=None) -> dict[str, mx.array]:
    folder.mkdir(parents=True, exist_ok=True)
    model = TinyEncoder(_config())
    weights = dict(tree_flatten(model.parameters()))
    weights.update(extra_weights or {})
    for key in drop:
        weights.pop(key)
    mx.save_safetensors(str(folder / "model.safetensors"), weights)
    (folder / "config.json").write_text(json.dumps(config or _config()))
    return weights


IDS = mx.array([[1, 2, 3, 4], [5, 6, 0, 0]])


def test_generic_load_is_exact_and_sets_attributes(tmp_path):
    weights = _save_tiny(tmp_path / "m", extra_weights={"lm_head.weight": mx.zeros((3, 3))})
    model = mb.from_pretrained(tmp_path / "m")
    assert isinstance(model, TinyEncoder) and not model.training
    for key, value in tree_flatten(model.parameters()):
        np.testing.assert_array_equal(np.array(value), np.array(weights[key]))
    assert model.name_or_path == str(tmp_path / "m")
    assert model.config["model_type"] == "tinytest"  # the model keeps no config of its own
    assert model.config_dict["hidden_size"] == HIDDEN
    assert any("lm_head.weight" in note for note in model.load_notes)


def test_strict_check_lists_every_problem_at_once(tmp_path):
    _save_tiny(
        tmp_path / "m",
        drop=("proj.bias",),
        extra_weights={
            "stray.weight": mx.zeros((2,)),
            "embeddings.weight": mx.zeros((VOCAB + 1, HIDDEN)),
        },
    )
    with pytest.raises(WeightMismatchError) as info:
        mb.from_pretrained(tmp_path / "m")
    message = str(info.value)
    assert "missing (1): proj.bias" in message
    assert "unexpected (1): stray.weight" in message
    assert (
        f"embeddings.weight: checkpoint ({VOCAB + 1}, {HIDDEN}), model ({VOCAB}, {HIDDEN})"
        in message
    )


def test_dtype_argument(tmp_path):
    _save_tiny(tmp_path / "m")
    for dtype, expected in (
        ("bfloat16", mx.bfloat16),
        (mx.float16, mx.float16),
        (None, mx.float32),
    ):
        model = mb.from_pretrained(tmp_path / "m", dtype=dtype)
        assert {v.dtype for _, v in tree_flatten(model.parameters())} == {expected}
    with pytest.raises(ValueError, match="unknown dtype"):
        mb.from_pretrained(tmp_path / "m", dtype="int7")


def test_bin_checkpoint_through_from_pretrained(tmp_path, cache_env, write_torch_zip):
    folder = tmp_path / "m"
    folder.mkdir()
    source = {k: np.array(v) for k, v in tree_flatten(TinyEncoder(_config()).parameters())}
    write_torch_zip(folder / "pytorch_model.bin", lambda t: {k: t(v) for k, v in source.items()})
    (folder / "config.json").write_text(json.dumps(_config()))
    model = mb.from_pretrained(folder)
    for key, value in tree_flatten(model.parameters()):
        np.testing.assert_array_equal(np.array(value), source[key])


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        mb.from_pretrained(tmp_path / "absent")
    (tmp_path / "noconfig").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        mb.from_pretrained(tmp_path / "noconfig")
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text(json.dumps(_config()))
    with pytest.raises(FileNotFoundError, match=r"looked for model\.safetensors"):
        mb.from_pretrained(tmp_path / "noweights")
    _save_tiny(tmp_path / "unknown", config={"model_type": "gpt-neo-2000"})
    with pytest.raises(ValueError, match="unsupported model_type 'gpt-neo-2000'") as info:
        mb.from_pretrained(tmp_path / "unknown")
    assert "bert" in str(info.value) and "plugin" in str(info.value)
    _save_tiny(tmp_path / "corrupt")
    data = (tmp_path / "corrupt" / "model.safetensors").read_bytes()
    (tmp_path / "corrupt" / "model.safetensors").write_bytes(data[:100])
    with pytest.raises(mb.CheckpointError, match="truncated or corrupt"):
        mb.from_pretrained(tmp_path / "corrupt")
    with pytest.raises(ValueError, match="unknown task"):
        mb.from_pretrained(tmp_path / "corrupt", task="translation")


def test_fresh_classification_head(tmp_path):
    _save_tiny(tmp_path / "m")
    with pytest.raises(WeightMismatchError, match="num_labels"):
        mb.from_pretrained(tmp_path / "m", task="sequence_classification")
    model = mb.from_pretrained(tmp_path / "m", task="sequence_classification", num_labels=5)
    assert model.classifier.weight.shape == (5, HIDDEN)
    assert model.config["num_labels"] == 5
    assert any("initialised randomly" in note for note in model.load_notes)
    assert model(IDS).logits.shape == (2, 5)


def test_load_hook_replaces_generic_path(tmp_path):
    calls = []

    def load(folder, config, *, task, dtype, **kwargs):
        calls.append((Path(folder), task, kwargs))
        return TinyEncoder(config)

    register_architecture(
        Architecture(
            name="tinyhook",
            build=_build,
            sanitize=_sanitize,
            load=load,
            matches=lambda c: c.get("model_type") == "tinyhook",
        ),
        overwrite=True,
    )
    folder = tmp_path / "hooked"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(_config(model_type="tinyhook")))
    model = mb.from_pretrained(folder)  # no weights file: the hook decides
    assert calls == [(folder, "encoder", {"num_labels": None})]
    assert model.name_or_path == str(folder)


def test_quantized_folder(tmp_path):
    model = TinyEncoder(_config())
    layers = {
        "proj": {"bits": 4, "group_size": 32, "mode": "affine"},
        "embeddings": {"bits": 8, "group_size": 64, "mode": "affine"},
    }
    nn.quantize(model, class_predicate=lambda path, m: layers.get(path, False))
    mlxbert_quant.install_fast_products(model)  # the product the loaded model uses
    assert isinstance(model.proj, nn.QuantizedLinear)
    expected = model(IDS).last_hidden_state
    folder = tmp_path / "q"
    folder.mkdir()
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())))
    block = {
        "format": "mlxbert-quant/1",
        "bits": 4,
        "group_size": 64,
        "mode": "affine",
        "layers": layers,
    }
    (folder / "config.json").write_text(json.dumps(_config(quantization=block)))

    loaded = mb.from_pretrained(folder)
    assert isinstance(loaded.proj, nn.QuantizedLinear) and loaded.proj.bits == 4
    assert loaded.proj.group_size == 32
    # With the many-row fast product (MLX's CPU quantized kernel is a plain loop).
    assert type(loaded.proj) is mlxbert_quant.QuantizedLinear
    assert isinstance(loaded.embeddings, nn.QuantizedEmbedding) and loaded.embeddings.bits == 8
    np.testing.assert_array_equal(np.array(loaded(IDS).last_hidden_state), np.array(expected))

    block["layers"] = {**layers, "missing.layer": {"bits": 4}}
    (folder / "config.json").write_text(json.dumps(_config(quantization=block)))
    with pytest.raises(ValueError, match=r"missing\.layer"):
        mb.from_pretrained(folder)


def test_load_by_repo_id_from_hub_cache_offline(
    tmp_path, monkeypatch, fixtures_dir, tiny_rows, populate_hub_cache
):
    cache = tmp_path / "hub"
    snapshot = populate_hub_cache(cache, "org/tiny-bert", fixtures_dir / "bert")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = mb.from_pretrained("org/tiny-bert", cache_dir=cache)
    tokenizer = mb.load_tokenizer("org/tiny-bert", cache_dir=cache)
    assert Path(model.name_or_path) == snapshot
    io = np.load(fixtures_dir / "bert" / "io.npz")
    batch = tokenizer([t for t, _ in tiny_rows], [p for _, p in tiny_rows], return_tensors="mx")
    hidden = np.array(model(**batch).last_hidden_state)
    real = io["attention_mask"] == 1
    assert np.abs(hidden[real] - io["last_hidden_state"][real]).max() < 1e-4
    with pytest.raises(FileNotFoundError, match="local Hugging Face cache"):
        mb.from_pretrained("org/not-there", cache_dir=cache)


@pytest.mark.parametrize("arch", ["bert", "modernbert", "neobert"])
def test_builtin_architectures_match_reference(fixtures_dir, arch):
    io = np.load(fixtures_dir / arch / "io.npz")
    real = io["attention_mask"] == 1
    inputs = {
        k: mx.array(io[k]) for k in ("input_ids", "attention_mask", "token_type_ids") if k in io
    }
    encoder = mb.from_pretrained(fixtures_dir / arch)
    hidden = np.array(encoder(**inputs).last_hidden_state)
    assert np.abs(hidden[real] - io["last_hidden_state"][real]).max() < 1e-4
    assert any("task-head" in note or "decoder" in note for note in encoder.load_notes)

    classifier = mb.from_pretrained(fixtures_dir / arch / "seqcls3", task="sequence_classification")
    logits = np.array(classifier(**inputs).logits)
    np.testing.assert_allclose(logits, io["seqcls3_logits"], atol=1e-4)

    fresh = mb.from_pretrained(fixtures_dir / arch, task="sequence_classification", num_labels=4)
    assert np.array(fresh(**inputs).logits).shape == (6, 4)
    with pytest.raises(WeightMismatchError):
        mb.from_pretrained(fixtures_dir / arch, task="sequence_classification")


def test_bf16_dtype_on_real_bert(fixtures_dir):
    io = np.load(fixtures_dir / "bert" / "io.npz")
    model = mb.from_pretrained(fixtures_dir / "bert", dtype="bfloat16")
    out = model(
        mx.array(io["input_ids"]), mx.array(io["attention_mask"]), mx.array(io["token_type_ids"])
    )
    hidden = np.array(out.last_hidden_state.astype(mx.float32))
    real = io["attention_mask"] == 1
    assert np.isfinite(hidden).all()
    assert np.abs(hidden[real] - io["last_hidden_state"][real]).max() < 0.25


def test_load_weights_strict_for_plugins():
    model = TinyEncoder(_config())
    weights = {k: v.astype(mx.bfloat16) for k, v in tree_flatten(model.parameters())}
    kept = weights.pop("proj.bias")
    with pytest.raises(WeightMismatchError, match=r"missing \(1\): proj\.bias\ncheck the config"):
        mb.load_weights_strict(model, dict(weights), source="file.pt", hint="check the config")
    mb.load_weights_strict(model, weights, allow_missing={"proj.bias"}, dtype=mx.float16)
    assert {v.dtype for _, v in tree_flatten(model.parameters())} == {mx.float16}
    assert kept.shape == model.proj.bias.shape


def test_one_dtype_parser():
    assert mb.parse_dtype("bf16") is mb.parse_dtype(mx.bfloat16) is mx.bfloat16
    assert mb.parse_dtype(None) is None
    with pytest.raises(ValueError, match="floating"):
        mb.parse_dtype(mx.int32)
