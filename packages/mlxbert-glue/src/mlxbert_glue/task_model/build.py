"""Build a task model: encoder (mlxbert-core) + head (mlxbert-heads), by head type, with
optional LoRA adapters (mlxbert-lora) and a quantized base (mlxbert-quant).

New heads follow the architecture's reference classifier (its
:class:`mlxbert_core.ClassifierLayout`), so fine-tuning starts where transformers starts and
the saved folder also loads there: BERT's ``[CLS]`` -> pretrained pooler (moved into the head)
-> dropout -> output; NeoBERT ``[CLS]`` -> dense -> tanh -> output; ModernBERT its
``classifier_pooling`` -> dense -> activation -> LayerNorm -> output. ``pooling="mean"`` (or
any other mlxbert-heads pooling) gives a plain output layer on that pooling instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlx.core as mx

from mlxbert_core import checkpoint_pooling, from_pretrained, get_preset, load_tokenizer
from mlxbert_core.loading import read_config
from mlxbert_core.registry import resolve_architecture
from mlxbert_heads import TaskModel, create_head, default_head_for, head_from_config
from mlxbert_heads.registry import normalize_task

from .layout import HeadPlan, classifier_layout, outputs_kwargs, plan_head
from .record import TaskModelInfo, encoder_config


def missing_extra(extra: str, what: str) -> ImportError:
    """The error for an optional dependency that is not installed."""
    return ImportError(
        f"{what} needs the optional dependency mlxbert-{extra}: pip install 'mlxbert-glue[{extra}]'"
    )


def load_encoder(
    source: str | Path,
    *,
    dtype: str | None = None,
    skeleton: bool = False,
    checkpoint: str | None = None,
):
    """An encoder from a preset name, folder or hub id (``skeleton``: built from config.json
    with fresh weights, for loaders that fill them in themselves)."""
    if not skeleton:
        extra = {"checkpoint": checkpoint} if checkpoint else {}
        return from_pretrained(str(source), dtype=dtype, **extra)
    folder = Path(source)
    config = read_config(folder)
    config.pop("quantization", None)
    arch = resolve_architecture(config, source=folder / "config.json")
    encoder = arch.build(config, "encoder")
    object.__setattr__(encoder, "config_dict", config)
    object.__setattr__(encoder, "name_or_path", str(folder))
    return encoder


def resolve_head(
    head_type: str, num_labels: int | None, labels: list[str] | None, options: dict[str, Any]
) -> tuple[str, int]:
    """(registered head type, number of outputs) for any head registered with
    ``mlxbert_heads.register_head``."""
    key = normalize_task(head_type)
    cls = default_head_for(key)  # a clear error names the registered types
    argument = cls.outputs_argument
    if argument is not None and argument in options:
        return key, int(options[argument])
    if num_labels is None and labels is not None:
        num_labels = len(labels)
    if key == "binary":
        if num_labels not in (None, 1, 2):
            raise ValueError(f"a binary head has two labels, not num_labels={num_labels}")
        return key, 2
    if argument is None or key == "regression":
        return key, int(num_labels or 1)
    if num_labels is None:
        raise ValueError(f"a {key} head needs num_labels (or labels)")
    return key, int(num_labels)


def _take_pooler(encoder: Any, head: Any, copy_weights: bool) -> None:
    """The encoder's pretrained pooler becomes the head's dense layer (and leaves the
    encoder): the reference classifier's body."""
    pooler = encoder.get("pooler") if hasattr(encoder, "get") else None
    if pooler is None:
        return
    if copy_weights:
        dense = pooler.dense
        head.layers[0].weight = dense.weight
        if "bias" in dense and "bias" in head.layers[0]:
            head.layers[0].bias = dense.bias
    encoder.remove_pooler()


def build_task_model(
    encoder: Any,
    info: TaskModelInfo,
    *,
    plan: HeadPlan | None = None,
    head_options: dict[str, Any] | None = None,
    from_saved: bool = False,
) -> TaskModel:
    """Wrap ``encoder`` in a ``TaskModel`` described by ``info``: a new head after ``plan``,
    or (``info.head`` set) the head a saved folder describes."""
    hidden = int(encoder.hidden_size)
    if info.head is not None:
        head = head_from_config(info.head)
        takes_pooler = info.pooling == "cls" and classifier_body(info) == "pooler"
    else:
        plan = plan or HeadPlan(pooling=info.pooling, pooled_dropout=info.dropout)
        kwargs = {
            **outputs_kwargs(info.head_task, info.num_labels),
            **plan.head_kwargs,
            **(head_options or {}),
        }
        head = create_head(info.head_task, hidden, **kwargs)
        takes_pooler = plan.takes_pooler
    if takes_pooler:
        # A saved folder stores this layer under the pooler's name; the head's own copy is
        # loaded from there, so the encoder's (identical) pooler is just removed.
        _take_pooler(encoder, head, copy_weights=not from_saved)
    model = TaskModel(encoder, head, pooling=info.pooling, dropout=info.dropout)
    model.mlxbert_info = info
    return model


def classifier_body(info: TaskModelInfo) -> str | None:
    """The reference body of the model's architecture when its head has that shape."""
    layout = classifier_layout(info.architecture)
    head = info.head or {}
    if layout is None or len(head.get("hidden_dims") or []) != 1:
        return None
    return layout.body


def _lora_config(lora: Any, model: Any, quantize: int | None):
    try:
        from mlxbert_lora import LoraConfig
    except ImportError:
        raise missing_extra("lora", "LoRA fine-tuning") from None
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
    saved += [name for name in ("head", "pooler") if name not in saved]
    config.modules_to_save = saved
    return config


def _fast_quantized_layer(quantize: int | None):
    """mlxbert-quant's quantized layer (a fast product for many rows) for QLoRA's base, when
    that extra is installed; else LoRA's default (MLX's plain quantized layer)."""
    if quantize is None:
        return None
    try:
        from mlxbert_quant import QuantizedLinear
    except ImportError:
        return None
    return QuantizedLinear.from_linear


def _add_adapters(model: TaskModel, info: TaskModelInfo, lora: Any, quantize: int | None):
    if lora is not None:
        from mlxbert_lora import apply_lora

        config = _lora_config(lora, model, quantize)
        apply_lora(model, config, quantize_layer=_fast_quantized_layer(quantize))
        info.lora = config.to_peft_dict()
    elif quantize is not None:
        try:
            from mlxbert_quant import quantize as quantize_model
        except ImportError:
            raise missing_extra("quant", "quantization") from None
        quantize_model(model.encoder, bits=int(quantize))
        info.quantization = {"bits": int(quantize)}


def create_task_model(
    name_or_path: str | Path,
    head_type: str,
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
    task: str | None = None,
    checkpoint: str | None = None,
    seed: int | None = None,
):
    """A trainable task model with its tokenizer and record: ``(model, tokenizer, info)``.

    Args:
        name_or_path: a preset (``mlxbert_core.MODELS``), a local folder or a hub id; a saved
            task-model folder too (its encoder is reused, a new head is built).
        head_type: any head registered with ``mlxbert_heads.register_head`` (``binary``,
            ``multiclass``, ``multilabel``, ``regression``, ``ordinal``, ``timeseries``, or
            a user's own); ``num_labels`` / ``labels`` size it.
        lora: LoRA preset name, dict or ``LoraConfig`` (needs the ``lora`` extra); the head
            trains in full. ``quantize``: 4 or 8 bits for the encoder (with ``lora``: QLoRA).
        pooling: None = the checkpoint's own sentence pooling when it is a
            sentence-transformers model (all-MiniLM-L6-v2: ``mean``), else the architecture's
            reference classifier (also asked for with ``"auto"``); ``cls`` / ``mean`` /
            ``max`` / ``attention`` / ``weighted_layer`` = that pooling with a plain output
            layer.
        head_options: extra head arguments (loss, class weights, horizon, ...).
        task: what the model is trained for, recorded as ``info.task`` (default: head type).
        checkpoint: for folders holding several checkpoints (M2-BERT), the one to load.
        seed: seeds MLX's random generator before the new head is initialised.
    """
    options = dict(head_options or {})
    head_key, n = resolve_head(head_type, num_labels, labels, options)
    preset = get_preset(name_or_path)
    if seed is not None:
        mx.random.seed(int(seed))
    encoder = load_encoder(name_or_path, dtype=dtype, checkpoint=checkpoint)
    folder = Path(getattr(encoder, "name_or_path", "") or str(name_or_path))
    config = encoder_config(getattr(encoder, "config_dict", None) or {})
    architecture = encoder.architecture
    # A sentence-transformers checkpoint starts from the pooling it was trained with.
    pooling = pooling or (checkpoint_pooling(folder) if folder.is_dir() else None)
    plan = plan_head(classifier_layout(architecture), config, int(encoder.hidden_size), pooling)
    info = TaskModelInfo(
        task=task or head_key,
        head_task=head_key,
        num_labels=n,
        labels=[str(x) for x in labels] if labels is not None else None,
        pooling=plan.pooling,
        architecture=architecture,
        config=config,
        source=preset.hub_id if preset else str(name_or_path),
        source_dir=str(folder) if folder.is_dir() else None,
        max_length=max_length or (preset.max_length if preset else None),
        text_template=text_template,
        dropout=plan.pooled_dropout,
    )
    model = build_task_model(encoder, info, plan=plan, head_options=options)
    _add_adapters(model, info, lora, quantize)
    model.train()
    tokenizer = load_tokenizer(folder if folder.is_dir() else name_or_path)
    return model, tokenizer, info


__all__ = [
    "build_task_model",
    "create_task_model",
    "load_encoder",
    "missing_extra",
    "resolve_head",
]
