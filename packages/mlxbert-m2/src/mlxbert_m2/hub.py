"""Published M2-BERT models and ``from_pretrained`` (registry name, hub id or folder)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlx.nn as nn

from .checkpoints import WEIGHT_FILES
from .config import M2BertConfig
from .loading import load_folder

TOKENIZER = (
    "bert-base-uncased"  # every released M2-BERT uses its vocabulary (30522, padded to 30528)
)


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
    """A published M2-BERT model: its hub repository, config and what it is for."""

    name: str
    hub_id: str
    params: str
    description: str
    config: dict[str, Any] = field(repr=False)
    tokenizer: str = TOKENIZER

    def m2_config(self) -> M2BertConfig:
        return M2BertConfig.from_dict(self.config)


def _retrieval(length: int, label: str) -> M2Preset:
    return M2Preset(
        name=f"m2-bert-80M-{label}-retrieval",
        hub_id=f"togethercomputer/m2-bert-80M-{label}-retrieval",
        params={2048: "81.4M", 8192: "86.8M", 32768: "108.6M"}[length],
        description=f"sentence embeddings for retrieval, inputs padded to {length} tokens",
        config=_config(768, length, gather_sentence_embeddings=True, alibi_starting_size=length),
    )


#: Registry of the released checkpoints. The GLUE-size models are the pre-trained (MLM)
#: Composer checkpoints the reference fine-tunes from; the retrieval models ship
#: ``pytorch_model.bin`` with their ``config.json``.
PRESETS: dict[str, M2Preset] = {
    p.name: p
    for p in (
        M2Preset(
            "m2-bert-80M",
            "danfu09/m2-bert-80m",
            "79.7M",
            "M2-BERT-base, 768 dim, 128 tokens (legacy hyena_training_additions)",
            _config(768, 128, hyena_training_additions=True),
        ),
        M2Preset(
            "m2-bert-110M",
            "danfu09/m2-bert-110m",
            "114.6M",
            "M2-BERT-base parameter-matched to BERT-base, 960 dim, 128 tokens",
            _config(960, 128),
        ),
        M2Preset(
            "m2-bert-260M",
            "danfu09/m2-bert-260m",
            "256.7M",
            "M2-BERT-large, 1536 dim, 128 tokens",
            _config(1536, 128),
        ),
        M2Preset(
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


def _download(repo_id: str) -> Path:
    """Snapshot of a hub repository's config and weights, from the cache when possible."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - core depends on huggingface_hub
        raise ImportError("loading from the Hugging Face Hub needs huggingface_hub") from exc
    patterns = ["config.json", "*.json", "*.txt", *WEIGHT_FILES, "*.pt"]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except Exception:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise FileNotFoundError(
            f"{repo_id} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; download "
            "it once online or pass a local folder"
        )
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:
        raise FileNotFoundError(
            f"could not download {repo_id!r} from the Hugging Face Hub ({exc}); check the "
            f"name, your network, or pass a local folder. Registry names: {', '.join(PRESETS)}"
        ) from exc


def resolve(name_or_path: str | Path) -> tuple[Path, dict[str, Any] | None]:
    """Folder and config (None: read the folder's config.json) for a name, hub id or path."""
    path = Path(name_or_path)
    if path.exists():
        if path.is_file():
            raise ValueError(
                f"{path} is a file; pass its folder (with config.json) and checkpoint={path.name}"
            )
        return path, None
    name = str(name_or_path)
    preset = PRESETS.get(name) or next((p for p in PRESETS.values() if p.hub_id == name), None)
    if preset is not None:
        folder = _download(preset.hub_id)
        has_config = (folder / "config.json").is_file()
        return folder, None if has_config else dict(preset.config)
    if name.count("/") != 1:
        raise FileNotFoundError(
            f"{name!r} is neither a folder, a registry name ({', '.join(PRESETS)}) nor a "
            "Hugging Face repo id (owner/name)"
        )
    return _download(name), None


def from_pretrained(
    name_or_path: str | Path,
    *,
    checkpoint: str | Path | None = None,
    num_labels: int | None = None,
    dtype: Any = None,
    task: str | None = None,
) -> nn.Module:
    """Load an M2-BERT model.

    ``name_or_path``: a registry name (see :data:`PRESETS`), a Hugging Face repo id, or a local
    folder with the reference ``config.json``. ``checkpoint`` picks the weight file (Composer
    ``.pt``, ``pytorch_model.bin`` or ``.safetensors``; default: the folder's
    ``model.safetensors``, ``pytorch_model.bin``, ``model.bin`` or single ``*.pt``).

    Returns the encoder (:class:`~mlxbert_m2.M2BertModel`), or a
    :class:`~mlxbert_m2.M2BertForSequenceClassification` when the file has a classifier or
    ``num_labels`` is given (a fresh head if the file has none). ``task="masked_lm"`` builds
    the MLM model. Weights are cast to ``dtype`` (default float32); the model is in eval mode.
    """
    folder, config = resolve(name_or_path)
    return load_folder(
        folder, config, checkpoint=checkpoint, task=task, num_labels=num_labels, dtype=dtype
    )


def load_tokenizer(name_or_path: str | Path):
    """The tokenizer for an M2-BERT model: the folder's own tokenizer files when it has them,
    otherwise ``bert-base-uncased`` (the vocabulary every released M2-BERT uses)."""
    from mlxbert_core import load_tokenizer as core_load_tokenizer

    path = Path(name_or_path)
    if path.is_dir() and any(
        (path / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")
    ):
        return core_load_tokenizer(path)
    return core_load_tokenizer(TOKENIZER)
