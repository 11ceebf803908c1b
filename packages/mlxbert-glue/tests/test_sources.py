"""Classifier from every source it opens, against the reference implementations' logits:
Hugging Face sequence-classification folders (BERT, ModernBERT, NeoBERT; transformers and the
NeoBERT authors' code computed the fixtures) and M2-BERT checkpoints in each format (the M2
authors' code). Encoder-only checkpoints are refused with what to do."""

from __future__ import annotations

import mlxbert_core  # noqa: F401  isort: skip  (before mlx: the fast BLAS on Linux)

import json
import shutil
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

from mlxbert_glue import Classifier, EncoderOnlyError, create_model_and_tokenizer, open_model
from mlxbert_m2 import M2BertModel

from .conftest import REPO_ROOT

SHARED = REPO_ROOT.parent / "shared" / "fixtures"
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="the shared fixtures are absent")

ARCHS = ("bert", "modernbert", "neobert")
HEADS = (("seqcls3", "seqcls3_logits"), ("regression", "regression_logits"))


def _run(model, io, *, types: bool = True) -> np.ndarray:
    kwargs = {"attention_mask": mx.array(io["attention_mask"])}
    if types and "token_type_ids" in io:
        kwargs["token_type_ids"] = mx.array(io["token_type_ids"])
    return np.array(model(mx.array(io["input_ids"]), **kwargs))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(("head", "key"), HEADS)
def test_hugging_face_classifier_folders_match_the_reference(arch, head, key):
    clf = Classifier.from_pretrained(SHARED / arch / head)
    io = np.load(SHARED / arch / "io.npz")
    expected = io[key]
    np.testing.assert_allclose(_run(clf.model, io).reshape(expected.shape), expected, atol=1e-4)
    if head == "seqcls3":
        assert clf.labels == ["negative", "neutral", "positive"]
        result = clf.classify("a calm and ordinary afternoon")
        assert result["label"] in clf.labels and set(result["scores"]) == set(clf.labels)
    else:
        assert clf.info.head_task == "regression"
        assert set(clf.classify("a number please")) == {"value"}


def test_modernbert_pooling_follows_its_config():
    assert open_model(SHARED / "modernbert" / "seqcls3")[2].pooling == "mean"
    assert open_model(SHARED / "modernbert" / "regression")[2].pooling == "cls"


@pytest.mark.parametrize("arch", ARCHS)
def test_encoder_only_checkpoints_say_to_fine_tune_first(arch):
    with pytest.raises(EncoderOnlyError, match="fine-tune it first"):
        Classifier.from_pretrained(SHARED / arch)


def test_num_labels_is_checked_and_never_starts_a_fresh_head():
    with pytest.raises(ValueError, match="num_labels=5"):
        Classifier.from_pretrained(SHARED / "bert" / "seqcls3", num_labels=5)
    clf = Classifier.from_pretrained(SHARED / "bert" / "seqcls3", num_labels=3, device="cpu")
    assert clf.info.num_labels == 3


def test_the_constructor_form_opens_the_same_model():
    a = Classifier(checkpoint=SHARED / "bert" / "seqcls3")
    b = Classifier.from_pretrained(SHARED / "bert" / "seqcls3")
    assert a.classify("same text") == b.classify("same text")
    with pytest.raises(TypeError, match="checkpoint"):
        Classifier()


# -- M2-BERT ---------------------------------------------------------------------------------

M2 = SHARED / "m2"
TOKENIZER = SHARED / "bert"  # any tokenizer to load with; the inputs below are the fixture's ids


@pytest.mark.parametrize(
    ("name", "checkpoint", "key"),
    [
        ("glue_tiny", "composer.pt", "logits"),
        ("glue_tiny", "composer_bf16.pt", "bf16ckpt_logits"),
        ("glue_tiny", "model.safetensors", "logits"),
        ("switches_tiny", "composer.pt", "logits"),  # mean pooling, a regression head
    ],
)
def test_m2_checkpoints_match_the_reference(name, checkpoint, key):
    clf = Classifier.from_pretrained(
        M2 / name,
        checkpoint=checkpoint,
        task="mnli" if name == "glue_tiny" else None,
        tokenizer=TOKENIZER,
    )
    io = np.load(M2 / name / "io.npz")
    expected = io[key]
    np.testing.assert_allclose(_run(clf.model, io).reshape(expected.shape), expected, atol=1e-4)
    assert clf.max_length == clf.model.encoder.input_length  # padded as the reference pads
    if name == "glue_tiny":  # placeholder labels, named by the GLUE task
        assert clf.labels == ["contradiction", "entailment", "neutral"]


def test_m2_encoder_only_checkpoint_is_refused():
    with pytest.raises(EncoderOnlyError, match="fine-tune"):
        Classifier.from_pretrained(
            M2 / "retrieval_tiny", checkpoint="pytorch_model.bin", tokenizer=TOKENIZER
        )


def test_task_labels_must_fit_the_outputs():
    with pytest.raises(ValueError, match="3 outputs but task 'sst2' has 2 labels"):
        Classifier.from_pretrained(
            M2 / "glue_tiny", checkpoint="composer.pt", task="sst2", tokenizer=TOKENIZER
        )


def m2_folder_with_tokenizer(root: Path) -> Path:
    """The glue_tiny M2 checkpoint with a 512-word WordPiece vocabulary that uses
    bert-base-uncased's special ids ([PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102)."""
    folder = root / "m2"
    shutil.copytree(M2 / "glue_tiny", folder)
    (folder / "io.npz").unlink()
    specials = {0: "[PAD]", 100: "[UNK]", 101: "[CLS]", 102: "[SEP]", 103: "[MASK]"}
    vocab = [specials.get(i, f"[unused{i}]") for i in range(104)]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
    vocab += chars + ["##" + c for c in chars]
    vocab += [f"[extra{i}]" for i in range(512 - len(vocab))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokens = {
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(tokens))
    return folder


def test_m2_task_model_from_a_composer_checkpoint(tmp_path):
    folder = m2_folder_with_tokenizer(tmp_path)
    model, _tok, info = create_model_and_tokenizer(folder, "sst2", checkpoint="composer.pt")
    assert isinstance(model.encoder, M2BertModel) and info.labels == ["negative", "positive"]
    assert "pooler" not in model.encoder  # BERT's pooler became the head's dense layer
