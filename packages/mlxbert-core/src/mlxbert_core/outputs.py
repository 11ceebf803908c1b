"""Output containers shared by every encoder and task model."""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx


@dataclass
class EncoderOutput:
    """What every encoder returns, whatever its architecture.

    ``hidden_states`` follows transformers: the embedding output first, then one entry per
    layer (architectures whose reference convention differs document it on their class).
    ``attentions`` holds one ``[batch, heads, query, key]`` probability array per layer.
    """

    last_hidden_state: mx.array
    pooler_output: mx.array | None = None
    hidden_states: tuple[mx.array, ...] | None = None
    attentions: tuple[mx.array, ...] | None = None


@dataclass
class MaskedLMOutput:
    logits: mx.array
    hidden_states: tuple[mx.array, ...] | None = None
    attentions: tuple[mx.array, ...] | None = None


@dataclass
class SequenceClassifierOutput:
    logits: mx.array
    pooler_output: mx.array | None = None
    hidden_states: tuple[mx.array, ...] | None = None
    attentions: tuple[mx.array, ...] | None = None
