"""The part of a task model after the encoder: pooling, the head's body and output layer,
and the head type's last step (found by the head's registered type)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx
import numpy as np

from ..errors import ExportError
from ..ops import EncoderGraph, Ops
from ._weights import dense, norm

HeadTail = Callable[[Any, Any, Ops], Any]


def _identity(head: Any, outputs: Any, ops: Ops) -> Any:
    return outputs


def _regression(head: Any, outputs: Any, ops: Ops) -> Any:
    if head.get_config().get("uncertainty"):
        return ops.unflatten_last(outputs, (int(head.num_targets), 2))
    return outputs


def _ordinal(head: Any, outputs: Any, ops: Ops) -> Any:
    cuts = np.array(head.thresholds().astype(mx.float32))
    return ops.subtract_from(cuts, outputs, "head.thresholds")


#: Head type -> its step after the output layer (the output layer's values are what the
#: head's ``__call__`` returns for these types, up to that step; a binary head's single
#: logit stays a (batch, 1) column, as ``predict_logits`` returns it).
HEAD_TAILS: dict[str, HeadTail] = {
    "binary": _identity,
    "multiclass": _identity,
    "multilabel": _identity,
    "regression": _regression,
    "ordinal": _ordinal,
}

#: Poolings of mlxbert-heads' ``Pooler`` with a graph form.
POOLINGS = ("cls", "mean", "max", "attention", "weighted_layer")


def register_head_tail(head_type: str, tail: HeadTail) -> HeadTail:
    """Make heads registered as ``head_type`` exportable: ``tail(head, outputs, ops)``
    turns the output layer's values into what the head's ``__call__`` returns."""
    HEAD_TAILS[head_type] = tail
    return tail


def check_task_model(model: Any) -> None:
    """Raise :class:`ExportError` when the head or pooling has no graph form."""
    head = model.head
    kind = type(head).task
    if head.extra_inputs:
        raise ExportError(
            f"a {kind} head takes extra inputs ({', '.join(head.extra_inputs)}) besides the "
            "text, which an exported graph does not have"
        )
    if kind not in HEAD_TAILS:
        raise ExportError(
            f"the {kind!r} head has no graph form; exportable heads: "
            f"{', '.join(sorted(HEAD_TAILS))} (mlxbert_glue.export.register_head_tail adds one)"
        )
    if model.pooler.mode not in POOLINGS:
        raise ExportError(f"pooling {model.pooler.mode!r} has no graph form")


def write_pooling(pooler: Any, graph: EncoderGraph, ops: Ops) -> Any:
    """mlxbert-heads' ``Pooler`` (the task model's pooling)."""
    x, tokens = graph.last_hidden_state, graph.tokens
    mode = pooler.mode
    if mode == "cls":
        return ops.first_token(x)
    if mode == "mean":
        return ops.masked_mean(x, tokens, 1.0)
    if mode == "max":
        return ops.masked_max(x, tokens, zero_empty=True)
    if mode == "attention":
        return ops.attention_pool(x, tokens, *dense(pooler.scorer))
    logits = np.array(pooler.layer_logits.astype(mx.float32))
    return ops.masked_mean(ops.softmax_mix(graph.hidden_states, logits), tokens, 1.0)


def write_head(head: Any, features: Any, ops: Ops) -> Any:
    """Body (linear, activation, optional LayerNorm per layer), output layer, tail."""
    activation = head.get_config().get("activation", "gelu")
    norms = head.get("norms") or [None] * len(head.layers)
    x = features
    for i, (layer, layer_norm) in enumerate(zip(head.layers, norms)):
        x = ops.act(ops.linear(x, *dense(layer), f"head.layers.{i}"), activation)
        if layer_norm is not None:
            x = ops.layer_norm(x, *norm(layer_norm), layer_norm.eps, f"head.norms.{i}")
    out = ops.linear(x, *dense(head.output), "head.output")
    return HEAD_TAILS[type(head).task](head, out, ops)


def write_sentence_embedding(graph: EncoderGraph, pooling: str, normalize: bool, ops: Ops):
    """``mlxbert_core.embed``'s pooling (``mean``, ``cls``, ``max``, ``pooler``) and L2
    normalisation."""
    x, tokens = graph.last_hidden_state, graph.tokens
    if pooling == "mean":
        pooled = ops.masked_mean(x, tokens, 1e-9)
    elif pooling == "cls":
        pooled = ops.first_token(x)
    elif pooling == "max":
        pooled = ops.masked_max(x, tokens, zero_empty=False)
    elif pooling == "pooler":
        if graph.pooler_output is None:
            raise ExportError("pooling 'pooler' needs an encoder with a pooler (BERT's)")
        pooled = graph.pooler_output
    else:
        raise ExportError(f"unknown pooling {pooling!r}; use mean, cls, max or pooler")
    return ops.l2_normalize(pooled, 1e-12) if normalize else pooled


__all__ = [
    "HEAD_TAILS",
    "POOLINGS",
    "check_task_model",
    "register_head_tail",
    "write_head",
    "write_pooling",
    "write_sentence_embedding",
]
