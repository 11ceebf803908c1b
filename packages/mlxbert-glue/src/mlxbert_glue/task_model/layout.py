"""A task head shaped like the architecture's reference classifier, and its checkpoint names.

The facts come from the architecture's :class:`mlxbert_core.ClassifierLayout` (core's registry
record); this module turns them into head settings and into the mapping between head
parameters and checkpoint keys. Nothing here knows an architecture by name.

A one-logit binary head is written as the equivalent two-logit classifier ``[0, z]`` (its
softmax is the sigmoid); a regression head's target standardisation is folded into the output
layer (``y = std * z + mean``), since the reference regression heads output raw values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx
from mlx.utils import tree_flatten

from mlxbert_core import ClassifierLayout
from mlxbert_core.registry import available_architectures
from mlxbert_heads import ACTIVATIONS, default_head_for

from .record import TaskModelInfo

#: Head types whose reference classifier is ``AutoModelForSequenceClassification``'s.
REFERENCE_HEAD_TASKS = ("binary", "multiclass", "multilabel", "regression")

#: Where a body role lives in a task head (``mlxbert_heads.TaskHead``'s parameter names).
_ROLE_PARAMS = {"dense": "layers.0", "norm": "norms.0", "output": "output"}


def classifier_layout(architecture: str) -> ClassifierLayout | None:
    """The reference classifier layout of a registered architecture, or None."""
    arch = available_architectures().get(architecture)
    return None if arch is None else arch.classifier


def _head_param(role_key: str) -> str:
    role, _, leaf = role_key.partition(".")
    return f"{_ROLE_PARAMS[role]}.{leaf}"


@dataclass
class HeadPlan:
    """How to build a new head on an encoder.

    pooling:        the pooling ahead of the head.
    pooled_dropout: dropout on the pooled vector (in ``TaskModel``).
    head_kwargs:    body settings for ``create_head``.
    takes_pooler:   the head's dense layer starts from the encoder's pretrained pooler.
    """

    pooling: str
    pooled_dropout: float
    head_kwargs: dict[str, Any] = field(default_factory=dict)
    takes_pooler: bool = False


def plan_head(
    layout: ClassifierLayout | None, config: Mapping[str, Any], hidden: int, pooling: str | None
) -> HeadPlan:
    """The head the reference classifier has (``pooling`` None or ``"auto"``), or a plain
    output layer on the given pooling."""
    if pooling not in (None, "auto", "pooler") or layout is None:
        rate = float(config.get("hidden_dropout_prob") or 0.1)
        return HeadPlan(
            pooling=pooling if pooling not in (None, "auto") else "cls", pooled_dropout=rate
        )
    rate = layout.dropout(config)
    kwargs: dict[str, Any] = {"hidden_dims": [hidden], "dropout": rate, "activation": "tanh"}
    if layout.body == "dense_act_norm":
        options = layout.body_options(config)
        act = str(options.get("activation", "gelu"))
        kwargs |= {
            "activation": act if act in ACTIVATIONS else "gelu",
            "body_bias": bool(options.get("dense_bias", True)),
            "body_norm": {
                "eps": float(options.get("norm_eps", 1e-5)),
                "bias": bool(options.get("norm_bias", True)),
            },
        }
    return HeadPlan(
        pooling=layout.pooling(config),
        pooled_dropout=rate if layout.dropout_on_pooled else 0.0,
        head_kwargs=kwargs,
        takes_pooler=layout.body == "pooler",
    )


def _body(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a head's settings that decide its body's shape and function."""
    return {
        "hidden_dims": list(settings.get("hidden_dims") or []),
        "activation": settings.get("activation", "gelu"),
        "body_bias": bool(settings.get("body_bias", True)),
        "body_norm": settings.get("body_norm"),
    }


def reference_head_keys(info: TaskModelInfo, head: Any) -> dict[str, str] | None:
    """{head parameter: checkpoint key} when the head is exactly the reference classifier's,
    else None (the head is then saved under its own names)."""
    layout = classifier_layout(info.architecture)
    if layout is None or info.head_task not in REFERENCE_HEAD_TASKS:
        return None
    options = layout.extra.get("poolings", ("cls",))
    if info.pooling not in options:
        return None
    config = head.get_config()
    fitted = config.get("fitted") or {}
    if fitted.get("temperature", 1.0) != 1.0:
        return None  # calibrated logits have no plain reference equivalent
    if info.head_task == "regression" and config.get("uncertainty"):
        return None
    expected = plan_head(layout, info.config, head.hidden_size, None).head_kwargs
    if _body(config) != _body(expected):
        return None
    names = {k for k, _ in tree_flatten(head.parameters())}
    keys = {_head_param(role): key for role, key in layout.checkpoint_keys().items()}
    keys = {param: key for param, key in keys.items() if param in names}
    if set(keys) != names:
        return None
    return keys


def reference_config(info: TaskModelInfo, with_head: bool) -> dict[str, Any]:
    """config.json of a saved task model: the encoder's config plus the classifier keys."""
    config = dict(info.config)
    config.pop("quantization", None)
    if info.head_task == "regression":
        labels = [info.task or "score"] * info.num_labels if info.num_labels == 1 else None
        labels = labels or [f"target_{i}" for i in range(info.num_labels)]
    elif info.head_task == "binary":
        labels = info.labels if info.labels and len(info.labels) == 2 else ["0", "1"]
    else:
        labels = info.label_names()
    config["id2label"] = {str(i): str(name) for i, name in enumerate(labels)}
    config["label2id"] = {str(name): i for i, name in enumerate(labels)}
    config["num_labels"] = len(labels)
    config["problem_type"] = {
        "regression": "regression",
        "multilabel": "multi_label_classification",
    }.get(info.head_task, "single_label_classification")
    layout = classifier_layout(info.architecture)
    if with_head and layout is not None and layout.hf_class:
        config["architectures"] = [layout.hf_class]
        pooling_key = layout.extra.get("pooling_key")
        if pooling_key:
            config[pooling_key] = info.pooling
    return config


def _target_scaling(head: Any) -> tuple[mx.array, mx.array] | None:
    fitted = head.get_config().get("fitted") or {}
    if "target_mean" not in fitted:
        return None
    mean = mx.array(fitted["target_mean"], dtype=mx.float32)
    std = mx.array(fitted["target_std"], dtype=mx.float32)
    return mean, std


def to_checkpoint(param: str, value: mx.array, head_task: str, head: Any) -> mx.array:
    """The reference form of a head weight (see the module doc)."""
    if not param.startswith("output."):
        return value
    if head_task == "binary":
        return mx.concatenate([mx.zeros_like(value), value], axis=0)
    scaling = _target_scaling(head) if head_task == "regression" else None
    if scaling is not None:
        mean, std = scaling
        return value * std[:, None] if param.endswith("weight") else value * std + mean
    return value


def from_checkpoint(param: str, value: mx.array, head_task: str, head: Any) -> mx.array:
    """The inverse of :func:`to_checkpoint`."""
    if not param.startswith("output."):
        return value
    if head_task == "binary":
        return value[1:2] - value[0:1]
    scaling = _target_scaling(head) if head_task == "regression" else None
    if scaling is not None:
        mean, std = scaling
        return value / std[:, None] if param.endswith("weight") else (value - mean) / std
    return value


def head_task_of_config(config: Mapping[str, Any]) -> str:
    """The head type a reference classifier's config implies."""
    problem = config.get("problem_type")
    n = int(config.get("num_labels") or len(config.get("id2label") or {}) or 2)
    if problem == "regression" or (problem is None and n == 1):
        return "regression"
    if problem == "multi_label_classification":
        return "multilabel"
    return "multiclass"


def outputs_kwargs(head_task: str, num_labels: int) -> dict[str, Any]:
    """The size argument of the head registered for ``head_task`` (any registered head)."""
    argument = default_head_for(head_task).outputs_argument
    return {} if argument is None else {argument: int(num_labels)}


__all__ = [
    "REFERENCE_HEAD_TASKS",
    "HeadPlan",
    "classifier_layout",
    "from_checkpoint",
    "head_task_of_config",
    "outputs_kwargs",
    "plan_head",
    "reference_config",
    "reference_head_keys",
    "to_checkpoint",
]
