"""The served models: a classifier (``Classifier``) or a plain encoder, what each can answer,
and how a batch is computed.

A model is opened with one call to :meth:`Classifier.from_pretrained`, so every source it
opens is served; a source that is not a classifier (a plain encoder, a preset name such as
``all-minilm-l6-v2``) is opened with :func:`mlxbert_core.from_pretrained` and serves
embeddings and tokenization only. A classifier embeds with its own encoder.

Thread rule: :meth:`ServedModel.predict` and :meth:`ServedModel.embed` run MLX and are called
on the model worker only; the token counting and ``/tokenize`` of the event loop use a copy
of the tokenizer (a tokenizer call switches its truncation on and off, so one tokenizer must
not be used by two threads at once).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

from mlxbert_core import embed as core_embed
from mlxbert_core import from_pretrained, load_tokenizer

from ..task_model import Classifier
from ..task_model.record import META_FILE
from .errors import ServeConfigError
from .settings import ModelSpec

CLASSIFIER = "classifier"
EMBEDDER = "embedder"


def _embedding_max_length(encoder: Any, tokenizer: Any) -> int | None:
    """The truncation length ``mlxbert_core.embed`` uses by default: sentence-transformers'
    ``max_seq_length``, else the tokenizer's limit, else the encoder's positions."""
    config = getattr(encoder, "config", None)
    for value in (
        getattr(tokenizer, "embedding_max_length", None),
        getattr(tokenizer, "model_max_length", None),
        getattr(config, "max_position_embeddings", None),
    ):
        if isinstance(value, int) and value > 0:
            return value
    return None


def _dtype_name(module: Any) -> str:
    for _, value in tree_flatten(module.parameters()):
        if mx.issubdtype(value.dtype, mx.floating):
            return str(value.dtype).replace("mlx.core.", "")
    return "unknown"


@dataclass
class ServedModel:
    """One served model. ``classifier`` is None for an embedding-only model."""

    name: str
    source: str
    encoder: Any
    tokenizer: Any
    classifier: Classifier | None = None
    note: str | None = None
    dtype: str = "float32"
    #: the tokenizer copy used on the event loop (token counts, /tokenize)
    loop_tokenizer: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.loop_tokenizer is None:
            self.loop_tokenizer = copy.deepcopy(self.tokenizer)
        # A server's forwards come in every batch size and length. On a CPU, where widths are
        # not rounded, the compiled forward would trace (and keep) one graph per shape; the
        # eager forward with one batch slice per core keeps every core busy without tracing
        # (docs/BENCHMARKS.md, Serving).
        if mx.default_device().type == mx.DeviceType.cpu and callable(
            getattr(self.encoder, "compile_forward", None)
        ):
            self.encoder.compile_forward(False, per_core=True)
        self.embed_max_length = _embedding_max_length(self.encoder, self.tokenizer)

    # -- what it is -------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return CLASSIFIER if self.classifier is not None else EMBEDDER

    @property
    def packs_batches(self) -> bool:
        """Whether the encoder computes a batch's real tokens only (BERT, ModernBERT,
        NeoBERT on a CPU): then a forward's padding costs next to nothing, and the batcher need not avoid
        it."""
        return bool(getattr(self.encoder, "packs_batches", False))

    @property
    def max_length(self) -> int | None:
        """Tokens per input of ``/predict`` (the classifier's own maximum)."""
        return self.classifier.max_length if self.classifier is not None else None

    @property
    def dimension(self) -> int | None:
        value = getattr(getattr(self.encoder, "config", None), "hidden_size", None)
        return int(value) if isinstance(value, int) else None

    def describe(self, pooling: str) -> dict[str, Any]:
        """This model's part of ``/info``."""
        clf = self.classifier
        return {
            "name": self.name,
            "source": self.source,
            "kind": self.kind,
            "task": clf.info.task if clf is not None else None,
            "head": clf.task_type if clf is not None else None,
            "prediction": clf.kind if clf is not None else None,
            "labels": list(clf.labels) if clf is not None and clf.labels else None,
            "max_length": self.max_length,
            "embedding_max_length": self.embed_max_length,
            "dimension": self.dimension,
            "pooling": pooling,
            "dtype": self.dtype,
            "note": self.note,
        }

    # -- on the event loop ------------------------------------------------------------------
    def count_tokens(self, texts: Sequence[str], pairs: Sequence[str | None] | None) -> list[int]:
        """Tokens of each input (or pair) before truncation, special tokens included."""
        backend = getattr(self.loop_tokenizer, "backend", None)
        if backend is not None and backend.truncation is None and backend.padding is None:
            inputs = list(texts) if pairs is None else [
                text if pair is None else (text, pair) for text, pair in zip(texts, pairs)
            ]  # fmt: skip
            return [len(e.ids) for e in backend.encode_batch(inputs, add_special_tokens=True)]
        encoded = self.loop_tokenizer(
            list(texts),
            None if pairs is None else list(pairs),
            truncation=False,
            padding=False,
            return_tensors=None,
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def tokens(self, texts: Sequence[str], *, add_special_tokens: bool) -> list[list[dict]]:
        """``/tokenize``: each input's tokens with their ids and character spans."""
        backend = self.loop_tokenizer.backend
        out = []
        for text, enc in zip(
            texts, backend.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        ):
            rows = []
            for token_id, token, (start, stop), special in zip(
                enc.ids, enc.tokens, enc.offsets, enc.special_tokens_mask
            ):
                if special:
                    rows.append(
                        {
                            "id": token_id,
                            "text": token,
                            "special": True,
                            "start": None,
                            "stop": None,
                        }
                    )
                else:
                    rows.append(
                        {
                            "id": token_id,
                            "text": text[start:stop],
                            "special": False,
                            "start": start,
                            "stop": stop,
                        }
                    )
            out.append(rows)
        return out

    # -- on the model worker ----------------------------------------------------------------
    def predict(self, texts: list[str], pairs: list[str] | None) -> list[dict[str, Any]]:
        """``Classifier.results(Classifier.logits(...))``: the same answers as ``Classifier``,
        for the whole batch in one forward."""
        assert self.classifier is not None
        logits = self.classifier.logits(texts, pairs, batch_size=len(texts))
        return self.classifier.results(logits)

    def embed(self, texts: list[str], *, normalize: bool, pooling: str) -> np.ndarray:
        """``mlxbert_core.embed`` of the batch in one forward."""
        return core_embed(
            self.encoder,
            self.tokenizer,
            texts,
            pooling=pooling,
            normalize=normalize,
            batch_size=len(texts),
            max_length=self.embed_max_length,
            progress=False,
        )


def _is_task_model_folder(source: str) -> bool:
    return (Path(source) / META_FILE).is_file()


def load_model(spec: ModelSpec, *, dtype: str | None = None) -> ServedModel:
    """Open ``spec.source`` as a classifier, else as a plain encoder (embeddings only).

    Raises :class:`ServeConfigError` naming the model and what went wrong either way.
    """
    try:
        clf = Classifier.from_pretrained(spec.source, dtype=dtype)
    except Exception as exc:  # any source Classifier cannot open may still be an encoder
        if _is_task_model_folder(spec.source):
            raise ServeConfigError(
                f"--model {spec.name}: cannot open the task-model folder {spec.source}: {exc}"
            ) from None
        as_classifier = f"{type(exc).__name__}: {exc}"
    else:
        encoder = clf.model.encoder
        return ServedModel(
            spec.name, spec.source, encoder, clf.tokenizer, clf, dtype=_dtype_name(clf.model)
        )
    try:
        encoder = from_pretrained(spec.source, dtype=dtype)
        tokenizer = load_tokenizer(spec.source)
    except Exception as exc:
        raise ServeConfigError(
            f"--model {spec.name}: cannot open {spec.source!r} as a classifier ({as_classifier}) "
            f"nor as an encoder ({type(exc).__name__}: {exc}); give a trained model folder, "
            "an encoder folder, a preset name or a hub id"
        ) from None
    encoder.eval()
    return ServedModel(
        spec.name,
        spec.source,
        encoder,
        tokenizer,
        note=f"serving embeddings and tokenization only (as a classifier: {as_classifier})",
        dtype=_dtype_name(encoder),
    )


__all__ = ["CLASSIFIER", "EMBEDDER", "ServedModel", "load_model"]
