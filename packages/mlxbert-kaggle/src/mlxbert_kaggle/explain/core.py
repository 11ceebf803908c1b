"""``explain``: what a trained model looks at for one input.

Two views: the attention of a chosen layer and head (or the mean over heads) as a
token-by-token map, and one importance per token, from attention rollout (``rollout``) or
gradient × input on the token embeddings (``gradient``). Both are generic over
architectures; an encoder without attention probabilities (M2-BERT's Monarch mixer) has no
map and no rollout, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np

from mlxbert_glue import Classifier, open_task_model

from ..errors import InputError
from .attention import attention_maps, rollout, select
from .gradients import gradient_x_input

METHODS = ("rollout", "gradient")


@dataclass
class Explanation:
    """What :func:`explain` found for one input.

    tokens:      the input's tokens (special tokens included).
    attentions:  every layer's attention, (layers, heads, tokens, tokens), or None.
    attention:   the map shown: layer ``layer``, head ``head`` (None: mean over heads).
    importance:  one value per token, summing to 1 (``method``: rollout or gradient).
    prediction:  the model's answer, as ``Classifier`` gives it.
    """

    text: str
    pair: str | None
    tokens: list[str]
    special: list[bool]
    attentions: np.ndarray | None
    attention: np.ndarray | None
    layer: int
    head: int | None
    importance: np.ndarray
    method: str
    prediction: dict[str, Any]
    architecture: str
    output: int

    @property
    def has_attention(self) -> bool:
        return self.attentions is not None


def _no_attention(architecture: str) -> InputError:
    return InputError(
        f"this model's encoder ({architecture}) computes no attention probabilities, so "
        "there is no attention map or rollout to show; use --method gradient for token "
        "importances"
    )


def _check_position(maps: np.ndarray, layer: int, head: int | None) -> int:
    layers, heads = maps.shape[0], maps.shape[1]
    if not -layers <= layer < layers:
        raise InputError(
            f"--layer {layer}: the encoder has {layers} layers (0..{layers - 1}, or -1)"
        )
    if head is not None and not 0 <= head < heads:
        raise InputError(f"--head {head}: each layer has {heads} heads (0..{heads - 1})")
    return layer % layers


def explain(
    model_dir: str | Path,
    text: str,
    pair: str | None = None,
    *,
    layer: int = -1,
    head: int | None = None,
    method: str = "rollout",
    output: int | None = None,
) -> Explanation:
    """Attention map and token importances of a task-model folder for one text (or pair).

    ``layer`` / ``head``: the map shown (last layer, mean over heads by default);
    ``method``: ``rollout`` (attention through all layers) or ``gradient`` (gradient ×
    input on the token embeddings); ``output``: the logit explained (default: the predicted
    class; a single-output head's only output).
    """
    if method not in METHODS:
        raise InputError(f"--method {method!r}: choose rollout or gradient")
    if not text:
        raise InputError("give a text to explain")
    try:
        model, tokenizer, info = open_task_model(model_dir)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot open model {model_dir}: {exc}") from None
    encoded = tokenizer(
        [text], None if pair is None else [pair], max_length=info.tokens, return_tensors="mx"
    )
    inputs = {k: v.astype(mx.int32) for k, v in encoded.items()}
    ids = np.array(inputs["input_ids"])[0].tolist()
    tokens = [tokenizer.id_to_token(i) or "?" for i in ids]
    special_ids = set(tokenizer.all_special_ids)
    maps = attention_maps(model.encoder, inputs)
    if maps is None and method == "rollout":
        raise _no_attention(info.architecture)
    shown = None
    if maps is not None:
        layer = _check_position(maps, layer, head)
        shown = select(maps, layer, head)
    logits = np.array(model(**inputs).astype(mx.float32)).reshape(1, -1)
    prediction = Classifier(model, tokenizer, info).results(logits)[0]
    if output is None:
        output = int(np.argmax(logits[0])) if logits.shape[1] > 1 else 0
    elif not 0 <= output < logits.shape[1]:
        raise InputError(f"--output-index {output}: the model has {logits.shape[1]} outputs")
    if method == "rollout":
        assert maps is not None
        importance = rollout(maps, info.pooling)
    else:
        vocab = info.config.get("vocab_size") if isinstance(info.config, dict) else None
        importance = gradient_x_input(model, inputs, output, vocab)
    return Explanation(
        text=text,
        pair=pair,
        tokens=tokens,
        special=[i in special_ids for i in ids],
        attentions=maps,
        attention=shown,
        layer=layer,
        head=head,
        importance=importance,
        method=method,
        prediction=prediction,
        architecture=info.architecture,
        output=output,
    )


__all__ = ["METHODS", "Explanation", "explain"]
