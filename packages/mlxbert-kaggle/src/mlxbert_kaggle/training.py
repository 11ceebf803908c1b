"""Fitting one model on texts and encoded targets: the ``mlxbert train`` settings
(:class:`FitConfig`) and a thin layer over the task-model layer's fit loop
(:func:`mlxbert_glue.fit`), which evaluates after every epoch, stops early, keeps the best
epoch as a complete model folder and resumes after an interruption.

Files of one fit::

    MODEL_DIR/          the best epoch's model folder (config.json, model.safetensors,
                        tokenizer.json, mlxbert.json with the table template and targets)
    WORK_DIR/log.json   settings, per-epoch loss / metrics / seconds, best epoch, finished flag
    WORK_DIR/state/     trainer state after the last finished epoch (removed when finished)
    WORK_DIR/valid_outputs.npy   the best epoch's head outputs on the validation rows
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlxbert_glue import (
    DEFAULT_MAX_LENGTH,
    Examples,
    Reporter,
    StaleRunError,
    TrainingConfig,
    create_task_model,
    fit,
    get_preset,
    pad_id_of,
    predict_logits,
    tokenize_texts,
)
from mlxbert_heads.metrics import METRICS
from mlxbert_lora import LoraConfig

from .errors import InputError, SimulatedKill
from .scoring import greater_is_better, primary_metric, score
from .targets import TargetSpec
from .template import TextTemplate
from .thresholds import THRESHOLD_TASKS, criterion_for, score_with_thresholds

#: Bump when the meaning of mlxbert.json's "kaggle" block changes.
KAGGLE_META_VERSION = 1
DEFAULT_MODEL = "all-minilm-l6-v2"


def maybe_simulate_kill(kind: str, count: int) -> None:
    """Raise :class:`SimulatedKill` when ``MLXBERT_KAGGLE_KILL_AFTER_<KIND>`` equals ``count``
    (used by the resume tests; never set in normal use)."""
    value = os.environ.get(f"MLXBERT_KAGGLE_KILL_AFTER_{kind.upper()}")
    if value and int(value) == count:
        raise SimulatedKill(f"simulated kill after {count} {kind} (test hook)")


#: What ``--precision`` (training) and ``--dtype`` (prediction) accept. Training in bfloat16 or
#: float16 computes in that type and keeps float32 master weights (float16 with loss scaling).
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def check_dtype(dtype: str | None, flag: str = "--dtype") -> None:
    """Refuse a compute type other than :data:`COMPUTE_DTYPES` (None: as saved)."""
    if dtype is not None and dtype not in COMPUTE_DTYPES:
        raise InputError(f"{flag} {dtype!r}: use one of {', '.join(COMPUTE_DTYPES)}")


@dataclass
class FitConfig:
    """Hyper-parameters of one fit (the ``mlxbert train`` flags).

    ``fit_threshold``: binary and multilabel decisions use thresholds fitted on the
    validation predictions (see :mod:`mlxbert_kaggle.thresholds`), not 0.5.
    ``balance_labels``: a multilabel head weighs each label's positives by
    ``sqrt(negatives / positives)`` in its loss, so that rare labels are learnt at all.

    ``lr`` defaults to 5e-4 with LoRA (adapters need a larger step) and to the model preset's
    rate (5e-5 for unknown models) for full fine-tuning.

    ``lora_rank`` replaces the LoRA preset's rank (alpha = 2 x rank); ``head_loss`` the
    head's loss (``bce`` / ``focal`` for binary and multilabel heads, ``ce`` / ``focal`` for
    multiclass, ``mse`` / ``mae`` / ``huber`` for regression; the head checks the name). Both are left out of :meth:`to_dict` while unset, so the settings of runs
    that never used them read as before.
    """

    model: str = DEFAULT_MODEL
    checkpoint: str | None = None
    epochs: int = 3
    batch_size: int = 32
    max_length: int = DEFAULT_MAX_LENGTH
    lr: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    lora: str | None = None
    quantize: int | None = None
    seed: int = 0
    early_stopping: int | None = None
    eval_batch_size: int = 64
    compile: bool = True
    pooling: str | None = None
    compute_dtype: str = "float32"
    metric: str | None = None
    fit_threshold: bool = True
    balance_labels: bool = True
    lora_rank: int | None = None
    head_loss: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"--epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.max_length < 8:
            problems.append(f"--max-length must be >= 8, got {self.max_length}")
        if self.lr is not None and not self.lr > 0:
            problems.append(f"--lr must be > 0, got {self.lr}")
        if self.quantize not in (None, 4, 8):
            problems.append(f"--quantize must be 4 or 8, got {self.quantize}")
        if self.early_stopping is not None and self.early_stopping < 1:
            problems.append(f"--early-stopping must be >= 1 epoch, got {self.early_stopping}")
        if self.lora is not None:
            try:
                LoraConfig.preset(self.lora)
            except (KeyError, ValueError) as exc:
                problems.append(f"--lora {self.lora!r}: {exc}")
        if self.lora_rank is not None and (self.lora is None or self.lora_rank < 1):
            problems.append("--lora-rank needs --lora and a rank >= 1")
        if self.compute_dtype not in COMPUTE_DTYPES:
            problems.append(
                f"--precision {self.compute_dtype!r}: use one of {', '.join(COMPUTE_DTYPES)}"
            )
        if self.metric is not None:
            known = {*METRICS, "f1_micro", "f1_macro"}
            if self.metric not in known:
                problems.append(f"--metric {self.metric!r}: use one of {', '.join(sorted(known))}")
        if problems:
            raise InputError("; ".join(problems))

    def learning_rate(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        if self.lora is not None:
            return 5e-4
        preset = get_preset(self.model)
        return preset.learning_rate if preset else 5e-5

    def training_config(self) -> TrainingConfig:
        """The core engine's settings (the fields both records share, and the rate)."""
        shared = {f.name for f in dataclasses.fields(TrainingConfig)}
        values = {k: v for k, v in self.to_dict().items() if k in shared}
        return TrainingConfig(**values, learning_rate=self.learning_rate())

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        return {k: v for k, v in values.items() if not (k in _UNSET_OMITTED and v is None)}

    def lora_setting(self) -> Any:
        """What the task-model layer's ``lora=`` takes: the preset name, or the preset with
        this run's rank."""
        if self.lora is None or self.lora_rank is None:
            return self.lora
        rank = int(self.lora_rank)
        return LoraConfig.preset(self.lora, r=rank, alpha=2 * rank)


#: FitConfig fields added later, omitted from ``to_dict`` while None.
_UNSET_OMITTED = ("lora_rank", "head_loss")


# ---------------------------------------------------------------------------- model pieces


def _labels_for_model(spec: TargetSpec) -> list[str] | None:
    return None if spec.task == "regression" else list(spec.labels or [])


def label_weights(y: np.ndarray, cap: float = 30.0) -> list[float]:
    """Per-label positive weights of a multilabel loss: ``sqrt(negatives / positives)``,
    between 1 and ``cap`` (a label without positives gets ``cap``)."""
    y = np.asarray(y).reshape(len(y), -1)
    positives = y.sum(axis=0)
    ratio = (len(y) - positives) / np.maximum(positives, 1)
    return [float(w) for w in np.clip(np.sqrt(ratio), 1.0, cap)]


def build_model(
    spec: TargetSpec, template: TextTemplate, config: FitConfig, head_options: dict | None = None
):
    """``(task model, tokenizer, info)`` for ``spec``, from the task-model layer."""
    try:
        return create_task_model(
            config.model,
            spec.task,
            num_labels=spec.num_outputs,
            labels=_labels_for_model(spec),
            lora=config.lora_setting(),
            quantize=config.quantize,
            pooling=config.pooling,
            max_length=config.max_length,
            text_template=template.describe(),
            checkpoint=config.checkpoint,
            head_options=head_options,
        )
    except (OSError, ValueError, ImportError) as exc:
        # Missing folders, unknown hub ids, no network, a missing optional extra.
        raise InputError(f"cannot load model {config.model!r}: {exc}") from None


def raw_predictions(head, task: str, logits: np.ndarray) -> np.ndarray:
    """Head outputs -> probabilities (classification) or values on the training scale."""
    if task == "regression":
        values = np.asarray(head.predict(logits), dtype=np.float64)
        return values.reshape(len(values), -1)
    return np.asarray(head.predict_proba(logits), dtype=np.float64)


def predict_raw(
    model, tokenizer, texts: list[str], *, task: str, max_length: int, batch_size: int = 64
) -> np.ndarray:
    """Raw predictions of a task model for texts (batched by length, original order)."""
    features = tokenize_texts(tokenizer, texts, max_length=max_length)
    logits = predict_logits(model, features, batch_size=batch_size, pad_id=pad_id_of(tokenizer))
    return raw_predictions(model.head, task, logits)


def kaggle_meta(spec: TargetSpec, template: TextTemplate, **more: Any) -> dict[str, Any]:
    """The ``"kaggle"`` block of ``mlxbert.json``: all ``mlxbert predict`` needs besides the
    weights and the tokenizer."""
    return {
        "kaggle": {
            "version": KAGGLE_META_VERSION,
            "target": spec.to_dict(),
            "template": template.to_dict(),
            **more,
        }
    }


# ---------------------------------------------------------------------------- the fit


def fit_model(
    train_texts: list[str],
    y_train: np.ndarray,
    valid_texts: list[str] | None,
    y_valid: np.ndarray | None,
    *,
    spec: TargetSpec,
    template: TextTemplate,
    config: FitConfig,
    model_dir: str | Path,
    work_dir: str | Path,
    reporter: Reporter | None = None,
    label: str = "train",
    meta: dict[str, Any] | None = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Train one model through the task-model layer's fit loop; return its log (``best``
    epoch, ``epochs``, ...) with ``valid_predictions`` (the best epoch's raw predictions on
    the validation rows, or None).

    Without validation rows every epoch is "best" (the last one is kept) and early stopping
    is off. With ``resume`` a finished fit is returned as it is and an interrupted one
    continues after its last checkpoint.
    """
    has_valid = valid_texts is not None and y_valid is not None and len(valid_texts) > 0
    metric = config.metric or primary_metric(spec)
    decide = config.fit_threshold and spec.task in THRESHOLD_TASKS
    head_options = None
    if spec.task == "multilabel" and config.balance_labels and config.head_loss != "focal":
        head_options = {"pos_weight": label_weights(y_train)}
    if config.head_loss is not None:
        head_options = {**(head_options or {}), "loss": config.head_loss}

    def scorer(head, outputs: np.ndarray) -> dict[str, float]:
        raw = raw_predictions(head, spec.task, outputs)
        if decide:  # each epoch judged at its own best thresholds, as it will be used
            metrics, _ = score_with_thresholds(spec, y_valid, raw, metric)
        else:
            metrics = score(spec, y_valid, raw)
        if metric not in metrics:
            raise InputError(
                f"metric {metric!r} is not computed for a {spec.task} task; "
                f"choose one of {', '.join(metrics)}"
            )
        return metrics

    def extra(entry: dict[str, Any]) -> dict[str, Any]:
        return kaggle_meta(
            spec, template, **(meta or {}), epoch=entry["epoch"], metrics=entry.get("metrics")
        )

    try:
        result = fit(
            lambda: build_model(spec, template, config, head_options),
            Examples(list(train_texts), labels=np.asarray(y_train)),
            Examples(list(valid_texts), labels=np.asarray(y_valid)) if has_valid else None,
            training=config.training_config(),
            model_dir=model_dir,
            work_dir=work_dir,
            max_length=config.max_length,
            scorer=scorer if has_valid else None,
            metric=metric if has_valid else None,
            greater_is_better=greater_is_better(metric),
            early_stopping=config.early_stopping,
            eval_batch_size=config.eval_batch_size,
            settings={"fit": config.to_dict(), "target": spec.to_dict()},
            resume=resume,
            reporter=reporter,
            label=label,
            extra=extra,
            on_epoch_end=lambda epoch: maybe_simulate_kill("epochs", epoch),
            decision=criterion_for(metric) if decide and has_valid else None,
        )
    except StaleRunError as exc:
        raise InputError(str(exc)) from None
    log = dict(result.log)
    if log.get("best") and log["best"].get("metric") is None:
        log["best"]["metric"] = metric
    # The saved model's head turns the kept outputs into predictions, as it will in predict.
    outputs = result.valid_outputs
    log["valid_predictions"] = (
        None if outputs is None else raw_predictions(result.saved_head(), spec.task, outputs)
    )
    fitted = log.get("decision") or {}
    log["threshold"] = fitted.get("threshold", fitted.get("thresholds"))
    return log


__all__ = [
    "DEFAULT_MODEL",
    "FitConfig",
    "SimulatedKill",
    "build_model",
    "fit_model",
    "kaggle_meta",
    "predict_raw",
    "raw_predictions",
]
