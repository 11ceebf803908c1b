"""The call a user writes is the fast path: ``model(...)`` in eval mode runs the compiled
forward (one batch slice per core on a small CPU) and gives the reference outputs."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

import mlxbert_core as mb
from mlxbert_core import parallel
from mlxbert_core.models._layers import CompiledForward

FIXTURES = Path(__file__).parent / "fixtures"
TOL = 1e-4  # the fixtures' tolerance on last_hidden_state


pytestmark = pytest.mark.usefixtures("on_cpu")


@pytest.fixture
def split_calls(monkeypatch):
    """Count the calls that ran as per-core slices."""
    calls = []
    original = parallel._on_streams

    def counting(count, batch, call, join, bounds=None):
        calls.append((count, batch))
        return original(count, batch, call, join, bounds)

    monkeypatch.setattr(parallel, "_on_streams", counting)
    monkeypatch.setattr(parallel, "default_streams", lambda: 2)
    return calls


@pytest.mark.parametrize("arch", ["bert", "modernbert", "neobert"])
def test_default_call_is_compiled_and_equals_the_reference(arch, split_calls):
    model = mb.from_pretrained(FIXTURES / arch)
    io = dict(np.load(FIXTURES / arch / "io.npz"))
    assert model.forward_compiled and not model.training
    inputs = {"input_ids": io["input_ids"], "attention_mask": io["attention_mask"]}
    if "token_type_ids" in io:
        inputs["token_type_ids"] = io["token_type_ids"]
    out = model(**inputs)
    assert model.__dict__.get("_compiled_cache"), "the default call did not run compiled"
    assert split_calls == [(2, len(io["input_ids"]))]
    real = io["attention_mask"] == 1
    got = np.array(out.last_hidden_state)
    assert np.abs(got - io["last_hidden_state"])[real].max() < TOL
    eager = model.compile_forward(False)(**inputs)
    np.testing.assert_allclose(got, np.array(eager.last_hidden_state), atol=1e-5)
    assert len(split_calls) == 1  # the eager forward is not split


def test_no_split_inside_parallel_forward_or_for_one_row(split_calls):
    model = mb.from_pretrained(FIXTURES / "bert")
    ids = np.array([[5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]], dtype=np.int32)
    parallel.parallel_forward(model, num_streams=1, input_ids=ids)
    assert split_calls == []
    parallel.parallel_forward(model, num_streams=3, input_ids=ids)
    assert split_calls == [(3, 3)]  # the slices' own calls do not split again
    model(input_ids=ids[:1])
    assert len(split_calls) == 1


def test_default_call_inside_transformations(split_calls):
    model = mb.from_pretrained(FIXTURES / "bert")
    ids = mx.array(np.arange(5, 29, dtype=np.int32).reshape(3, 8))
    eager = model.compile_forward(False)(ids).last_hidden_state
    model.compile_forward()
    compiled = mx.compile(lambda i: model(i).last_hidden_state)(ids)
    assert float(mx.abs(compiled - eager).max()) < 1e-5
    mapped = mx.vmap(lambda i: model(i[None]).last_hidden_state[0])(ids)
    assert float(mx.abs(mapped - eager).max()) < 1e-5

    def loss(params):
        model.update(params)
        return model(ids).last_hidden_state.sum()

    value, grads = mx.value_and_grad(loss)(model.trainable_parameters())
    model.compile_forward(False)
    value_eager, grads_eager = mx.value_and_grad(loss)(model.trainable_parameters())
    assert abs(float(value - value_eager)) < 1e-3
    word = grads["embeddings"]["word_embeddings"]["weight"]
    word_eager = grads_eager["embeddings"]["word_embeddings"]["weight"]
    assert float(mx.abs(word - word_eager).max()) < 1e-4


def test_training_mode_and_opt_out_run_eager():
    model = mb.from_pretrained(FIXTURES / "bert")
    model.train()
    assert not model._use_compiled(True)
    model.eval()
    assert model._use_compiled(True)
    model.compile_forward(False)
    assert not model.forward_compiled and not model._use_compiled(True)


def test_embed_default_path_equals_the_eager_one():
    model = mb.from_pretrained(FIXTURES / "bert")
    tok = mb.load_tokenizer(FIXTURES / "bert")
    texts = ["Hello world!", "", "The quick brown fox jumps over the lazy dog.", "a b c", "x y"]
    fast = mb.embed(model, tok, texts, batch_size=4)
    model.compile_forward(False)
    slow = mb.embed(model, tok, texts, batch_size=4)
    np.testing.assert_allclose(fast, slow, atol=1e-5)
    assert fast.shape == slow.shape == (5, slow.shape[1])


def test_default_call_follows_plain_attribute_changes():
    # A traced graph bakes in plain Python attributes (an adapter switch, a norm's eps): the
    # compiled default call must retrace when one changes, not replay the old graph.
    model = mb.from_pretrained(FIXTURES / "bert")
    ids = np.arange(5, 21, dtype=np.int32).reshape(2, 8)
    before = np.array(model(ids).last_hidden_state)
    norm = model.encoder.layer[0].output.LayerNorm
    norm.eps = 10.0
    changed = np.array(model(ids).last_hidden_state)
    eager = np.array(model.compile_forward(False)(ids).last_hidden_state)
    np.testing.assert_allclose(changed, eager, atol=1e-5)
    assert np.abs(changed - before).max() > 1e-3


def test_eager_forward_is_scoped_and_restores_the_setting():
    class Probe(CompiledForward):
        pass

    probe = Probe().compile_forward(True, check_mx_inputs=False)
    with probe.eager_forward() as inside:
        assert inside is probe and not probe.forward_compiled
    assert probe.forward_compiled and probe._check_mx_inputs is False
    probe.compile_forward(False)
    with probe.eager_forward():
        assert not probe.forward_compiled
    assert not probe.forward_compiled


@pytest.mark.parametrize("arch", ["bert", "modernbert", "neobert"])
def test_eager_forward_per_core_splits_without_compiling(arch, split_calls):
    model = mb.from_pretrained(FIXTURES / arch).compile_forward(False, per_core=True)
    io = dict(np.load(FIXTURES / arch / "io.npz"))
    inputs = {"input_ids": io["input_ids"], "attention_mask": io["attention_mask"]}
    if "token_type_ids" in io:
        inputs["token_type_ids"] = io["token_type_ids"]
    got = np.array(model(**inputs).last_hidden_state)
    assert split_calls == [(2, len(io["input_ids"]))]
    assert not model.__dict__.get("_compiled_cache"), "per_core must not compile"
    real = io["attention_mask"] == 1
    assert np.abs(got - io["last_hidden_state"])[real].max() < TOL
    with model.eager_forward():  # the scoped eager forward is plain: no slices
        model(**inputs)
    assert len(split_calls) == 1
    model(**inputs)
    assert len(split_calls) == 2  # and the setting is back
    model.compile_forward(True, per_core=True)  # per_core is for the eager forward only
    assert model.forward_compiled and not model._eager_per_core
