"""M2-BERT configuration: the fields of the reference ``config.json`` that change the model."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class M2BertConfig:
    """Configuration of an M2-BERT (Monarch Mixer) encoder.

    Field names and defaults follow the reference ``configuration_bert.py`` / released
    ``config.json`` files, so ``M2BertConfig.from_dict(json.load(f))`` takes a reference config
    as is. Keys without an effect on the model (dropouts, optimizer settings, ``alibi_*``) are
    kept in :attr:`extra` so a config round-trips.
    """

    vocab_size: int = 30528
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    hidden_act: str = "gelu"
    # Sequence mixer (Monarch Mixer / Hyena implicit long convolution)
    monarch_mixer_sequence_mixing: bool = True
    long_conv_l_max: int = 128
    hyena_filter_order: int = 128
    hyena_emb_dim: int = 5
    hyena_w: float = 10.0
    hyena_w_mod: float = 1.0
    bidirectional: bool = True
    residual_long_conv: bool = False
    hyena_training_additions: bool = False
    # MLP
    use_glu_mlp: bool = True
    use_monarch_mlp: bool = False
    monarch_mlp_nblocks: int = 4
    # Embeddings and pooling
    use_positional_encodings: bool = False
    pool_all: bool = False
    use_cls_token: bool = False
    gather_sentence_embeddings: bool = False
    use_normalized_embeddings: bool = False
    sequence_token_planting: bool = False
    expand_positional_embeddings: bool = False
    attention_pooling: bool = False
    num_labels: int = 2
    hidden_dropout_prob: float = 0.1
    classifier_dropout: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.hidden_size % self.monarch_mlp_nblocks and self.use_monarch_mlp:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by monarch_mlp_nblocks "
                f"{self.monarch_mlp_nblocks}; no released M2-BERT config needs padding, so "
                "this port does not implement it"
            )
        if self.use_monarch_mlp and self.intermediate_size % self.monarch_mlp_nblocks:
            raise ValueError(
                f"intermediate_size {self.intermediate_size} is not divisible by "
                f"monarch_mlp_nblocks {self.monarch_mlp_nblocks}"
            )
        if not self.use_glu_mlp:
            raise ValueError(
                "use_glu_mlp=false is not supported: every M2-BERT config uses the GLU MLP"
            )
        if self.attention_pooling:
            raise ValueError(
                "attention_pooling=true (AttentionPooler) is not supported: no released "
                "M2-BERT model uses it"
            )
        if self.hyena_emb_dim < 3 or self.hyena_emb_dim % 2 == 0:
            raise ValueError(f"hyena_emb_dim must be odd and >= 3, got {self.hyena_emb_dim}")

    @property
    def num_positions(self) -> int:
        """Length of the filter's positional features (``z``, ``t``)."""
        return self.long_conv_l_max

    @property
    def max_length(self) -> int:
        """Longest input the model accepts."""
        if self.use_positional_encodings:
            return min(self.long_conv_l_max, self.max_position_embeddings)
        return self.long_conv_l_max

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> M2BertConfig:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in config.items() if k in names}
        extra = {k: v for k, v in config.items() if k not in names}
        if "id2label" in config and "num_labels" not in config:
            known["num_labels"] = len(config["id2label"])
        for k in ("hyena_w", "hyena_w_mod", "layer_norm_eps"):
            if k in known:
                known[k] = float(known[k])
        return cls(**known, extra=extra)

    @classmethod
    def from_file(cls, path: str | Path) -> M2BertConfig:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        extra = out.pop("extra")
        return {**extra, **out, "model_type": extra.get("model_type", "bert")}
