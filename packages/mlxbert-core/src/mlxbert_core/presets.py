"""Named model presets: one table of short names for published checkpoints.

Each architecture lists its own presets on its :class:`~mlxbert_core.registry.Architecture`
record (``presets``), so a plugin such as mlxbert-m2 adds its models to the same table; this
module gathers them. ``from_pretrained("all-minilm-l6-v2")`` is the same as passing the hub id
(or a local copy of the files, where the preset knows one). Anything that is not a preset name
is a local folder or a hub id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Preset name prefixes of architectures that come as plugins, for a helpful error when the
#: plugin is not installed.
PLUGIN_PRESET_PREFIXES = {"m2-bert": "mlxbert-m2"}


@dataclass(frozen=True)
class ModelPreset:
    """A named checkpoint and its defaults.

    name:          the short name (lower case).
    hub_id:        the Hugging Face repository.
    architecture:  the registry name of its architecture.
    max_length:    the longest input it was trained for (tokens).
    learning_rate: a good full fine-tuning learning rate when no recipe says otherwise.
    description:   one line for listings.
    local:         optional callable returning a local folder with the same files (tried
                   before the hub).
    checkpoint:    for folders that hold several checkpoints, the one this preset means.
    settings:      anything else the architecture needs to know about this checkpoint.
                   Core reads three keys: ``"config"``, the ``config.json`` contents to use
                   when the folder has none (M2-BERT's Composer checkpoints ship without
                   one); ``"files"``, extra file patterns to fetch from the hub (such as
                   ``"*.pt"``); ``"tokenizer"``, where ``load_tokenizer`` finds the
                   tokenizer when the checkpoint's repository has none.
    """

    name: str
    hub_id: str
    architecture: str
    max_length: int
    learning_rate: float
    description: str
    local: Callable[[], str | None] | None = None
    checkpoint: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def resolve(self) -> str:
        """The local folder when available, else the hub id."""
        if self.local is not None:
            found = self.local()
            if found:
                return found
        return self.hub_id


class _Presets(Mapping[str, ModelPreset]):
    """Every registered architecture's presets by name (read when first used, so that
    plugins found through entry points are included)."""

    def _table(self) -> dict[str, ModelPreset]:
        from .registry import available_architectures

        table: dict[str, ModelPreset] = {}
        for arch in available_architectures().values():
            for preset in arch.presets:
                table.setdefault(preset.name.lower(), preset)
        return table

    def __getitem__(self, name: str) -> ModelPreset:
        return self._table()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return f"MODELS({', '.join(self._table())})"


#: Short name -> preset, over every installed architecture.
MODELS: Mapping[str, ModelPreset] = _Presets()


def get_preset(name_or_path: Any) -> ModelPreset | None:
    """The preset called ``name_or_path`` (case-insensitive), or None."""
    return MODELS.get(str(name_or_path).strip().lower())


def preset_for_hub_id(hub_id: Any) -> ModelPreset | None:
    """The preset of the hub repository ``hub_id`` (case-insensitive), or None: a hub id given
    instead of a preset name still gets the preset's ``settings``."""
    key = str(hub_id).strip().lower()
    return next((p for p in MODELS.values() if p.hub_id.lower() == key), None)


def missing_plugin(name_or_path: Any) -> str | None:
    """The package to install when ``name_or_path`` names a preset of a plugin that is not
    installed, else None."""
    key = str(name_or_path).strip().lower()
    if get_preset(key) is not None:
        return None
    for prefix, package in PLUGIN_PRESET_PREFIXES.items():
        if key.startswith(prefix):
            return package
    return None


def resolve_model_source(name_or_path: Any) -> tuple[str, ModelPreset | None]:
    """(what to load, preset or None): preset names become a local folder or hub id."""
    preset = get_preset(name_or_path)
    if preset is None:
        return str(name_or_path), None
    return preset.resolve(), preset


__all__ = [
    "MODELS",
    "ModelPreset",
    "get_preset",
    "missing_plugin",
    "preset_for_hub_id",
    "resolve_model_source",
]
