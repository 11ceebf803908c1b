"""Save and load a trained task model as one self-contained folder.

Folder layout (shared with the ``mlxbert`` CLI)::

    config.json              the encoder's Hugging Face config (+ architectures, id2label,
                             label2id, num_labels, problem_type for classifiers)
    model.safetensors        encoder weights with the reference classifier's prefix and, where
                             the head has an exact reference equivalent, the head under its
                             reference names
    head.safetensors         the head's own weights when it has no reference equivalent
    pooler.safetensors       the weights of a learned pooling (attention, weighted layers)
    tokenizer.json (+ tokenizer_config.json, special_tokens_map.json, vocab.txt)
    mlxbert.json             the task model's record (:class:`TaskModelInfo`)

For heads built after the architecture's reference classifier (see :mod:`.layout`) the folder
also loads in transformers' ``AutoModelForSequenceClassification`` (BERT, ModernBERT; NeoBERT
with its hub code). A quantized model is saved whole under mlxbert's own names.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from mlxbert_core import load_tokenizer, load_weights
from mlxbert_core.loading import parse_dtype

from .build import build_task_model, load_encoder
from .layout import (
    classifier_layout,
    from_checkpoint,
    reference_config,
    reference_head_keys,
    to_checkpoint,
)
from .record import FORMAT, META_FILE, TaskModelInfo

HEAD_FILE = "head.safetensors"
POOLER_FILE = "pooler.safetensors"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "added_tokens.json",
)


# ---------------------------------------------------------------------------- saving


def _copy_tokenizer(tokenizer: Any, source: Path | None, out: Path) -> None:
    if hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(out)
    if source is not None:
        for name in TOKENIZER_FILES:
            src = source / name
            if src.is_file() and not (out / name).is_file():
                shutil.copy2(src, out / name)
    if not (out / "tokenizer.json").is_file():
        raise FileNotFoundError(
            f"could not write tokenizer.json to {out}: the tokenizer has no save_pretrained "
            "and its source folder has no tokenizer.json"
        )


def _merged_weights(model: Any) -> tuple[dict[str, mx.array], dict[str, Any] | None]:
    """The task model's flat weights with LoRA adapters merged, without touching the model.

    Each adapted layer becomes a plain ``weight`` (``W + s·B·A``, DoRA included) and
    ``bias``; with QLoRA the remaining quantized layers are dequantized too, so the result
    is an ordinary float model (the adapter's update would mostly vanish if re-quantized).
    """
    flat = dict(tree_flatten(model.parameters()))
    try:
        from mlxbert_lora import lora_config_of, lora_layers
    except ImportError:
        return flat, None
    adapters = lora_layers(model)
    if not adapters:
        return flat, None

    def replace(path: str, weight: mx.array, bias: mx.array | None) -> None:
        for key in [k for k in flat if k.startswith(path + ".")]:
            del flat[key]
        flat[f"{path}.weight"] = weight
        if bias is not None:
            flat[f"{path}.bias"] = bias

    adapted = [path for path, _ in adapters]
    for path, layer in adapters:
        replace(path, layer.merged_weight(), layer.base_layer.get("bias"))
    for path, module in model.named_modules():
        inside = any(path == a or path.startswith(a + ".") for a in adapted)
        if isinstance(module, nn.QuantizedLinear) and not inside:
            weight = mx.dequantize(
                module.weight,
                module.scales,
                module.get("biases"),
                group_size=module.group_size,
                bits=module.bits,
                mode=module.mode,
            )
            replace(path, weight, module.get("bias"))
    adapter: dict[str, Any] = {"merged": True}
    config = lora_config_of(model)
    if config is not None:
        adapter["config"] = config.to_peft_dict()
    return flat, adapter


def _subtree(flat: dict[str, mx.array], prefix: str) -> dict[str, mx.array]:
    return {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}


def _is_quantized(model: Any) -> bool:
    return any(
        isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for _, m in model.named_modules()
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def save_task_model(
    model: Any,
    tokenizer: Any,
    output_dir: str | Path,
    *,
    info: TaskModelInfo | None = None,
    max_length: int | None = None,
    text_template: str | None = None,
    extra: dict[str, Any] | None = None,
    save_adapter: bool = False,
) -> Path:
    """Write ``model`` (a task model from ``create_model``) and its tokenizer to a folder.

    LoRA adapters are merged into the saved weights (the model passed in keeps its adapters);
    ``save_adapter=True`` also writes the adapter in PEFT's format under ``adapter/``.
    ``extra`` is stored in ``mlxbert.json`` under ``"extra"`` (for callers' own settings).
    Returns the folder.
    """
    info = info or getattr(model, "mlxbert_info", None)
    if info is None:
        raise ValueError(
            "save_task_model needs the model's TaskModelInfo: build the model with "
            "mlxbert_glue.create_model (or pass info=)"
        )
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if save_adapter:
        from mlxbert_lora import save_peft_adapter

        save_peft_adapter(model, out / "adapter")
    flat, adapter = _merged_weights(model)
    quantized = adapter is None and _is_quantized(model)

    record = dataclasses.replace(info)
    if max_length is not None:
        record.max_length = int(max_length)
    if text_template is not None:
        record.text_template = text_template
    if extra is not None:
        record.extra = dict(extra)
    record.adapter = adapter
    record.head = model.head.get_config()
    if adapter is not None:
        record.quantization = None  # merged into a float model
    for stale in ("model.safetensors", HEAD_FILE, POOLER_FILE):
        (out / stale).unlink(missing_ok=True)
    if quantized:
        from mlxbert_quant import save_quantized

        # Saved whole under mlxbert's own names; loading rebuilds the float skeleton and
        # quantizes it the same way.
        save_quantized(model, out, config=dict(info.config))
        record.layout, record.head_keys, record.hf_compatible = "mlxbert", None, False
    else:
        head_keys = reference_head_keys(record, model.head)
        layout = classifier_layout(record.architecture)
        prefix = layout.encoder_prefix if layout is not None else ""
        weights = {prefix + k: v for k, v in _subtree(flat, "encoder.").items()}
        head_params = _subtree(flat, "head.")
        if head_keys is not None:
            for param, key in head_keys.items():
                weights[key] = to_checkpoint(
                    param, head_params[param], record.head_task, model.head
                )
        else:
            mx.save_safetensors(str(out / HEAD_FILE), head_params)
        pooler_params = _subtree(flat, "pooler.")
        if pooler_params:
            mx.save_safetensors(str(out / POOLER_FILE), pooler_params)
        mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "pt"})
        _write_json(out / "config.json", reference_config(record, head_keys is not None))
        record.layout, record.head_keys = "hf", head_keys
        record.hf_compatible = bool(head_keys is not None and layout and layout.hf_class)
    _copy_tokenizer(tokenizer, Path(info.source_dir) if info.source_dir else None, out)
    _write_json(out / META_FILE, record.to_meta())
    return out


# ---------------------------------------------------------------------------- loading


def read_info(model_dir: str | Path) -> TaskModelInfo:
    """The folder's record, with a clear error when the folder is not a task model."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    missing = [
        n for n in ("config.json", META_FILE, "tokenizer.json") if not (folder / n).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"{folder} is not a complete mlxbert task-model folder: missing {', '.join(missing)}. "
            "Train one with mlxbert_glue.finetune / `mlxbert train`, or save one with "
            "mlxbert_glue.save_task_model."
        )
    path = folder / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ValueError(f"{path} is not an mlxbert task-model description (format {found!r})")
    return TaskModelInfo.from_meta(meta, folder)


def read_meta(model_dir: str | Path) -> dict[str, Any]:
    """The folder's ``mlxbert.json`` as a dict (see :func:`read_info` for the typed record)."""
    return read_info(model_dir).to_meta()


def _head_pairs(folder: Path, info: TaskModelInfo, model: Any) -> list[tuple[str, mx.array]]:
    if info.head_keys:
        stored = load_weights(folder)
        missing = [key for key in info.head_keys.values() if key not in stored]
        if missing:
            raise ValueError(f"{folder}/model.safetensors lacks head weights {missing}")
        return [
            (param, from_checkpoint(param, stored[key], info.head_task, model.head))
            for param, key in info.head_keys.items()
        ]
    if not (folder / HEAD_FILE).is_file():
        raise FileNotFoundError(f"{folder} has no {HEAD_FILE} (the head's weights)")
    return list(mx.load(str(folder / HEAD_FILE)).items())


def open_task_model(model_dir: str | Path, *, dtype: str | None = None):
    """Load a folder written by :func:`save_task_model`: ``(model, tokenizer, info)``, the
    model in eval mode with ``info`` (its :class:`TaskModelInfo`) attached."""
    folder = Path(model_dir)
    info = read_info(folder)
    tokenizer = load_tokenizer(folder)
    if info.layout == "mlxbert":  # quantized: the whole model under mlxbert's own names
        from mlxbert_quant import load_quantized

        encoder = load_encoder(folder, skeleton=True)
        model = build_task_model(encoder, info)
        load_quantized(model, folder)
    else:
        encoder = load_encoder(folder, dtype=dtype)
        model = build_task_model(encoder, info, from_saved=True)
        model.head.load_weights(_head_pairs(folder, info, model), strict=True)
        if (folder / POOLER_FILE).is_file():
            model.pooler.load_weights(list(mx.load(str(folder / POOLER_FILE)).items()))
        if dtype is not None:
            model.set_dtype(parse_dtype(dtype))
    mx.eval(model.parameters())
    model.eval()
    return model, tokenizer, info


def load_task_model(model_dir: str | Path, *, dtype: str | None = None):
    """Like :func:`open_task_model`, with the record as the ``mlxbert.json`` dict:
    ``(model, tokenizer, meta)``."""
    model, tokenizer, info = open_task_model(model_dir, dtype=dtype)
    return model, tokenizer, info.to_meta()


__all__ = [
    "HEAD_FILE",
    "TOKENIZER_FILES",
    "load_task_model",
    "open_task_model",
    "read_info",
    "read_meta",
    "save_task_model",
]
