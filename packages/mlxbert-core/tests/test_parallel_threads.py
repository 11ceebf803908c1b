"""parallel_forward from several threads: MLX streams belong to the thread that made them."""

from __future__ import annotations

import threading

import mlx.core as mx
import numpy as np

from mlxbert_core.models.bert import BertModel, BertModelArgs
from mlxbert_core.parallel import parallel_forward

ARGS = dict(
    vocab_size=60,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=32,
)


def test_a_second_thread_gets_streams_of_its_own():
    previous = mx.default_device()
    mx.set_default_device(mx.cpu)
    try:
        mx.random.seed(0)
        model = BertModel(BertModelArgs(**ARGS))
        model.eval()
        mx.eval(model.parameters())
        ids = np.random.default_rng(0).integers(1, 60, (4, 10)).astype(np.int32)
        here = np.array(parallel_forward(model, num_streams=2, input_ids=ids).last_hidden_state)
        there: dict[str, object] = {}

        def work() -> None:
            try:
                out = parallel_forward(model, num_streams=2, input_ids=ids)
                there["value"] = np.array(out.last_hidden_state)
            except Exception as exc:  # reported below, in the test's thread
                there["error"] = exc

        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
        assert "error" not in there, there.get("error")
        np.testing.assert_allclose(there["value"], here, atol=1e-6)
    finally:
        mx.set_default_device(previous)
