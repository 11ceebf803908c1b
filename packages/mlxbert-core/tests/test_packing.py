"""Packed inference (the eager forward per core on a CPU; BERT, ModernBERT, NeoBERT): a batch's
real tokens only, the rows dealt to the cores by token count; the real tokens' outputs equal the
reference's."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

import mlxbert_core as mb
from mlxbert_core import parallel
from mlxbert_core.models._packing import SPAN_MULTIPLE, TOKEN_MULTIPLE, Packing
from mlxbert_core.parallel import length_groups

FIXTURES = Path(__file__).parent / "fixtures"
TOL = 1e-4  # the fixtures' tolerance on last_hidden_state

pytestmark = pytest.mark.usefixtures("on_cpu")


@pytest.fixture
def groups_run(monkeypatch):
    """The row groups each per-core run was given: [(count, batch, bounds or None)]."""
    calls = []
    original = parallel._on_streams

    def recording(count, batch, call, join, bounds=None):
        calls.append((count, batch, None if bounds is None else [int(b) for b in bounds]))
        return original(count, batch, call, join, bounds)

    monkeypatch.setattr(parallel, "_on_streams", recording)
    monkeypatch.setattr(parallel, "default_streams", lambda: 2)
    return calls


def _inputs(arch: str = "bert") -> tuple[dict, dict]:
    io = dict(np.load(FIXTURES / arch / "io.npz"))
    keys = ("input_ids", "attention_mask", "token_type_ids")
    return {k: io[k] for k in keys if k in io}, io


def test_packing_moves_real_tokens_between_grid_and_rows():
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    packing = Packing(mask)
    assert (packing.batch, packing.width, packing.tokens) == (3, 5, 4)
    # rounded: TOKEN_MULTIPLE packed rows (the extra ones repeat the first token)
    assert (packing.rows, packing.span) == (TOKEN_MULTIPLE, SPAN_MULTIPLE)
    assert packing.positions.tolist()[:4] == [0, 1, 2, 0]
    x = mx.arange(2 * packing.rows, dtype=mx.float32).reshape(packing.rows, 2) + 1
    real = np.array(x)[:4]
    grid = np.array(packing.unpack(x))
    assert grid.shape == (3, 5, 2)
    np.testing.assert_array_equal(grid[mask == 1], real)
    assert not grid[mask == 0].any()  # the padding is zero
    packed = np.array(packing.pack(mx.array(grid)))
    assert packed.shape == (packing.rows, 2)
    np.testing.assert_array_equal(packed[:4], real)
    assert (packed[4:] == real[0]).all()
    # head-major on attention's grid: [rows, heads * d] -> [batch, heads, span, d] and back
    feats = mx.arange(6 * packing.rows, dtype=mx.float32).reshape(packing.rows, 6)
    heads = np.array(packing.to_heads(feats, 3))
    assert heads.shape == (3, 3, SPAN_MULTIPLE, 2)
    cells = [(0, 0), (0, 1), (0, 2), (1, 0)]
    for row, (b, s) in enumerate(cells):
        np.testing.assert_array_equal(heads[b, :, s], np.array(feats[row]).reshape(3, 2))
    np.testing.assert_array_equal(
        packing.from_heads(mx.array(heads)),
        np.array(feats)[[0, 1, 2, 3] + [0] * (packing.rows - 4)],
    )
    groups = np.array(packing.to_heads(feats, 1, groups=3))  # [q | k | v] rows, one head
    assert groups.shape == (3, 3, 1, SPAN_MULTIPLE, 2)
    for row, (b, s) in enumerate(cells):
        np.testing.assert_array_equal(groups[:, b, 0, s], np.array(feats[row]).reshape(3, 2))
    keys = np.array(packing.key_mask)[:, 0, 0]
    assert keys[:3, :3].tolist() == [[True] * 3, [True, False, False], [True] * 3]
    assert not keys[:2, 3:].any() and keys[2:].all()  # an empty row opens every key


def test_packed_shapes_are_few():
    lengths = range(1, 40)
    shapes = {Packing(np.arange(40)[None, :] < n).rows for n in lengths}
    assert all(rows % TOKEN_MULTIPLE == 0 for rows in shapes)
    assert len(shapes) == -(-39 // TOKEN_MULTIPLE) < len(lengths)


def test_rows_are_grouped_by_length_at_equal_cost():
    lengths = [41, 29, 8, 18, 2, 25, 7]
    groups = length_groups(lengths, 2)
    assert sorted(np.concatenate(groups).tolist()) == list(range(7))
    assert all(list(g) == sorted(g) for g in groups)
    first, second = ([lengths[i] for i in g] for g in groups)
    assert min(first) >= max(second)  # the longest rows together
    assert abs(sum(first) - sum(second)) <= max(lengths)  # equal tokens
    # with attention's cost, the long rows' group gets fewer tokens
    lengths = [40] + [10] * 8
    plain = [sum(lengths[i] for i in g) for g in length_groups(lengths, 2)]
    assert plain == [60, 60]
    costly = [[lengths[i] for i in g] for g in length_groups(lengths, 2, pair_cost=0.02)]
    assert costly == [[40], [10] * 8]  # costs 72 and 96; [40, 10] would cost 114

    assert [g.tolist() for g in length_groups([5, 1], 4)] == [[0], [1]]  # no empty groups
    assert len(length_groups([3] * 10, 3)) == 3


@pytest.mark.parametrize("arch", ["bert", "modernbert", "neobert"])
def test_eager_per_core_packs_and_equals_the_reference(arch, groups_run):
    inputs, io = _inputs(arch)
    model = mb.from_pretrained(FIXTURES / arch)
    assert not model.packs_batches  # the default (compiled) forward does not pack
    model.compile_forward(False, per_core=True)
    assert model.packs_batches
    out = model(**inputs)
    real = io["attention_mask"] == 1
    got = np.array(out.last_hidden_state)
    assert np.abs(got - io["last_hidden_state"])[real].max() < TOL
    assert not got[~real].any()  # the padding's rows are zero
    if "pooler_output" in io:
        assert np.abs(np.array(out.pooler_output) - io["pooler_output"]).max() < TOL
    # one run of two groups of rows by length, not two equal slices of rows
    [(count, batch, bounds)] = groups_run
    assert (count, batch) == (2, len(real)) and bounds is not None
    tokens = real.sum(axis=1)
    long_rows, short_rows = length_groups(tokens, 2, model._pair_cost())
    assert bounds == [0, len(long_rows), len(real)]
    assert tokens[long_rows].min() >= tokens[short_rows].max()
    with model.eager_forward():  # the plain eager forward: padded, unsplit
        plain = np.array(model(**inputs).last_hidden_state)
    np.testing.assert_allclose(got[real], plain[real], atol=1e-5)
    assert len(groups_run) == 1


def test_a_packed_row_is_the_row_alone(groups_run):
    model = mb.from_pretrained(FIXTURES / "bert").compile_forward(False, per_core=True)
    ids = np.array([[2, 5, 6, 7, 8, 9, 10, 3], [2, 11, 3, 0, 0, 0, 0, 0]], dtype=np.int32)
    mask = (ids != 0).astype(np.int32)
    together = np.array(model(ids, attention_mask=mask).last_hidden_state)
    for row in range(2):
        n = int(mask[row].sum())
        alone = np.array(model(ids[row : row + 1, :n]).last_hidden_state)[0]
        np.testing.assert_allclose(together[row, :n], alone, atol=1e-5)


def test_a_row_without_tokens_stays_finite(groups_run):
    model = mb.from_pretrained(FIXTURES / "bert").compile_forward(False, per_core=True)
    ids = np.array([[2, 5, 6, 3], [0, 0, 0, 0], [2, 7, 3, 0]], dtype=np.int32)
    out = model(ids, attention_mask=(ids != 0).astype(np.int32))
    assert np.isfinite(np.array(out.last_hidden_state)).all()
    assert np.isfinite(np.array(out.pooler_output)).all()


def test_no_packing_in_training_mode_or_without_padding(groups_run):
    model = mb.from_pretrained(FIXTURES / "bert").compile_forward(False, per_core=True)
    ids = np.array([[2, 5, 6, 3], [2, 7, 8, 3]], dtype=np.int32)
    model(ids, attention_mask=np.ones_like(ids))  # no padding: the equal slices of split_call
    assert groups_run == [(2, 2, None)]
    model.train()
    assert not model.packs_batches
    model.eval()
    assert model.packs_batches


def test_task_models_and_parallel_forward_leave_the_split_to_a_packing_encoder(groups_run):
    inputs, io = _inputs()
    model = mb.from_pretrained(FIXTURES / "bert" / "seqcls3", task="sequence_classification")
    model.bert.compile_forward(False, per_core=True)
    logits = np.array(parallel.parallel_forward(model, **inputs).logits)
    assert np.abs(logits - io["seqcls3_logits"]).max() < TOL
    # one token-balanced split inside the encoder, not equal slices of the task model
    assert len(groups_run) == 1 and groups_run[0][2] is not None
