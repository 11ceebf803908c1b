"""How an architecture's reference sequence classifier is laid out.

Code above core builds a task head on an encoder, saves it so that transformers (or the
architecture's reference code) can load it, and reads such checkpoints back. What differs
between architectures -- which pooling the reference uses, what sits between the pooled vector
and the output layer, where dropout goes, the names of those weights in the checkpoint and the
prefix of the encoder's weights -- is a fact about the architecture, recorded here and attached
to its :class:`~mlxbert_core.registry.Architecture` as ``classifier``. Callers read the record;
they never test an architecture's name.

Bodies (the layers between the pooled vector ``x`` and the output layer):

* ``"pooler"``: ``tanh(dense(x))`` where ``dense`` is the encoder's own pretrained pooler
  (BERT's ``pooler.dense``); the head takes it over from the encoder.
* ``"dense_tanh"``: ``tanh(dense(x))`` with a fresh dense layer (NeoBERT).
* ``"dense_act_norm"``: ``norm(act(dense(x)))`` with a LayerNorm (ModernBERT).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

BODIES = ("pooler", "dense_tanh", "dense_act_norm")

#: Names of the output layer's weights in every reference classifier.
OUTPUT_KEYS = {"output.weight": "classifier.weight", "output.bias": "classifier.bias"}


def _no_options(config: Mapping[str, Any]) -> dict[str, Any]:
    return {}


def _cls_pooling(config: Mapping[str, Any]) -> str:
    return "cls"


@dataclass(frozen=True)
class ClassifierLayout:
    """One architecture's reference sequence-classification model, as data.

    hf_class:        the class name written to ``config.json``'s ``architectures`` so that
                     ``AutoModelForSequenceClassification`` loads a saved folder; ``None`` when
                     transformers has no such class (the folder is then mlxbert's own).
    encoder_prefix:  prefix of the encoder's weights in the classifier's checkpoint.
    body:            one of :data:`BODIES` (see the module doc).
    body_keys:       head parameter -> checkpoint key for the body's weights
                     (``dense.weight``, ``dense.bias``, ``norm.weight``, ``norm.bias``); keys of
                     weights a config leaves out (a bias-free dense layer) are simply absent
                     from the checkpoint.
    pooling:         ``pooling(config) -> "cls" | "mean"``: the reference's pooling.
    dropout_keys:    config keys tried in order for the classifier's dropout rate, then
                     ``dropout_default``.
    dropout_on_pooled: the reference also applies that dropout to the pooled vector before
                     the body (NeoBERT), not only before the output layer.
    body_options:    ``body_options(config) -> dict``: settings of the body read from the
                     config (ModernBERT: activation, dense bias, norm epsilon and bias).
    """

    hf_class: str | None
    encoder_prefix: str
    body: str
    body_keys: Mapping[str, str]
    pooling: Callable[[Mapping[str, Any]], str] = _cls_pooling
    dropout_keys: tuple[str, ...] = ("classifier_dropout", "hidden_dropout_prob")
    dropout_default: float = 0.1
    dropout_on_pooled: bool = False
    body_options: Callable[[Mapping[str, Any]], dict[str, Any]] = _no_options
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.body not in BODIES:
            raise ValueError(f"unknown classifier body {self.body!r}; use one of {BODIES}")

    def dropout(self, config: Mapping[str, Any]) -> float:
        """The reference classifier's dropout rate for ``config``."""
        for key in self.dropout_keys:
            value = config.get(key)
            if value is not None:
                return float(value)
        return float(self.dropout_default)

    def checkpoint_keys(self) -> dict[str, str]:
        """Head parameter -> checkpoint key, body and output layer together."""
        return {**self.body_keys, **OUTPUT_KEYS}


__all__ = ["BODIES", "OUTPUT_KEYS", "ClassifierLayout"]
