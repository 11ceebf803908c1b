"""The published M2-BERT checkpoints: one table (:data:`PRESETS`), from which the
architecture's entries in ``mlxbert_core.MODELS`` are made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlxbert_core.presets import ModelPreset

from .config import M2BertConfig
from .model import NAME

TOKENIZER = (
    "bert-base-uncased"  # every released M2-BERT uses its vocabulary (30522, padded to 30528)
)
#: Fine-tuning learning rate of the presets: the reference GLUE recipes' MNLI rate for every
#: size (the retrieval models have no fine-tuning recipe; the same rate is a starting point).
LEARNING_RATE = 5e-5


def _config(hidden: int, length: int, **overrides: Any) -> dict[str, Any]:
    """The shared fields of every released M2-BERT config (12 layers, bidirectional, residual
    long conv, Monarch GLU MLP with 4 blocks, filter order 128, emb dim 5, w 10)."""
    base = {
        "model_type": "bert",
        "architectures": ["BertForSequenceClassification"],
        "vocab_size": 30528,
        "hidden_size": hidden,
        "intermediate_size": 4 * hidden,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "max_position_embeddings": length,
        "long_conv_l_max": length,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "monarch_mixer_sequence_mixing": True,
        "bidirectional": True,
        "residual_long_conv": True,
        "use_glu_mlp": True,
        "use_monarch_mlp": True,
        "monarch_mlp_nblocks": 4,
        "use_positional_encodings": True,
        "hyena_filter_order": 128,
        "hyena_emb_dim": 5,
        "hyena_w": 10,
        "hyena_w_mod": 1,
        "hyena_training_additions": False,
        "pool_all": False,
        "use_cls_token": False,
        "gather_sentence_embeddings": False,
        "sequence_token_planting": False,
        "expand_positional_embeddings": False,
        "use_normalized_embeddings": False,
        "attention_pooling": False,
        "use_flash_fft": False,
        "use_flash_mm": False,
    }
    base.update(overrides)
    return base


@dataclass(frozen=True)
class M2Preset:
    """A published M2-BERT model: its hub repository, config and what it is for.

    ``files``: hub file patterns its weights need beyond the usual ones (the GLUE-size
    repositories hold one Composer ``.pt`` checkpoint and no ``config.json``).
    """

    name: str
    hub_id: str
    params: str
    description: str
    config: dict[str, Any] = field(repr=False)
    tokenizer: str = TOKENIZER
    learning_rate: float = LEARNING_RATE
    files: tuple[str, ...] = ()

    def m2_config(self) -> M2BertConfig:
        return M2BertConfig.from_dict(self.config)

    @property
    def max_length(self) -> int:
        """The sequence length it was trained for (also its longest input)."""
        return self.m2_config().max_length

    def model_preset(self) -> ModelPreset:
        """This model as an entry of ``mlxbert_core.MODELS`` (name in lower case); the
        settings carry the reference config (for repositories without ``config.json``), the
        tokenizer and the extra files to fetch."""
        return ModelPreset(
            name=self.name.lower(),
            hub_id=self.hub_id,
            architecture=NAME,
            max_length=self.max_length,
            learning_rate=self.learning_rate,
            description=f"{self.description} ({self.params})",
            settings={"config": self.config, "tokenizer": self.tokenizer, "files": self.files},
        )


def _composer(name: str, hub_id: str, params: str, description: str, config: dict) -> M2Preset:
    return M2Preset(name, hub_id, params, description, config, files=("*.pt",))


def _retrieval(length: int, label: str) -> M2Preset:
    return M2Preset(
        name=f"m2-bert-80M-{label}-retrieval",
        hub_id=f"togethercomputer/m2-bert-80M-{label}-retrieval",
        params={2048: "81.4M", 8192: "86.8M", 32768: "108.6M"}[length],
        description=f"sentence embeddings for retrieval, inputs padded to {length} tokens",
        config=_config(768, length, gather_sentence_embeddings=True, alibi_starting_size=length),
    )


#: Registry of the released checkpoints. The GLUE-size models are the pre-trained (MLM)
#: Composer checkpoints the reference fine-tunes from (hub ids spelled as the repositories
#: are: 80M and 110M upper case, 260m and 341m lower case); the retrieval models ship
#: ``pytorch_model.bin`` with their ``config.json``.
PRESETS: dict[str, M2Preset] = {
    p.name: p
    for p in (
        _composer(
            "m2-bert-80M",
            "danfu09/m2-bert-80M",
            "79.7M",
            "M2-BERT-base, 768 dim, 128 tokens (legacy hyena_training_additions)",
            _config(768, 128, hyena_training_additions=True),
        ),
        _composer(
            "m2-bert-110M",
            "danfu09/m2-bert-110M",
            "114.6M",
            "M2-BERT-base parameter-matched to BERT-base, 960 dim, 128 tokens",
            _config(960, 128),
        ),
        _composer(
            "m2-bert-260M",
            "danfu09/m2-bert-260m",
            "256.7M",
            "M2-BERT-large, 1536 dim, 128 tokens",
            _config(1536, 128),
        ),
        _composer(
            "m2-bert-341M",
            "danfu09/m2-bert-341m",
            "337.8M",
            "M2-BERT-large, 1792 dim, 128 tokens",
            _config(1792, 128),
        ),
        _retrieval(2048, "2k"),
        _retrieval(8192, "8k"),
        _retrieval(32768, "32k"),
    )
}

#: The same models as entries of ``mlxbert_core.MODELS`` (``m2-bert-80m``, ...).
MODEL_PRESETS: tuple[ModelPreset, ...] = tuple(p.model_preset() for p in PRESETS.values())

__all__ = ["LEARNING_RATE", "MODEL_PRESETS", "PRESETS", "TOKENIZER", "M2Preset"]
