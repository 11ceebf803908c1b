"""A quantized task model (mlxbert-quant) exports to ONNX with its weights dequantized: the
graph equals the quantized MLX model; the transformers folder is refused."""

from __future__ import annotations

from pathlib import Path

import mlxbert_core  # noqa: F401  isort: skip  (first: it loads OpenBLAS before mlx)

import numpy as np
import pytest

from mlxbert_glue import Classifier, ExportError, create_task_model, export_model, save_task_model
from mlxbert_glue.export.formats import onnx as onnx_format

TINY = Path(__file__).resolve().parents[1] / "packages" / "mlxbert-glue" / "tests" / "fixtures"
TEXTS = ["a first text to classify", "and a second, longer one, with commas"]


def test_quantized_model_exports_dequantized(tmp_path):
    model, tokenizer, info = create_task_model(
        TINY / "tiny-bert", "multiclass", labels=["a", "b", "c"], quantize=8
    )
    folder = save_task_model(model, tokenizer, tmp_path / "q8", info=info, max_length=32)
    result = export_model(folder, "onnx", tmp_path / "onnx")
    assert result.max_abs_diff <= 1e-4
    clf = Classifier.from_pretrained(folder)
    enc = clf.tokenizer(TEXTS, max_length=32)
    got = onnx_format.run(tmp_path / "onnx" / "model.onnx", dict(enc))[0]
    assert np.abs(got - clf.logits(TEXTS)).max() <= 1e-4
    with pytest.raises(ExportError, match="quantized model has no transformers folder"):
        export_model(folder, "hf", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
