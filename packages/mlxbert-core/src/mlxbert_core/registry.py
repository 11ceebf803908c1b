"""Architecture registry: which code builds which checkpoint.

Built-in architectures (bert, modernbert, neobert) and plugins (for example mlxbert-m2) are
all found the same way, through the ``mlxbert.architectures`` entry-point group, so core never
imports a plugin. An entry point names an :class:`Architecture` object.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from .classifier_layout import ClassifierLayout
from .presets import ModelPreset

ENTRY_POINT_GROUP = "mlxbert.architectures"

#: Tasks a model can be built for. ``encoder`` is the bare model.
TASKS = ("encoder", "masked_lm", "sequence_classification")


@dataclass(frozen=True)
class Architecture:
    """How to build and load one family of checkpoints.

    name:      registry key, normally the config's ``model_type``.
    build:     ``build(config: dict, task: str) -> nn.Module``; ``task`` is one of :data:`TASKS`.
    sanitize:  ``sanitize(weights, model) -> (weights, notes)`` maps checkpoint keys to the
               model's parameter names, drops keys that are known to be irrelevant for the
               model (each drop explained in ``notes``) and leaves everything else in place,
               so the strict check can report it.
    matches:   ``matches(config) -> bool``; default: ``config["model_type"] == name``.
    priority:  when several architectures match a config, the highest priority wins (a plugin
               that claims a subset of another model type, such as M2-BERT's ``bert`` configs
               with ``monarch_mixer_sequence_mixing``, uses a higher priority).
    load:      optional ``load(folder: Path, config: dict, *, task, dtype, **kwargs)`` that
               replaces the generic weight loading (for checkpoint formats only the plugin knows).
    classifier: the layout of the architecture's reference sequence classifier
               (:class:`~mlxbert_core.classifier_layout.ClassifierLayout`): what code above
               core needs to build, save and read classification models without testing names.
    presets:   the published checkpoints of this architecture
               (:class:`~mlxbert_core.presets.ModelPreset`), gathered in ``mlxbert_core.MODELS``.
    """

    name: str
    build: Callable[[dict[str, Any], str], nn.Module]
    sanitize: Callable[[dict[str, mx.array], nn.Module], tuple[dict[str, mx.array], list[str]]]
    matches: Callable[[dict[str, Any]], bool] | None = None
    priority: int = 0
    load: Callable[..., nn.Module] | None = None
    description: str = ""
    classifier: ClassifierLayout | None = None
    presets: tuple[ModelPreset, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def claims(self, config: dict[str, Any]) -> bool:
        if self.matches is not None:
            return bool(self.matches(config))
        return config.get("model_type") == self.name


_REGISTRY: dict[str, Architecture] = {}
_ENTRY_POINTS_LOADED = False


def register_architecture(arch: Architecture, *, overwrite: bool = False) -> Architecture:
    """Register an architecture (for code that does not ship an entry point, e.g. tests)."""
    if arch.name in _REGISTRY and not overwrite and _REGISTRY[arch.name] is not arch:
        raise ValueError(f"architecture {arch.name!r} is already registered")
    _REGISTRY[arch.name] = arch
    return arch


#: Architectures shipped with core. They are registered directly as well as through entry
#: points, so they work when the packages are used from source without being installed.
_BUILTIN = (
    "mlxbert_core.models.bert:ARCHITECTURE",
    "mlxbert_core.models.modernbert:ARCHITECTURE",
    "mlxbert_core.models.neobert:ARCHITECTURE",
)

#: Extra plugins to register without an installed entry point ("module:attribute", separated
#: by commas), e.g. ``MLXBERT_PLUGINS=mlxbert_m2.registry:ARCHITECTURE`` for a source checkout.
PLUGINS_ENV = "MLXBERT_PLUGINS"


def _load_object(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    obj = importlib.import_module(module_name.strip())
    for part in attr.strip().split(".") if attr.strip() else ():
        obj = getattr(obj, part)
    return obj


def _load_entry_points() -> None:
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for spec in _BUILTIN:
        arch = _load_object(spec)
        _REGISTRY.setdefault(arch.name, arch)
    extra = [s for s in os.environ.get(PLUGINS_ENV, "").split(",") if s.strip()]
    sources = [(spec.strip(), lambda spec=spec: _load_object(spec)) for spec in extra]
    sources += [(ep.name, ep.load) for ep in entry_points(group=ENTRY_POINT_GROUP)]
    for name, load in sources:
        if name in _REGISTRY:
            continue
        try:
            arch = load()
        except Exception as exc:  # a broken plugin must not break the built-in models
            import warnings

            warnings.warn(
                f"mlxbert: could not load architecture plugin {name!r}: {exc}",
                stacklevel=2,
            )
            continue
        if not isinstance(arch, Architecture):
            raise TypeError(f"plugin {name!r} must name an Architecture, got {type(arch)}")
        _REGISTRY.setdefault(arch.name, arch)


def available_architectures() -> dict[str, Architecture]:
    """All registered architectures, plugins included, by name."""
    _load_entry_points()
    return dict(_REGISTRY)


def get_architecture(name: str) -> Architecture:
    archs = available_architectures()
    if name not in archs:
        raise KeyError(f"unknown architecture {name!r}; available: {', '.join(sorted(archs))}")
    return archs[name]


def resolve_architecture(
    config: dict[str, Any], source: str | Path = "config.json"
) -> Architecture:
    """Pick the architecture for a config, or explain clearly why none fits."""
    archs = available_architectures()
    candidates = [a for a in archs.values() if a.claims(config)]
    if not candidates:
        model_type = config.get("model_type")
        hint = ""
        if model_type is None:
            hint = " The config has no 'model_type' field."
        raise ValueError(
            f"{source}: unsupported model_type {model_type!r}.{hint} Supported: "
            f"{', '.join(sorted(archs))}. Other architectures come from plugins "
            f"(for example `pip install mlxbert-m2` for M2-BERT)."
        )
    return max(candidates, key=lambda a: a.priority)
