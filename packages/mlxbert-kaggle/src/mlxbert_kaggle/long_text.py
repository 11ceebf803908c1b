"""Predicting texts longer than a model's maximum length, on token ids.

* ``head``: the first tokens (what plain truncation does).
* ``head-tail``: the first quarter of the token budget from the start of the text and the
  rest from its end (Sun et al. 2019, "How to fine-tune BERT for text classification?",
  found head + tail truncation best on long reviews; 128 + 382 of 510 tokens there).
* ``windows``: overlapping windows of the full budget, each a half budget after the previous
  one, the last one ending at the text's end; the head's outputs (logits) of a text's windows
  are averaged before they become probabilities or values. The mean, not the max: it keeps
  the model's calibration and decision thresholds meaningful, where a max over windows would
  shift every long text towards the positive side.

Every window carries the tokenizer's own special tokens ([CLS] ... [SEP]); a text that fits
gives exactly the plain prediction in every mode. ``tta=True`` averages the variant's
probabilities (values) with the plain prediction's (test-time augmentation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlxbert_glue import pad_id_of, predict_logits

from .errors import InputError
from .training import predict_raw, raw_predictions

MODES = ("head", "head-tail", "windows")


def check_mode(mode: str | None, tta: bool = False) -> None:
    if mode is not None and mode not in MODES:
        raise InputError(f"--long-text {mode!r}: use {', '.join(MODES)}")
    if tta and mode in (None, "head"):
        raise InputError(
            "--tta averages a --long-text variant (head-tail or windows) with "
            "the plain prediction; name one"
        )


def _specials(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a text."""
    full = _ids(tokenizer, ["x"], special=True)[0]
    bare = _ids(tokenizer, ["x"], special=False)[0]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise InputError("cannot find the tokenizer's special tokens around a text")


def _ids(tokenizer: Any, texts: Sequence[str], *, special: bool) -> list[list[int]]:
    enc = tokenizer(
        list(texts),
        truncation=False,
        padding=False,
        return_tensors=None,
        add_special_tokens=special,
    )
    return [list(map(int, ids)) for ids in enc["input_ids"]]


def _pieces(tokens: list[int], budget: int, mode: str) -> list[list[int]]:
    """The token runs one text is predicted from."""
    if len(tokens) <= budget:
        return [tokens]
    if mode == "head":
        return [tokens[:budget]]
    if mode == "head-tail":
        head = budget // 4
        return [tokens[:head] + tokens[len(tokens) - (budget - head) :]]
    stride = max(1, budget // 2)
    starts = [*range(0, len(tokens) - budget, stride), len(tokens) - budget]
    return [tokens[s : s + budget] for s in starts]


def long_text_features(
    tokenizer: Any, texts: Sequence[str], *, max_length: int, mode: str
) -> tuple[dict[str, list[list[int]]], np.ndarray]:
    """(features of every window, the text each window belongs to)."""
    check_mode(mode)
    before, after = _specials(tokenizer)
    budget = max_length - len(before) - len(after)
    if budget < 2:
        raise InputError(f"max length {max_length} leaves no room for text between special tokens")
    ids, owner = [], []
    for row, tokens in enumerate(_ids(tokenizer, texts, special=False)):
        for piece in _pieces(tokens, budget, mode):
            ids.append([*before, *piece, *after])
            owner.append(row)
    return {"input_ids": ids, "token_type_ids": [[0] * len(x) for x in ids]}, np.asarray(owner)


def long_text_raw(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    task: str,
    max_length: int,
    mode: str,
    tta: bool = False,
    batch_size: int = 64,
) -> np.ndarray:
    """Raw predictions (as :func:`mlxbert_kaggle.training.predict_raw`) of texts of any
    length: ``mode`` as in the module doc, averaged with the plain prediction when ``tta``."""
    check_mode(mode, tta)
    features, owner = long_text_features(tokenizer, texts, max_length=max_length, mode=mode)
    outputs = predict_logits(model, features, batch_size=batch_size, pad_id=pad_id_of(tokenizer))
    pooled = np.zeros((len(texts), *outputs.shape[1:]), dtype=np.float64)
    np.add.at(pooled, owner, outputs)
    pooled /= np.bincount(owner, minlength=len(texts)).reshape(-1, *[1] * (outputs.ndim - 1))
    raw = raw_predictions(model.head, task, pooled.astype(np.float32))
    if not tta:
        return raw
    plain = predict_raw(
        model, tokenizer, list(texts), task=task, max_length=max_length, batch_size=batch_size
    )
    return (raw + plain) / 2


__all__ = ["MODES", "check_mode", "long_text_features", "long_text_raw"]
