"""Save and load a trained task model as one self-contained folder.

Folder layout (shared with the ``mlxbert`` CLI)::

    config.json              the encoder's Hugging Face config (+ architectures, id2label,
                             label2id, num_labels, problem_type for classifiers)
    model.safetensors        encoder weights with Hugging Face's task-model prefix
                             (``bert.`` / ``model.``) and, where the head has an exact
                             Hugging Face equivalent, the head under its HF names
    head.safetensors         the head's own weights when it has no HF equivalent
    tokenizer.json (+ tokenizer_config.json, special_tokens_map.json, vocab.txt)
    mlxbert.json             task, labels, head config, pooling, text template, max length,
                             adapter and quantization settings

For BERT and NeoBERT classifiers built by :func:`mlxbert_glue.create_model` (``cls``
pooling, one tanh layer, output layer) the head maps exactly onto transformers'
``BertForSequenceClassification`` (the tanh layer *is* BERT's pooler) and NeoBERT's
``NeoBERTForSequenceClassification``; for ModernBERT the GLUE head is built as
``ModernBertForSequenceClassification``'s (dense -> activation -> LayerNorm -> classifier), so
those folders also load in ``AutoModelForSequenceClassification``. A one-logit binary head
is written as the equivalent two-logit classifier ``[0, z]`` (softmax of it is the sigmoid).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import mlx.core as mx
from mlx.utils import tree_flatten

from ._task_model_info import TaskModelInfo

FORMAT = "mlxbert-task-model"
FORMAT_VERSION = 1
META_FILE = "mlxbert.json"
HEAD_FILE = "head.safetensors"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "added_tokens.json",
)

#: Prefix of the encoder inside transformers' sequence-classification models.
ENCODER_PREFIX = {"bert": "bert.", "modernbert": "model.", "neobert": "model."}
HF_CLASSIFIER = {
    "bert": "BertForSequenceClassification",
    "modernbert": "ModernBertForSequenceClassification",
    "neobert": "NeoBERTForSequenceClassification",
}


# ---------------------------------------------------------------------------- head <-> HF


def hf_head_keys(model_type: str, info: TaskModelInfo, head: Any) -> dict[str, str] | None:
    """{file key: head parameter} when the head has an exact HF equivalent, else None."""
    if info.head_task not in ("multiclass", "binary", "regression", "multilabel"):
        return None
    if info.pooling != "cls" and not (model_type == "modernbert" and info.pooling == "mean"):
        return None  # transformers' classifiers pool the first token (ModernBERT: or mean)
    names = {k for k, _ in tree_flatten(head.parameters())}
    config = head.get_config()
    body = list(config.get("hidden_dims") or [])
    fitted = config.get("fitted") or {}
    if fitted.get("temperature", 1.0) != 1.0:
        return None  # calibrated logits have no plain HF equivalent
    if info.head_task == "regression" and config.get("uncertainty"):
        return None
    out = {"classifier.weight": "output.weight", "classifier.bias": "output.bias"}
    if model_type == "bert" and body == [head.hidden_size] and config["activation"] == "tanh":
        out |= {"bert.pooler.dense.weight": "layers.0.weight",
                "bert.pooler.dense.bias": "layers.0.bias"}  # fmt: skip
    elif model_type == "neobert" and body == [head.hidden_size] and config["activation"] == "tanh":
        out |= {"dense.weight": "layers.0.weight", "dense.bias": "layers.0.bias"}
    elif model_type == "modernbert" and getattr(head, "hf_modernbert", False):
        out |= {"head.dense.weight": "layers.0.weight", "head.norm.weight": "norm.weight"}
        if "norm.bias" in names:
            out["head.norm.bias"] = "norm.bias"
    else:
        return None
    if set(out.values()) != names:
        return None
    return out


def _target_scaling(head: Any) -> tuple[mx.array, mx.array] | None:
    fitted = head.get_config().get("fitted") or {}
    if "target_mean" not in fitted:
        return None
    mean = mx.array(fitted["target_mean"], dtype=mx.float32)
    std = mx.array(fitted["target_std"], dtype=mx.float32)
    return mean, std


def _to_hf_value(file_key: str, value: mx.array, info: TaskModelInfo, head: Any) -> mx.array:
    """HF form of an output-layer weight.

    A one-logit binary output becomes the two-logit classifier ``[0, z]`` (its softmax is
    the sigmoid); a regression head's target standardisation is folded into the layer
    (``y = std * z + mean``), since transformers' regression head outputs raw values.
    """
    if not file_key.startswith("classifier."):
        return value
    if info.head_task == "binary":
        return mx.concatenate([mx.zeros_like(value), value], axis=0)
    scaling = _target_scaling(head) if info.head_task == "regression" else None
    if scaling is not None:
        mean, std = scaling
        if file_key.endswith("weight"):
            return value * std[:, None]
        return value * std + mean
    return value


def _from_hf_value(file_key: str, value: mx.array, info: TaskModelInfo, head: Any) -> mx.array:
    if not file_key.startswith("classifier."):
        return value
    if info.head_task == "binary":
        return value[1:2] - value[0:1]
    scaling = _target_scaling(head) if info.head_task == "regression" else None
    if scaling is not None:
        mean, std = scaling
        if file_key.endswith("weight"):
            return value / std[:, None]
        return (value - mean) / std
    return value


# ---------------------------------------------------------------------------- saving


def _hf_config(info: TaskModelInfo, hf_head: bool) -> dict[str, Any]:
    config = dict(info.config)
    config.pop("quantization", None)
    labels = info.labels or [str(i) for i in range(info.num_labels)]
    if info.head_task == "binary":
        labels = labels if len(labels) == 2 else ["0", "1"]
    if info.head_task == "regression":
        labels = [info.task or "score"]
    config["id2label"] = {str(i): str(name) for i, name in enumerate(labels)}
    config["label2id"] = {str(name): i for i, name in enumerate(labels)}
    config["num_labels"] = len(labels)
    config["problem_type"] = {
        "regression": "regression",
        "multilabel": "multi_label_classification",
    }.get(info.head_task, "single_label_classification")
    arch = HF_CLASSIFIER.get(info.model_type)
    if hf_head and arch:
        config["architectures"] = [arch]
        if info.model_type == "modernbert":
            config["classifier_pooling"] = info.pooling
    return config


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
    import mlx.nn as nn

    flat = dict(tree_flatten(model.parameters()))
    try:
        from mlxbert_lora import lora_layers
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
        base = layer.base_layer
        replace(path, layer.merged_weight(), base.get("bias"))
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
    from mlxbert_lora._private.apply import get_config

    config = get_config(model)
    adapter: dict[str, Any] = {"merged": True}
    if config is not None and hasattr(config, "to_peft_dict"):
        adapter["config"] = config.to_peft_dict()
    return flat, adapter


def _subtree(flat: dict[str, mx.array], prefix: str) -> dict[str, mx.array]:
    return {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}


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
    """Write ``model`` (a task model from :func:`create_model`) and its tokenizer to a folder.

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

    meta = info.to_meta()
    meta.update(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        max_length=int(max_length or info.max_length or 128),
        text_template=text_template if text_template is not None else info.text_template,
        adapter=adapter,
        head=model.head.get_config(),
        extra=dict(extra or info.extra or {}),
    )
    if adapter is not None:
        meta["quantization"] = None  # merged into a float model
    for stale in ("model.safetensors", HEAD_FILE, "pooler.safetensors"):
        (out / stale).unlink(missing_ok=True)
    if quantized:
        from mlxbert_quant import save_quantized

        # A quantized model is saved whole under mlxbert's own names; loading rebuilds the
        # float skeleton and quantizes it the same way.
        save_quantized(model, out, config=dict(info.config))
        meta["weights_layout"] = "mlxbert"
        meta["hf_compatible"] = False
    else:
        head_map = hf_head_keys(info.model_type, info, model.head)
        prefix = ENCODER_PREFIX.get(info.model_type, "")
        weights = {prefix + k: v for k, v in _subtree(flat, "encoder.").items()}
        head_params = _subtree(flat, "head.")
        if head_map is not None:
            for file_key, name in head_map.items():
                weights[file_key] = _to_hf_value(file_key, head_params[name], info, model.head)
        else:
            mx.save_safetensors(str(out / HEAD_FILE), head_params)
        pooler_params = _subtree(flat, "pooler.")
        if pooler_params:
            mx.save_safetensors(str(out / "pooler.safetensors"), pooler_params)
        mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "pt"})
        config = _hf_config(info, head_map is not None)
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        meta["weights_layout"] = "hf"
        meta["head_keys"] = head_map
        meta["hf_compatible"] = head_map is not None and info.model_type in HF_CLASSIFIER
    _copy_tokenizer(tokenizer, Path(info.source_dir) if info.source_dir else None, out)
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


def _has_pooler(model: Any) -> bool:
    pooler = getattr(model, "pooler", None)
    return pooler is not None and bool(tree_flatten(pooler.parameters()))


def _is_quantized(model: Any) -> bool:
    import mlx.nn as nn

    return any(
        isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding)) for _, m in model.named_modules()
    )


# ---------------------------------------------------------------------------- loading


def read_meta(model_dir: str | Path) -> dict[str, Any]:
    """The folder's ``mlxbert.json``, with a clear error when the folder is not a model."""
    folder = Path(model_dir)
    path = folder / META_FILE
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
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not an mlxbert task-model description (format {meta.get('format')!r})"
        )
    return meta


def load_task_model(model_dir: str | Path, *, dtype: str | None = None):
    """Load a folder written by :func:`save_task_model`: ``(model, tokenizer, meta)``.

    The model is in eval mode; ``meta`` is the folder's ``mlxbert.json`` (task, labels, head,
    max length, …).
    """
    from mlxbert_core import load_tokenizer

    from .factory import build_task_model, load_encoder

    folder = Path(model_dir)
    meta = read_meta(folder)
    info = TaskModelInfo.from_meta(meta, folder)
    tokenizer = load_tokenizer(folder)

    if meta.get("weights_layout") == "mlxbert":  # quantized: whole model under our names
        from mlxbert_quant import load_quantized

        encoder = load_encoder(folder, dtype=None, skeleton=True)
        model = build_task_model(encoder, info, head_config=meta["head"])
        load_quantized(model, folder)
    else:
        encoder = load_encoder(folder, dtype=dtype)
        model = build_task_model(encoder, info, head_config=meta["head"], from_saved=True)
        head_map = meta.get("head_keys")
        if head_map:
            from mlxbert_core.checkpoints import load_weights

            stored = load_weights(folder)
            missing = [k for k in head_map if k not in stored]
            if missing:
                raise ValueError(f"{folder}/model.safetensors lacks head weights {missing}")
            pairs = [
                (name, _from_hf_value(k, stored[k], info, model.head))
                for k, name in head_map.items()
            ]
        else:
            if not (folder / HEAD_FILE).is_file():
                raise FileNotFoundError(f"{folder} has no {HEAD_FILE} (the head's weights)")
            pairs = list(mx.load(str(folder / HEAD_FILE)).items())
        model.head.load_weights(pairs, strict=True)
        if (folder / "pooler.safetensors").is_file() and _has_pooler(model):
            model.pooler.load_weights(list(mx.load(str(folder / "pooler.safetensors")).items()))
        if dtype is not None:
            from mlxbert_core.loading import parse_dtype

            model.set_dtype(parse_dtype(dtype))
    mx.eval(model.parameters())
    model.eval()
    meta["num_labels"] = info.num_labels
    return model, tokenizer, meta


__all__ = ["load_task_model", "read_meta", "save_task_model"]
