"""A tiny M2-BERT classifier fine-tunes on real SST-2 rows: the loss goes down."""

from __future__ import annotations

import csv
import zlib
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from m2_helpers import config_dict

from mlxbert_m2 import build_model, make_optimizer

GLUE = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "glue"
LENGTH = 32
ROWS = 64


def hash_tokenize(text: str, vocab_size: int) -> list[int]:
    """[CLS] words [SEP] with each lower-cased word hashed into the non-special ids."""
    words = text.lower().split()[: LENGTH - 2]
    ids = [101] + [103 + zlib.crc32(w.encode()) % (vocab_size - 103) for w in words] + [102]
    return ids + [0] * (LENGTH - len(ids))


def load_sst2(vocab_size: int) -> tuple[mx.array, mx.array, mx.array]:
    path = GLUE / "SST-2" / "train.tsv"
    if not path.is_file():
        pytest.skip(f"real GLUE data not found at {path.resolve()}")
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1 : ROWS + 1]
    ids = np.array([hash_tokenize(text, vocab_size) for text, _ in rows])
    labels = np.array([int(label) for _, label in rows])
    return mx.array(ids), mx.array((ids != 0).astype(np.int32)), mx.array(labels)


def test_classifier_fine_tunes_on_sst2_subset():
    config = config_dict("glue_tiny", num_hidden_layers=1)
    ids, mask, labels = load_sst2(config["vocab_size"])
    mx.random.seed(0)
    model = build_model(config, "sequence_classification", num_labels=2)
    model.train()
    filt = model.bert.encoder.layer[0].attention.filter_fn
    t_before, deltas_before = np.array(filt.pos_emb.t), np.array(filt.modulation.deltas)
    optimizer = make_optimizer(1e-3)

    def loss_fn(model, ids, mask, labels):
        logits = model(ids, mask).logits
        return nn.losses.cross_entropy(logits, labels, reduction="mean")

    step = nn.value_and_grad(model, loss_fn)
    losses = []
    for _epoch in range(12):
        for start in range(0, ROWS, 32):
            sl = slice(start, start + 32)
            loss, grads = step(model, ids[sl], mask[sl], labels[sl])
            optimizer.update(model, grads)
            mx.eval(model.parameters(), optimizer.state, loss)
            losses.append(float(loss))
    assert all(np.isfinite(losses))
    first, last = np.mean(losses[:2]), np.mean(losses[-4:])
    assert last < 0.5 * first, losses
    # Buffers are frozen: not trained.
    np.testing.assert_array_equal(np.array(filt.pos_emb.t), t_before)
    np.testing.assert_array_equal(np.array(filt.modulation.deltas), deltas_before)
