"""Heads shaped like transformers' ModernBERT classifier head.

``ModernBertForSequenceClassification`` computes ``classifier(drop(norm(act(dense(pooled)))))``
with a bias-free dense layer (``classifier_bias``) and a LayerNorm (``norm_bias``). The
mlxbert-heads body is ``dropout(act(linear(x)))`` without a norm, so these subclasses add the
norm and the bias switch; everything else (losses, predict, calibration, config I/O) is the
base head's. With them a fine-tuned ModernBERT folder also loads in transformers.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn

from mlxbert_heads import (
    BinaryClassificationHead,
    MulticlassClassificationHead,
    MultilabelClassificationHead,
    RegressionHead,
)

CONFIG_KEY = "modernbert_head"


def _make(base: type) -> type:
    class ModernBertStyleHead(base):  # type: ignore[misc, valid-type]
        hf_modernbert = True

        def __init__(self, hidden_size: int, *, modernbert_head: dict[str, Any], **kwargs: Any):
            kwargs.setdefault("hidden_dims", [hidden_size])
            super().__init__(hidden_size, **kwargs)
            cfg = {
                "dense_bias": bool(modernbert_head.get("dense_bias", False)),
                "norm_eps": float(modernbert_head.get("norm_eps", 1e-5)),
                "norm_bias": bool(modernbert_head.get("norm_bias", False)),
            }
            self._modernbert_config = cfg
            self.layers = [nn.Linear(hidden_size, hidden_size, bias=cfg["dense_bias"])]
            self.norm = nn.LayerNorm(hidden_size, eps=cfg["norm_eps"], bias=cfg["norm_bias"])

        def features(self, x: mx.array) -> mx.array:
            if not isinstance(x, mx.array) or x.ndim != 2 or x.shape[1] != self.hidden_size:
                return super().features(x)  # the base class raises the clear error
            return self.dropout(self.norm(self._activation(self.layers[0](x))))

        def _head_config(self) -> dict[str, Any]:
            return {**super()._head_config(), CONFIG_KEY: dict(self._modernbert_config)}

    ModernBertStyleHead.__name__ = f"ModernBert{base.__name__}"
    ModernBertStyleHead.__qualname__ = ModernBertStyleHead.__name__
    return ModernBertStyleHead


_CLASSES = {
    cls.task: _make(cls)
    for cls in (
        BinaryClassificationHead,
        MulticlassClassificationHead,
        MultilabelClassificationHead,
        RegressionHead,
    )
}


def modernbert_head_class(task: str) -> type | None:
    """The ModernBERT-shaped variant of the head for ``task`` (None when there is none)."""
    return _CLASSES.get(task)


def head_from_saved_config(config: dict[str, Any]):
    """Rebuild a head from ``get_config()``, including the ModernBERT-shaped variants."""
    from mlxbert_heads import head_from_config

    if CONFIG_KEY in config:
        cls = _CLASSES[config["task"]]
        return cls.from_config(config)
    return head_from_config(config)
