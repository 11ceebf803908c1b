"""Fitting one model on texts and encoded targets: the epoch loop around mlxbert-core's
:class:`~mlxbert_core.training.Trainer`, evaluation after every epoch, early stopping, the best
epoch saved as a complete model folder, and a checkpoint after every epoch to resume from.

Files of one fit::

    MODEL_DIR/          the best epoch's model folder (config.json, model.safetensors,
                        tokenizer.json, mlxbert.json with the table template and targets)
    WORK_DIR/log.json   settings, per-epoch loss / metrics / seconds, best epoch, finished flag
    WORK_DIR/state/     trainer state after the last finished epoch (removed when finished)
    WORK_DIR/valid_predictions.npy   the best epoch's predictions on the validation rows
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_dir, read_json, write_json
from .progress import Reporter
from .scoring import greater_is_better, primary_metric, score
from .targets import TargetSpec
from .template import TextTemplate

#: Bump when the meaning of mlxbert.json's "kaggle" block changes.
KAGGLE_META_VERSION = 1
DEFAULT_MODEL = "all-minilm-l6-v2"


class SimulatedKill(RuntimeError):
    """Raised by the test hooks (``MLXBERT_KAGGLE_KILL_AFTER_EPOCHS`` / ``_FOLDS``) to imitate
    a run killed after a checkpoint was written."""


def maybe_simulate_kill(kind: str, count: int) -> None:
    """Raise :class:`SimulatedKill` when ``MLXBERT_KAGGLE_KILL_AFTER_<KIND>`` equals ``count``
    (used by the resume tests; never set in normal use)."""
    value = os.environ.get(f"MLXBERT_KAGGLE_KILL_AFTER_{kind.upper()}")
    if value and int(value) == count:
        raise SimulatedKill(f"simulated kill after {count} {kind} (test hook)")


@dataclass
class FitConfig:
    """Hyper-parameters of one fit (the ``mlxbert train`` flags).

    ``lr`` defaults to 5e-4 with LoRA (adapters need a larger step) and to the model preset's
    rate (5e-5 for unknown models) for full fine-tuning.
    """

    model: str = DEFAULT_MODEL
    epochs: int = 3
    batch_size: int = 32
    max_length: int = 128
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

    def __post_init__(self) -> None:
        from .errors import InputError

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
            from mlxbert_lora import LoraConfig

            try:
                LoraConfig.preset(self.lora)
            except (KeyError, ValueError) as exc:
                problems.append(f"--lora {self.lora!r}: {exc}")
        if self.metric is not None:
            from mlxbert_heads.metrics import METRICS

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
        from mlxbert_glue.presets import get_preset

        preset = get_preset(self.model)
        return preset.learning_rate if preset else 5e-5

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------- model pieces


def _labels_for_model(spec: TargetSpec) -> list[str] | None:
    return None if spec.task == "regression" else list(spec.labels or [])


def build_model(spec: TargetSpec, template: TextTemplate, config: FitConfig):
    """(task model, tokenizer, info, max length) for ``spec`` from mlxbert-glue's factory."""
    import mlx.core as mx

    from mlxbert_glue import create_model_and_tokenizer
    from mlxbert_glue.features import effective_max_length

    from .errors import InputError

    mx.random.seed(config.seed)  # the new head's initialisation belongs to the seed
    try:
        model, tokenizer, info = create_model_and_tokenizer(
            config.model,
            spec.task,
            num_labels=spec.num_outputs,
            labels=_labels_for_model(spec),
            lora=config.lora,
            quantize=config.quantize,
            pooling=config.pooling,
            max_length=config.max_length,
            text_template=template.describe(),
        )
    except (OSError, ValueError, ImportError) as exc:
        # Missing folders, unknown hub ids, no network, a missing optional extra.
        raise InputError(f"cannot load model {config.model!r}: {exc}") from None
    max_length = effective_max_length(config.max_length, info.config)
    return model, tokenizer, info, max_length


def _forward(model, batch):
    return model(
        batch["input_ids"],
        attention_mask=batch.get("attention_mask"),
        token_type_ids=batch.get("token_type_ids"),
    )


def make_loss(task: str):
    """The training loss for ``task``. Targets are checked once up front
    (:meth:`TargetSpec.encode`); binary, multilabel, multiclass and regression call the heads'
    loss functions directly on the prepared targets (BCE, cross-entropy, MSE on standardised
    targets: the losses the heads use by default), ordinal uses the head's own likelihood."""
    from mlxbert_heads import losses

    if task in ("binary", "multilabel"):
        return lambda m, b: losses.binary_cross_entropy(_forward(m, b), b["labels"])
    if task == "multiclass":
        return lambda m, b: losses.cross_entropy(_forward(m, b), b["labels"])
    if task == "regression":
        return lambda m, b: losses.mse_loss(_forward(m, b), b["labels"])
    return lambda m, b: m.head.loss(_forward(m, b), b["labels"])


def training_targets(model, spec: TargetSpec, y: np.ndarray) -> np.ndarray:
    """What the loss compares outputs with: regression targets standardised with the head's
    fitted scaler (fit it first), others unchanged."""
    if spec.task != "regression":
        return y
    mean = np.asarray(model.head.target_mean, dtype=np.float32)
    std = np.asarray(model.head.target_std, dtype=np.float32)
    return ((y.reshape(len(y), -1) - mean) / std).astype(np.float32)


def raw_predictions(head, task: str, logits: np.ndarray) -> np.ndarray:
    """Head outputs -> probabilities (classification) or values on the training scale."""
    if task == "regression":
        values = np.asarray(head.predict(logits), dtype=np.float64)
        return values.reshape(len(values), -1)
    return np.asarray(head.predict_proba(logits), dtype=np.float64)


def encode_texts(tokenizer, texts: list[str], max_length: int) -> dict[str, Any]:
    from mlxbert_glue.features import tokenize_texts

    return tokenize_texts(tokenizer, texts, max_length=max_length)


def predict_raw(
    model, tokenizer, texts: list[str], *, task: str, max_length: int, batch_size: int = 64
) -> np.ndarray:
    """Raw predictions of a task model for texts (batched by length, original order)."""
    from mlxbert_glue import predict_logits
    from mlxbert_glue.features import pad_id_of

    features = encode_texts(tokenizer, texts, max_length)
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


def _fresh_log(config: FitConfig, spec: TargetSpec, n_train: int, n_valid: int) -> dict:
    return {
        "config": config.to_dict(),
        "target": spec.to_dict(),
        "rows": [n_train, n_valid],
        "epochs": [],
        "best": None,
        "finished": False,
    }


def _improved(new: float, best: dict | None, metric: str) -> bool:
    if best is None:
        return True
    if greater_is_better(metric):
        return new > best["score"]
    return new < best["score"]


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
    """Train one model; return its log (``best`` epoch, ``metrics``, ``epochs``, …) with
    ``valid_predictions`` (the best epoch's raw predictions on the validation rows, or None).

    Without validation rows every epoch is "best" (the last one is kept) and early stopping
    is off. With ``resume`` a finished fit is returned as it is and an interrupted one
    continues after its last checkpoint.
    """
    import mlx.core as mx

    from mlxbert_core.training import Trainer, TrainingConfig, batch_iterator
    from mlxbert_glue import predict_logits, save_task_model
    from mlxbert_glue.features import pad_id_of

    reporter = reporter or Reporter()
    model_dir, work_dir = Path(model_dir), Path(work_dir)
    log_path, state_dir = work_dir / "log.json", work_dir / "state"
    preds_path = work_dir / "valid_predictions.npy"
    has_valid = valid_texts is not None and y_valid is not None and len(valid_texts) > 0
    n_valid = len(valid_texts) if has_valid else 0

    log = read_json(log_path) if resume else None
    same_run = (
        log is not None
        and log.get("config") == config.to_dict()
        and log.get("target") == spec.to_dict()
        and log.get("rows") == [len(train_texts), n_valid]
    )
    all_epochs_done = same_run and (
        log.get("finished") or log.get("stopped") or len(log["epochs"]) >= config.epochs
    )
    if all_epochs_done and (model_dir / "mlxbert.json").is_file():
        log["finished"] = True
        log["valid_predictions"] = np.load(preds_path) if preds_path.is_file() else None
        reporter.log(f"{label}: already finished, reusing {model_dir}")
        return log
    if not same_run:
        shutil.rmtree(work_dir, ignore_errors=True)
        log = _fresh_log(config, spec, len(train_texts), n_valid)
    work_dir.mkdir(parents=True, exist_ok=True)

    model, tokenizer, info, max_length = build_model(spec, template, config)
    if spec.task == "regression":
        model.head.fit_scaler(y_train.reshape(len(y_train), -1))
    features = encode_texts(tokenizer, train_texts, max_length)
    features["labels"] = training_targets(model, spec, y_train)
    valid_features = encode_texts(tokenizer, valid_texts, max_length) if has_valid else None
    pad_id = pad_id_of(tokenizer)
    batches = batch_iterator(
        features,
        config.batch_size,
        shuffle=True,
        seed=config.seed,
        bucket_by_length=True,
        pad_id=pad_id,
    )
    loss_fn = make_loss(spec.task)
    train_config = TrainingConfig(
        learning_rate=config.learning_rate(),
        weight_decay=config.weight_decay,
        warmup_ratio=config.warmup_ratio,
        epochs=config.epochs,
        batch_size=config.batch_size,
        compute_dtype=config.compute_dtype,
        compile=config.compile,
        seed=config.seed,
    )
    model.train()
    trainer = Trainer(
        model, loss_fn, train_config, total_steps=train_config.optimizer_steps(len(batches))
    )
    start_epoch = 0
    if log["epochs"] and (state_dir / "trainer_state.json").is_file():
        extra = trainer.load_state(state_dir)
        start_epoch = int(extra.get("epochs_done", 0))
        log["epochs"] = log["epochs"][:start_epoch]
        reporter.log(f"{label}: resuming after epoch {start_epoch}")
    elif log["epochs"]:  # a log without its state: start the fit again
        log = _fresh_log(config, spec, len(train_texts), n_valid)

    metric = config.metric or primary_metric(spec)
    stale = int(log.get("stale_epochs", 0))
    last_metric: float | None = log["best"]["score"] if log.get("best") else None
    for epoch in range(start_epoch, config.epochs):
        batches.set_epoch(epoch)
        model.train()
        started = time.perf_counter()
        losses = []
        with reporter.bar(f"{label} epoch {epoch + 1}/{config.epochs}", len(batches)) as bar:
            if last_metric is not None:
                bar.set_info(**{f"best {metric}": last_metric})
            for step, batch in enumerate(batches):
                losses.append(trainer.step(batch))
                if (step + 1) % 10 == 0:
                    bar.advance(1, loss=float(losses[-1]))
                else:
                    bar.advance(1)
        train_loss = float(mx.mean(mx.stack(losses)))
        train_seconds = time.perf_counter() - started
        entry: dict[str, Any] = {"epoch": epoch + 1, "loss": train_loss, "seconds": train_seconds}
        improved = True
        if has_valid:
            started = time.perf_counter()
            logits = predict_logits(
                model, valid_features, batch_size=config.eval_batch_size, pad_id=pad_id
            )
            raw = raw_predictions(model.head, spec.task, logits)
            metrics = score(spec, y_valid, raw)
            if metric not in metrics:
                from .errors import InputError

                raise InputError(
                    f"metric {metric!r} is not computed for a {spec.task} task; "
                    f"choose one of {', '.join(metrics)}"
                )
            entry |= {"metrics": metrics, "eval_seconds": time.perf_counter() - started}
            improved = _improved(metrics[metric], log["best"], metric)
            last_metric = metrics[metric]
        if improved:
            log["best"] = {
                "epoch": epoch + 1,
                "score": entry.get("metrics", {}).get(metric),
                "metric": metric,
                "metrics": entry.get("metrics"),
            }
            extra_meta = kaggle_meta(
                spec, template, **(meta or {}), epoch=epoch + 1, metrics=entry.get("metrics")
            )
            with atomic_dir(model_dir) as tmp:
                save_task_model(
                    model,
                    tokenizer,
                    tmp,
                    info=info,
                    max_length=max_length,
                    text_template=template.describe(),
                    extra=extra_meta,
                )
            if has_valid:
                np.save(preds_path, raw)
            stale = 0
        else:
            stale += 1
        log["epochs"].append(entry)
        log["stale_epochs"] = stale
        shown_metrics = entry.get("metrics", {})
        order = [metric, *[k for k in shown_metrics if k != metric]][:4] if shown_metrics else []
        shown = ", ".join(f"{k} {shown_metrics[k]:.4f}" for k in order)
        reporter.log(
            f"{label} epoch {epoch + 1}: loss {train_loss:.4f}"
            + (f", {shown}" if shown else "")
            + (" (best)" if improved and has_valid else "")
            + f" [{train_seconds:.0f} s]"
        )
        stop = has_valid and config.early_stopping is not None and stale >= config.early_stopping
        log["stopped"] = bool(stop)
        if epoch + 1 < config.epochs and not stop:
            # The state first, then the log that points at it (a kill in between is harmless).
            trainer.save_state(state_dir, extra={"epochs_done": epoch + 1})
        write_json(log_path, log)
        maybe_simulate_kill("epochs", epoch + 1)
        if stop:
            reporter.log(f"{label}: early stopping after {stale} epoch(s) without improvement")
            break
    log["finished"] = True
    write_json(log_path, log)
    shutil.rmtree(state_dir, ignore_errors=True)
    log["valid_predictions"] = np.load(preds_path) if has_valid else None
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
