"""Head registry keyed by task type, plus the default metrics per task.

@register_head("binary")
class BinaryClassificationHead(TaskHead): ...

head = create_head("binary", hidden_size=384, loss="focal")
same = head_from_config(head.get_config())
"""

from __future__ import annotations

import inspect
from typing import Any

_REGISTRY: dict[str, type] = {}
_ALIASES = {
    "time_series": "timeseries",
    "forecasting": "timeseries",
    "classification": "multiclass",
}

# Metrics reported per task, the first one being the usual selection metric (competition
# style: binary -> ROC AUC, multiclass -> accuracy, regression -> RMSE, ordinal -> QWK...).
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "f1", "accuracy", "log_loss"),
    "multiclass": ("accuracy", "f1_macro", "log_loss"),
    "multilabel": ("f1_micro", "f1_macro", "subset_accuracy", "hamming_loss"),
    "regression": ("rmse", "mae", "r2"),
    "ordinal": ("quadratic_weighted_kappa", "accuracy", "mae"),
    "timeseries": ("mape", "rmse", "directional_accuracy"),
}


def normalize_task(task: str) -> str:
    """Canonical task name: lower case, '-' and ' ' as '_', aliases resolved."""
    if not isinstance(task, str):
        raise ValueError(f"task must be a string, got {type(task).__name__}")
    key = task.strip().lower().replace("-", "_").replace(" ", "_")
    return _ALIASES.get(key, key)


def register_head(task: str):
    """Class decorator registering a head class under ``task`` (its ``task`` attribute is
    set to the canonical name). Registering a name twice is an error unless it is the same
    class (module reloads)."""
    key = normalize_task(task)

    def decorator(cls: type) -> type:
        existing = _REGISTRY.get(key)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"a head is already registered for task {key!r}: {existing.__name__}")
        cls.task = key
        _REGISTRY[key] = cls
        return cls

    return decorator


def available_tasks() -> tuple[str, ...]:
    """Every registered task name."""
    _ensure_builtin_heads()
    return tuple(sorted(_REGISTRY))


def default_head_for(task: str) -> type:
    """The head class registered for ``task``."""
    _ensure_builtin_heads()
    key = normalize_task(task)
    if key not in _REGISTRY:
        raise ValueError(
            f"unknown task {task!r}; known tasks: {', '.join(sorted(_REGISTRY))} "
            "(register new ones with @register_head)"
        )
    return _REGISTRY[key]


def default_metrics_for(task: str) -> tuple[str, ...]:
    """Metric names a head of ``task`` reports by default, the selection metric first."""
    key = normalize_task(task)
    if key in DEFAULT_METRICS:
        return DEFAULT_METRICS[key]
    cls = default_head_for(task)
    return tuple(getattr(cls, "default_metrics", ()))


def create_head(task: str, hidden_size: int, **kwargs: Any):
    """Build the head registered for ``task`` on features of width ``hidden_size``.

    Unknown keyword arguments raise ValueError listing the accepted ones.
    """
    cls = default_head_for(task)
    _check_kwargs(cls, kwargs)
    return cls(hidden_size, **kwargs)


def head_from_config(config: dict[str, Any]):
    """Rebuild a head (architecture and fitted state) from ``head.get_config()``."""
    if not isinstance(config, dict) or "task" not in config:
        raise ValueError("a head config is a dict with a 'task' key, as written by get_config()")
    return default_head_for(config["task"]).from_config(config)


def _check_kwargs(cls: type, kwargs: dict[str, Any]) -> None:
    accepted = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            params = inspect.signature(klass.__init__).parameters
            accepted |= {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
            if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                break
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(
            f"{cls.__name__} got unknown argument(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(accepted))}"
        )


def _ensure_builtin_heads() -> None:
    from . import heads  # noqa: F401  (importing registers the built-in heads)


__all__ = [
    "DEFAULT_METRICS",
    "available_tasks",
    "create_head",
    "default_head_for",
    "default_metrics_for",
    "head_from_config",
    "normalize_task",
    "register_head",
]
