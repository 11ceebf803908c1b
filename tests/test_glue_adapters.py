"""mlxbert-glue with its extras: LoRA and QLoRA fine-tuning, quantized task models.

Integration tests (they need mlxbert-lora and mlxbert-quant next to mlxbert-glue)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_unflatten

from mlxbert_glue import (
    Classifier,
    create_model_and_tokenizer,
    finetune,
    load_task_model,
    save_task_model,
)

ROOT = Path(__file__).resolve().parents[1]
TINY_BERT = ROOT / "packages" / "mlxbert-glue" / "tests" / "fixtures" / "tiny-bert"
GLUE_DIR = ROOT.parent / "shared" / "data" / "glue"


def _logits(model, tokenizer):
    enc = tokenizer(["a fine film .", "dull"], ["yes", "no"], return_tensors="mx")
    model.eval()
    out = model(
        enc["input_ids"], attention_mask=enc["attention_mask"], token_type_ids=enc["token_type_ids"]
    )
    return np.array(out)


@pytest.mark.parametrize("preset", ["balanced", "qlora"])
def test_lora_model_saves_merged_and_keeps_training(tmp_path, preset):
    from mlxbert_lora import lora_layers

    model, tokenizer, _info = create_model_and_tokenizer(TINY_BERT, "mrpc", lora=preset)
    trainable = tree_flatten(model.trainable_parameters())
    assert any("lora_" in k for k, _ in trainable)
    assert any(k.startswith("head.") for k, _ in trainable)  # the head trains in full
    assert not any(k.startswith("encoder.embeddings") for k, _ in trainable)
    model.update(tree_unflatten([(k, v + 0.03) for k, v in trainable]))
    expected = _logits(model, tokenizer)
    out = save_task_model(model, tokenizer, tmp_path / "m", max_length=32)
    assert lora_layers(model)  # the live model keeps its adapters
    meta = json.loads((out / "mlxbert.json").read_text())
    assert meta["adapter"]["merged"] is True and meta["lora"] is not None
    loaded, tok, _ = load_task_model(out)
    # Float LoRA merges exactly; QLoRA merges into the dequantized base, which is what the
    # quantized model computed.
    np.testing.assert_allclose(_logits(loaded, tok), expected, atol=1e-4)


def test_quantized_task_model_round_trip(tmp_path):
    model, tokenizer, _ = create_model_and_tokenizer(TINY_BERT, "sst2", quantize=8)
    expected = _logits(model, tokenizer)
    out = save_task_model(model, tokenizer, tmp_path / "q", max_length=32)
    loaded, tok, meta = load_task_model(out)
    assert meta["weights_layout"] == "mlxbert" and meta["hf_compatible"] is False
    np.testing.assert_allclose(_logits(loaded, tok), expected, atol=1e-6)
    assert Classifier.from_pretrained(out).classify("fine")["label"] in ("negative", "positive")


def test_lora_finetune_and_init_from(tmp_path):
    if not GLUE_DIR.is_dir():
        pytest.skip(f"the real GLUE files are not present at {GLUE_DIR}")
    common = dict(epochs=2, batch_size=32, max_length=32, max_train_samples=64,
                  max_eval_samples=32, seeds=[2], progress=False)  # fmt: skip
    first = finetune("rte", str(TINY_BERT), GLUE_DIR, tmp_path / "rte", lora="efficient",
                     learning_rate=5e-3, **common)  # fmt: skip
    assert first["runs"][0]["epochs"][-1]["loss"] < first["runs"][0]["epochs"][0]["loss"] + 0.05
    # Start MRPC from the RTE model's encoder (as the recipe starts MRPC from MNLI).
    second = finetune("mrpc", str(TINY_BERT), GLUE_DIR, tmp_path / "mrpc",
                      init_from=tmp_path / "rte", **common)  # fmt: skip
    assert second["init_from"] == str(tmp_path / "rte")
    rte_encoder = dict(tree_flatten(load_task_model(tmp_path / "rte")[0].encoder.parameters()))
    fresh, _, _ = create_model_and_tokenizer(tmp_path / "rte", "mrpc")
    start = dict(tree_flatten(fresh.encoder.parameters()))
    assert all(np.array_equal(np.array(start[k]), np.array(v)) for k, v in rte_encoder.items())
