"""``create_model``: encoder (mlxbert-core) + head (mlxbert-heads) [+ LoRA] [+ quantized base].

Default heads follow each architecture's transformers classifier, so fine-tuning starts from
the same point as transformers does and the saved folder also loads there:

* BERT-style encoders (BERT, MiniLM, M2-BERT): ``cls`` pooling, then a tanh dense layer
  initialised from the checkpoint's pretrained pooler (which *is* BERT's pooler), dropout
  (``hidden_dropout_prob``) and the output layer (``BertForSequenceClassification``).
* NeoBERT: ``cls`` -> dropout -> dense -> tanh -> dropout -> classifier.
* ModernBERT: ``classifier_pooling`` (cls/mean) -> dense -> activation -> LayerNorm ->
  dropout -> classifier.

``pooling="mean"`` (or any other mlxbert-heads pooling) gives a plain head on that pooling
instead (no dense body; not loadable in transformers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._task_model_info import TaskModelInfo
from .presets import resolve_model_source
from .tasks import TASKS, GlueTask, get_task

HEAD_TASKS = ("binary", "multiclass", "multilabel", "regression", "ordinal")


def _missing_extra(extra: str, what: str) -> ImportError:
    return ImportError(
        f"{what} needs the optional dependency mlxbert-{extra}: pip install 'mlxbert-glue[{extra}]'"
    )


def load_encoder(source: str | Path, *, dtype: str | None = None, skeleton: bool = False):
    """An encoder from a folder or hub id (``skeleton``: built from config.json, no weights)."""
    from mlxbert_core.loading import from_pretrained, read_config
    from mlxbert_core.registry import resolve_architecture

    if not skeleton:
        return from_pretrained(str(source), dtype=dtype)
    folder = Path(source)
    config = read_config(folder)
    config.pop("quantization", None)
    arch = resolve_architecture(config, source=folder / "config.json")
    encoder = arch.build(config, "encoder")
    encoder.name_or_path = str(folder)
    return encoder


def _architecture_name(encoder: Any, config: dict[str, Any]) -> str:
    from mlxbert_core.registry import resolve_architecture

    try:
        return resolve_architecture(config).name
    except ValueError:
        return str(config.get("model_type", type(encoder).__name__))


def _resolve_task(task: str | GlueTask, num_labels: int | None, labels: list[str] | None):
    """(GLUE task name or None, head task, number of outputs, label names)."""
    key = task.name if isinstance(task, GlueTask) else str(task).strip().lower()
    try:
        t = get_task(key)
    except KeyError:
        t = None
    if t is not None:
        if num_labels is not None and num_labels != t.num_labels:
            raise ValueError(
                f"GLUE {t.name} has {t.num_labels} outputs, not num_labels={num_labels}"
            )
        head_task = "regression" if t.is_regression else "multiclass"
        names = None if t.display_labels is None else list(t.display_labels)
        return t.name, head_task, t.num_labels, labels or names
    from mlxbert_heads import registry

    head_task = registry.normalize_task(key)
    if head_task not in HEAD_TASKS:
        raise ValueError(
            f"unknown task {task!r}: use a GLUE task ({', '.join(TASKS)}) or a head type "
            f"({', '.join(HEAD_TASKS)})"
        )
    if num_labels is None and labels is not None:
        num_labels = len(labels)
    if head_task == "binary":
        num_labels = 2 if num_labels in (None, 1, 2) else num_labels
    elif head_task == "regression":
        num_labels = num_labels or 1
    elif num_labels is None:
        raise ValueError(f"task {head_task!r} needs num_labels (or labels)")
    return None, head_task, int(num_labels), labels


def _head_kwargs(head_task: str, num_labels: int) -> dict[str, Any]:
    if head_task == "multiclass":
        return {"num_classes": num_labels}
    if head_task == "ordinal":
        return {"num_classes": num_labels}
    if head_task == "multilabel":
        return {"num_labels": num_labels}
    if head_task == "regression":
        return {"num_targets": num_labels}
    return {}


def _default_layout(architecture: str, config: dict[str, Any], pooling: str | None):
    """(pooling, body kind, head dropout, pooled dropout) for the architecture."""
    if pooling not in (None, "auto", "pooler"):
        return pooling, "none", 0.0, float(config.get("hidden_dropout_prob", 0.1) or 0.1)
    if architecture == "modernbert":
        mode = config.get("classifier_pooling", "cls")
        return mode, "modernbert", float(config.get("classifier_dropout", 0.0) or 0.0), 0.0
    if architecture == "neobert":
        p = float(config.get("classifier_dropout", 0.1) or 0.1)
        return "cls", "tanh", p, p
    p = config.get("classifier_dropout")
    p = float(config.get("hidden_dropout_prob", 0.1) if p is None else p)
    return "cls", "tanh", p, 0.0


def _new_head(info: TaskModelInfo, hidden: int, body: str, head_dropout: float,
              head_options: dict[str, Any]):  # fmt: skip
    from mlxbert_heads import create_head

    from ._hf_heads import modernbert_head_class

    kwargs = {**_head_kwargs(info.head_task, info.num_labels), **head_options}
    if body == "tanh":
        kwargs |= {"hidden_dims": [hidden], "activation": "tanh", "dropout": head_dropout}
    elif body == "modernbert" and modernbert_head_class(info.head_task) is not None:
        act = str(info.config.get("classifier_activation", "gelu"))
        cls = modernbert_head_class(info.head_task)
        return cls(
            hidden,
            activation=act if act in ("gelu", "relu", "tanh", "silu") else "gelu",
            dropout=head_dropout,
            modernbert_head={
                "dense_bias": bool(info.config.get("classifier_bias", False)),
                "norm_eps": float(info.config.get("norm_eps", 1e-5)),
                "norm_bias": bool(info.config.get("norm_bias", False)),
            },
            **kwargs,
        )
    elif body == "modernbert":
        kwargs |= {"hidden_dims": [hidden], "dropout": head_dropout}
    return create_head(info.head_task, hidden, **kwargs)


def _hidden_size(encoder: Any, config: dict[str, Any]) -> int:
    size = getattr(encoder, "hidden_size", None) or config.get("hidden_size") or config.get("dim")
    if not size:
        raise ValueError("cannot tell the encoder's hidden size (no hidden_size in config.json)")
    return int(size)


def _move_pooler_into_head(encoder: Any, head: Any, copy_weights: bool) -> None:
    """BERT's pretrained pooler becomes the head's tanh layer (and leaves the encoder)."""
    pooler = getattr(encoder, "pooler", None) if "pooler" in encoder else None
    if pooler is None:
        return
    if copy_weights:
        dense = pooler.dense
        head.layers[0].weight = dense.weight
        if "bias" in dense and "bias" in head.layers[0]:
            head.layers[0].bias = dense.bias
    if hasattr(encoder, "remove_pooler"):
        encoder.remove_pooler()


def build_task_model(
    encoder: Any,
    info: TaskModelInfo,
    *,
    head_config: dict[str, Any] | None = None,
    from_saved: bool = False,
    body: str | None = None,
    head_dropout: float = 0.0,
    head_options: dict[str, Any] | None = None,
):
    """Wrap ``encoder`` in a heads ``TaskModel`` described by ``info``."""
    from mlxbert_heads import TaskModel

    from ._hf_heads import head_from_saved_config

    hidden = _hidden_size(encoder, info.config)
    if head_config is not None:
        head = head_from_saved_config(head_config)
        tanh_body = head_config.get("activation") == "tanh" and head_config.get("hidden_dims")
    else:
        head = _new_head(info, hidden, body or "none", head_dropout, head_options or {})
        tanh_body = body == "tanh"
    if tanh_body and info.pooling == "cls":
        # A saved folder stores this layer as bert.pooler.dense; the head's own copy is
        # loaded from there, so the encoder's (identical) pooler is just removed.
        _move_pooler_into_head(encoder, head, copy_weights=not from_saved)
    model = TaskModel(encoder, head, pooling=info.pooling, dropout=info.dropout)
    model.mlxbert_info = info
    return model


def _lora_config(lora: Any, model: Any, quantize: int | None):
    try:
        from mlxbert_lora import LoraConfig
    except ImportError:
        raise _missing_extra("lora", "LoRA fine-tuning") from None
    if isinstance(lora, LoraConfig):
        config = lora
    elif isinstance(lora, str):
        config = LoraConfig.preset(lora, model.encoder)
    elif isinstance(lora, dict):
        config = LoraConfig(**lora)
    else:
        raise TypeError(f"lora must be a preset name, a dict or a LoraConfig, got {type(lora)}")
    if quantize is not None:
        config.quantize_bits = int(quantize)
    # The head and the pooler train in full, as PEFT's modules_to_save.
    saved = list(config.modules_to_save or [])
    for name in ("head", "pooler"):
        if name not in saved:
            saved.append(name)
    config.modules_to_save = saved
    return config


def create_model_and_tokenizer(
    name_or_path: str | Path,
    task: str,
    *,
    num_labels: int | None = None,
    labels: list[str] | None = None,
    lora: Any = None,
    quantize: int | None = None,
    dtype: str | None = None,
    pooling: str | None = None,
    head_options: dict[str, Any] | None = None,
    max_length: int | None = None,
    text_template: str | None = None,
    reinit_head: bool = False,
):
    """Like :func:`create_model`, also returning the tokenizer and the model's info.

    ``name_or_path`` may also be a saved task-model folder (for example an MNLI model used to
    start RTE): its encoder is reused and a new head is built for ``task``.
    """
    from mlxbert_core import load_tokenizer

    source, preset = resolve_model_source(name_or_path)
    if preset is not None and preset.requires == "m2":
        try:
            import mlxbert_m2  # noqa: F401  (registers the M2-BERT architecture)
        except ImportError:
            raise _missing_extra("m2", f"the {preset.name} model") from None
    glue_task, head_task, n, names = _resolve_task(task, num_labels, labels)
    encoder = load_encoder(source, dtype=dtype)
    folder = Path(getattr(encoder, "name_or_path", source))
    config = dict(getattr(encoder, "config_dict", None) or {})
    if not config and (folder / "config.json").is_file():
        import json

        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.pop("quantization", None)
    for stale in ("id2label", "label2id", "num_labels", "problem_type", "architectures"):
        config.pop(stale, None)
    architecture = _architecture_name(encoder, config)
    mode, body, head_dropout, pooled_dropout = _default_layout(architecture, config, pooling)
    info = TaskModelInfo(
        task=glue_task or head_task,
        head_task=head_task,
        num_labels=n,
        labels=[str(x) for x in names] if names is not None else None,
        pooling=mode,
        architecture=architecture,
        config=config,
        source=str(preset.hub_id if preset else name_or_path),
        source_dir=str(folder) if folder.is_dir() else None,
        max_length=max_length or (preset.max_length if preset else None),
        text_template=text_template,
        dropout=pooled_dropout,
    )
    model = build_task_model(
        encoder, info, body=body, head_dropout=head_dropout, head_options=head_options
    )
    del reinit_head  # a new head is always built; kept for callers' clarity
    if lora is not None:
        from mlxbert_lora import apply_lora

        config_lora = _lora_config(lora, model, quantize)
        apply_lora(model, config_lora)
        info.lora = config_lora.to_peft_dict() if hasattr(config_lora, "to_peft_dict") else None
    elif quantize is not None:
        try:
            from mlxbert_quant import quantize as quantize_model
        except ImportError:
            raise _missing_extra("quant", "quantization") from None
        quantize_model(model.encoder, bits=int(quantize))
        info.quantization = {"bits": int(quantize)}
    model.train()
    tokenizer = load_tokenizer(folder if folder.is_dir() else source)
    return model, tokenizer, info


def create_model(
    name_or_path: str | Path,
    task: str,
    *,
    num_labels: int | None = None,
    lora: Any = None,
    quantize: int | None = None,
    dtype: str | None = None,
    pooling: str | None = None,
    labels: list[str] | None = None,
    head_options: dict[str, Any] | None = None,
):
    """A trainable task model: encoder + head [+ LoRA adapters] [+ quantized base].

    Args:
        name_or_path: a preset from :data:`mlxbert_glue.MODELS` (``bert-base-uncased``,
            ``modernbert-base``, ``neobert``, ``all-minilm-l6-v2``, ``m2-bert-80m`` …), a
            local folder or a Hugging Face repo id; any architecture mlxbert-core knows
            (BERT, ModernBERT, NeoBERT; M2-BERT with ``mlxbert-glue[m2]``).
        task: a GLUE task (``sst2``, ``stsb`` …: outputs and labels follow the task) or a
            head type (``binary``, ``multiclass``, ``multilabel``, ``regression``,
            ``ordinal``) with ``num_labels``/``labels``.
        lora: LoRA preset name (``efficient``, ``balanced``, ``expressive``, ``qlora``), dict
            or ``LoraConfig`` (needs ``mlxbert-glue[lora]``). The head trains in full.
        quantize: 4 or 8: quantize the encoder (with ``lora``: QLoRA) (needs ``[quant]``).
        dtype: ``float32`` (default), ``bfloat16`` or ``float16`` weights.
        pooling: ``None`` = the architecture's transformers classifier (see module doc);
            ``cls``/``mean``/``max``/``attention``/``weighted_layer`` = that pooling with a
            plain output layer.
        head_options: extra keyword arguments for the head (loss, class weights, …).

    The model carries ``model.mlxbert_info`` (what :func:`save_task_model` records).
    """
    model, _tokenizer, _info = create_model_and_tokenizer(
        name_or_path,
        task,
        num_labels=num_labels,
        labels=labels,
        lora=lora,
        quantize=quantize,
        dtype=dtype,
        pooling=pooling,
        head_options=head_options,
    )
    return model
