"""parallel_forward: the batch split over CPU streams gives the plain forward's outputs."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from mlxbert_core import parallel, runtime
from mlxbert_core.models.bert import BertForSequenceClassification, BertModel
from mlxbert_core.parallel import cpu_cores, default_streams, parallel_forward

pytestmark = pytest.mark.usefixtures("on_cpu")


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    lengths = np.array([12, 9, 12, 4, 7])
    mask = (np.arange(12)[None, :] < lengths[:, None]).astype(np.int32)
    ids = (rng.integers(1, 60, (5, 12)) * mask).astype(np.int32)
    types = (np.arange(12)[None, :] >= 6).astype(np.int32).repeat(5, axis=0)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _close(a, b, tol=1e-5):
    assert a.shape == b.shape
    assert float(mx.max(mx.abs(a - b))) < tol


def test_encoder_outputs_match_the_plain_forward(batch, tiny_bert_args):
    mx.random.seed(0)
    model = BertModel(tiny_bert_args())
    model.eval()
    plain = model(**batch, output_hidden_states=True, output_attentions=True)
    split = parallel_forward(model, num_streams=3, **batch, output_hidden_states=True,
                             output_attentions=True)  # fmt: skip
    _close(split.last_hidden_state, plain.last_hidden_state)
    _close(split.pooler_output, plain.pooler_output)
    assert len(split.hidden_states) == len(plain.hidden_states) == 3
    for a, b in zip(split.hidden_states, plain.hidden_states):
        _close(a, b)
    for a, b in zip(split.attentions, plain.attentions):
        _close(a, b)


def test_classifier_logits_and_mlx_inputs(batch, tiny_bert_args):
    mx.random.seed(1)
    model = BertForSequenceClassification(tiny_bert_args(num_labels=3))
    model.eval()
    inputs = {k: mx.array(v) for k, v in batch.items()}
    plain = model(**inputs).logits
    for streams in (2, 5, 8):  # more streams than rows: one row each
        _close(parallel_forward(model, num_streams=streams, **inputs).logits, plain)


def test_falls_back_to_the_plain_call(batch, tiny_bert_args):
    model = BertModel(tiny_bert_args())
    model.eval()
    one_row = {k: v[:1] for k, v in batch.items()}
    for kwargs, inputs in (({"num_streams": 1}, batch), ({"num_streams": 4}, one_row)):
        out = parallel_forward(model, **kwargs, **inputs)
        _close(out.last_hidden_state, model(**inputs).last_hidden_state)
    assert cpu_cores() >= 1


def test_blas_threads_are_restored(batch, tiny_bert_args):
    before = runtime.blas_threads()
    model = BertModel(tiny_bert_args())
    model.eval()
    parallel_forward(model, num_streams=2, **batch)
    assert runtime.blas_threads() == before


def test_needs_a_batched_input(tiny_bert_args):
    model = BertModel(tiny_bert_args())
    with pytest.raises(ValueError, match="batched array input"):
        parallel_forward(model, num_streams=2, input_ids=None)


def test_default_split_only_on_small_machines(monkeypatch):
    monkeypatch.setattr(parallel, "cpu_cores", lambda: 2)
    assert default_streams() == 2
    monkeypatch.setattr(parallel, "cpu_cores", lambda: 64)
    assert default_streams() == 1
