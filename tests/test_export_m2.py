"""M2-BERT exports to ONNX: its FFT long convolutions become ONNX ``DFT`` nodes, and the
graph run by onnxruntime equals mlxbert-m2's encoder within 1e-4 at two batch sizes and
several lengths, padded; an MLX function file is refused with the reason. (The fixtures'
configs name a sequence classifier; their encoders are exported, ``encoder_only``.)"""

from __future__ import annotations

from pathlib import Path

import mlxbert_core  # noqa: F401  isort: skip  (first: it loads OpenBLAS before mlx)

import numpy as np
import onnx
import pytest

from mlxbert_glue import ExportError, export_model
from mlxbert_glue.export.formats import onnx as onnx_format
from mlxbert_glue.export.graph import GraphSpec, plan_graph
from mlxbert_glue.export.reference import max_difference, mlx_outputs
from mlxbert_glue.export.source import open_subject

REPO = Path(__file__).resolve().parents[1]
M2_FIXTURES = REPO / "packages" / "mlxbert-m2" / "tests" / "fixtures"
TINY_BERT = REPO / "packages" / "mlxbert-glue" / "tests" / "fixtures" / "tiny-bert"
CASES = {  # fixture: (checkpoint, what it covers)
    "glue_tiny": ("composer.pt", "bidirectional + residual long convs, block-diagonal MLP"),
    "switches_tiny": ("model.safetensors", "causal long conv, dense MLP, mean pooler"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_m2_onnx_equals_mlx(tmp_path, name, m2_folder):
    folder = m2_folder(tmp_path, name, CASES[name][0])
    result = export_model(folder, "onnx", tmp_path / "out", pooling="pooler", encoder_only=True)
    assert result.max_abs_diff <= 1e-4
    model = onnx.load(str(tmp_path / "out" / "model.onnx"))
    assert any(node.op_type == "DFT" for node in model.graph.node)
    subject = open_subject(folder, encoder_only=True)
    spec = GraphSpec(pooling="pooler")
    plan = plan_graph(subject, spec, "onnx")
    session = onnx_format.session(tmp_path / "out" / "model.onnx")
    vocab = subject.encoder.config.vocab_size
    rng = np.random.default_rng(0)
    for batch in (2, 3):
        for length in (5, 12, 40, plan.max_positions):
            feeds = {
                "input_ids": rng.integers(5, vocab, (batch, length)),
                "attention_mask": np.ones((batch, length), np.int64),
                "token_type_ids": np.zeros((batch, length), np.int64),
            }
            feeds["attention_mask"][0, length // 2 :] = 0
            got = onnx_format.run(session, feeds)
            want = mlx_outputs(subject, plan, spec, feeds)
            assert max_difference(got, want) <= 1e-4, (batch, length)


def test_m2_opset_17_and_no_mlxfn(tmp_path, m2_folder):
    folder = m2_folder(tmp_path, "switches_tiny", CASES["switches_tiny"][0])
    result = export_model(folder, "onnx", tmp_path / "o17", opset=17, encoder_only=True)
    assert result.max_abs_diff <= 1e-4
    with pytest.raises(ExportError, match="M2-BERT cannot be exported as an MLX function"):
        export_model(folder, "mlxfn", tmp_path / "fn", encoder_only=True)
    with pytest.raises(ExportError, match="m2_bert models have no transformers classes"):
        export_model(folder, "hf", tmp_path / "hf", encoder_only=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o17", "switches_tiny"]
