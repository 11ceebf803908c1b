"""Tokenizer: reproduces the reference tokenizations; truncation, padding and output options."""

from __future__ import annotations

import json
import shutil

import mlx.core as mx
import numpy as np
import pytest

from mlxbert_core import Tokenizer, load_tokenizer


@pytest.fixture(scope="module")
def bert_tok(fixtures_dir):
    return load_tokenizer(fixtures_dir / "bert")


def test_minilm_sentences_match_reference(minilm_dir, minilm_sentences, fixtures_dir):
    io = np.load(fixtures_dir / "minilm" / "io.npz")
    tok = load_tokenizer(minilm_dir)
    enc = tok(minilm_sentences, padding="longest", max_length=256)
    assert set(enc) == {"input_ids", "attention_mask", "token_type_ids"}
    for key in enc:
        assert enc[key].dtype == np.int64
        np.testing.assert_array_equal(enc[key], io[key], err_msg=key)


def test_minilm_baked_in_padding_is_overridden(minilm_dir):
    tok = load_tokenizer(minilm_dir)
    assert tok("Hello world!")["input_ids"].shape == (1, 5)  # not the file's fixed 128
    assert tok.model_max_length == 512 and tok.embedding_max_length == 256
    long_text = " ".join(["word"] * 600)
    assert tok(long_text)["input_ids"].shape == (1, 512)  # default limit: model_max_length
    assert tok(long_text, truncation=False)["input_ids"].shape == (1, 602)


@pytest.mark.parametrize("arch", ["bert", "modernbert", "neobert"])
def test_tiny_tokenizers_match_reference(fixtures_dir, tiny_rows, arch):
    io = np.load(fixtures_dir / arch / "io.npz")
    tok = load_tokenizer(fixtures_dir / arch)
    enc = tok([t for t, _ in tiny_rows], [p for _, p in tiny_rows])
    expected = {"input_ids", "attention_mask"} | ({"token_type_ids"} if arch == "bert" else set())
    assert set(enc) == expected  # ModernBERT and NeoBERT list no token_type_ids
    for key in enc:
        np.testing.assert_array_equal(enc[key], io[key], err_msg=key)


def test_special_tokens_and_vocab(fixtures_dir, bert_tok):
    assert bert_tok.vocab_size == len(bert_tok) == 1024
    assert (bert_tok.pad_token_id, bert_tok.unk_token_id) == (0, 1)
    assert (bert_tok.cls_token_id, bert_tok.sep_token_id, bert_tok.mask_token_id) == (2, 3, 4)
    assert bert_tok.all_special_ids == [0, 1, 2, 3, 4]
    modern = load_tokenizer(fixtures_dir / "modernbert")
    assert (modern.pad_token_id, modern.cls_token_id, modern.sep_token_id) == (483, 481, 482)
    assert modern.mask_token_id == 484


def test_encode_decode_roundtrip(bert_tok):
    ids = bert_tok.encode("Hello world!")
    assert ids[0] == bert_tok.cls_token_id and ids[-1] == bert_tok.sep_token_id
    assert bert_tok.decode(ids) == "hello world!"
    assert bert_tok.tokenize("Hello") == ["he", "##l", "##l", "##o"]
    batch = bert_tok(["Hello world!", "the dog"])["input_ids"]
    assert bert_tok.batch_decode(batch) == ["hello world!", "the dog"]


def test_truncation_modes(bert_tok):
    first, second = "the dog and the cat", "a b c d e f g h"
    full = bert_tok(first, second, truncation=False)
    n_first = len(bert_tok.encode(first, add_special_tokens=False))
    n_second = len(bert_tok.encode(second, add_special_tokens=False))
    assert full["input_ids"].shape[1] == n_first + n_second + 3

    limit = 12
    longest = bert_tok(first, second, max_length=limit)
    only_second = bert_tok(first, second, max_length=limit, truncation="only_second")
    assert longest["input_ids"].shape[1] == only_second["input_ids"].shape[1] == limit
    kept_second = only_second["token_type_ids"][0].sum() - 1  # minus the final [SEP]
    assert kept_second == limit - 3 - n_first  # the first text is kept whole
    assert (only_second["input_ids"][0, : n_first + 2] == full["input_ids"][0, : n_first + 2]).all()
    with pytest.raises(ValueError, match="tokenization failed"):
        bert_tok(first, second, max_length=4, truncation="only_second")
    with pytest.raises(ValueError, match="truncation="):
        bert_tok(first, truncation="sometimes", max_length=8)


def test_padding_options(bert_tok):
    texts = ["hello", "the quick brown fox jumps"]
    longest = bert_tok(texts)
    width = longest["input_ids"].shape[1]
    assert (longest["attention_mask"].sum(axis=1) == [len(bert_tok.encode(t)) for t in texts]).all()
    assert (longest["input_ids"][longest["attention_mask"] == 0] == bert_tok.pad_token_id).all()

    multiple = bert_tok(texts, pad_to_multiple_of=8)
    assert multiple["input_ids"].shape[1] == -(-width // 8) * 8
    fixed = bert_tok(texts, padding="max_length", max_length=40)
    assert fixed["input_ids"].shape == (2, 40)
    lists = bert_tok(texts, padding=False, return_tensors=None)
    assert [len(r) for r in lists["input_ids"]] == [len(bert_tok.encode(t)) for t in texts]
    with pytest.raises(ValueError, match="padding='longest'"):
        bert_tok(texts, padding=False)
    with pytest.raises(ValueError, match="padding="):
        bert_tok(texts, padding="shortest")
    arrays = bert_tok(texts, return_tensors="mx")
    assert isinstance(arrays["input_ids"], mx.array) and arrays["input_ids"].dtype == mx.int32
    with pytest.raises(TypeError, match="expected str"):
        bert_tok(["fine", None])


def test_vocab_txt_only_folder_matches_tokenizer_json(tmp_path, fixtures_dir, tiny_rows):
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(fixtures_dir / "bert" / name, tmp_path / name)
    wordpiece = load_tokenizer(tmp_path)
    io = np.load(fixtures_dir / "bert" / "io.npz")
    enc = wordpiece([t for t, _ in tiny_rows], [p for _, p in tiny_rows])
    for key in enc:
        np.testing.assert_array_equal(enc[key], io[key], err_msg=key)


def test_save_pretrained_roundtrip(tmp_path, fixtures_dir, tiny_rows):
    tok = load_tokenizer(fixtures_dir / "neobert")
    tok.save_pretrained(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())
    assert config["model_input_names"] == ["input_ids", "attention_mask"]
    again = Tokenizer.from_folder(tmp_path / "saved")
    texts = [t for t, _ in tiny_rows]
    for key, value in tok(texts).items():
        np.testing.assert_array_equal(again(texts)[key], value)


def test_missing_tokenizer_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json and vocab\.txt"):
        load_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match="tokenizer folder not found"):
        load_tokenizer(tmp_path / "nope")
