"""``hf``: the Hugging Face folder transformers loads (and optimum exports from).

Task models are written by ``save_task_model`` (the reference classifier's layout);
plain encoders as their config and weights under the reference parameter names. Only
architectures whose :class:`mlxbert_core.ClassifierLayout` names a transformers class
have such a folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from ...task_model import save_task_model
from ...task_model.layout import classifier_layout, reference_head_keys
from ..errors import ExportError
from ..files import write_tokenizer
from ..source import ExportSubject


def _quantized(module) -> bool:
    return any(
        isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding))
        for _, m in module.named_modules()
    )


def check_hf(subject: ExportSubject) -> None:
    """Raise :class:`ExportError` unless the subject has a transformers folder."""
    architecture = subject.encoder.architecture
    layout = classifier_layout(architecture)
    if layout is None or not layout.hf_class:
        raise ExportError(
            f"{architecture} models have no transformers classes, so there is no hf folder to "
            "write; export as onnx or mlxfn"
        )
    if _quantized(subject.model):
        raise ExportError(
            "a quantized model has no transformers folder (transformers reads float weights); "
            "export the float model"
        )
    if subject.is_task_model and reference_head_keys(subject.info, subject.model.head) is None:
        raise ExportError(
            f"this model's head ({subject.info.head_task}, pooling {subject.info.pooling}) is "
            f"not {layout.hf_class}'s classifier, so transformers cannot load it; export as "
            "onnx or mlxfn, or train with the default head"
        )


def write_hf(subject: ExportSubject, out: Path) -> list[str]:
    if subject.is_task_model:
        save_task_model(subject.model, subject.tokenizer, out, info=subject.info)
    else:
        encoder = subject.encoder
        config = dict(subject.config)
        config.pop("quantization", None)
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        weights = dict(tree_flatten(encoder.parameters()))
        mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "pt"})
        source = getattr(encoder, "name_or_path", None) or subject.source
        write_tokenizer(subject.tokenizer, source, out)
    return sorted(p.name for p in out.iterdir())


__all__ = ["check_hf", "write_hf"]
