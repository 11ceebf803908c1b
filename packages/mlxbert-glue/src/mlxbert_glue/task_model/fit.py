"""The fit loop: train a task model for some epochs, evaluate after each with the caller's
scorer, keep the best epoch as a model folder, stop early, resume exactly after an
interruption. GLUE fine-tuning and the CLI's table training both run through it.

Files of one fit::

    MODEL_DIR/                the best epoch's model folder (written atomically)
    WORK_DIR/log.json         settings, per-epoch loss / metrics / seconds, best epoch, finished
    WORK_DIR/state/           trainer state after the last finished epoch (removed when done)
    WORK_DIR/valid_outputs.npy  the best epoch's head outputs on the validation examples
    WORK_DIR/valid_examples.json  those examples (texts, pairs, targets), in the same order

A run is reused or continued only when every setting that changes its result matches: the
optimizer settings, the maximum length, early stopping and metric, the caller's own settings
(model, task, ...) and a fingerprint of the training and validation data. Otherwise
``resume=True`` refuses with the list of what differs (:class:`StaleRunError`).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np

from mlxbert_core.training import Trainer, TrainingConfig, batch_iterator
from mlxbert_heads import head_from_config

from .files import atomic_dir, read_json, write_json
from .folder import read_info, save_task_model
from .inputs import Examples, encode_examples, fit_length, pad_id_of, save_examples
from .predict import fixed_lengths, predict_logits
from .progress import Reporter, epoch_scalars
from .record import META_FILE, TaskModelInfo

LOG_FILE = "log.json"
STATE_DIR = "state"
OUTPUTS_FILE = "valid_outputs.npy"
EXAMPLES_FILE = "valid_examples.json"

Scorer = Callable[[Any, np.ndarray], dict[str, float]]
Builder = Callable[[], tuple[Any, Any, TaskModelInfo]]


class StaleRunError(ValueError):
    """A work folder holds a run with other settings than the one asked for."""


@dataclass
class FitResult:
    """What a fit gives back: its log (``epochs``, ``best``, ``finished``, ``stopped``), the
    best epoch's head outputs on the validation examples, and where the model is."""

    log: dict[str, Any]
    valid_outputs: np.ndarray | None
    model_dir: Path

    @property
    def best(self) -> dict[str, Any]:
        return self.log["best"]

    @property
    def epochs(self) -> list[dict[str, Any]]:
        return self.log["epochs"]

    def saved_head(self) -> Any:
        """The saved model's head without its weights (its settings and fitted state: target
        scaling, temperature, thresholds), enough to turn head outputs into predictions."""
        return head_from_config(read_info(self.model_dir).head)


def data_fingerprint(*parts: Examples | None) -> str:
    """A short hash of examples (texts, pairs, targets, extra inputs): equal data, equal hash."""
    digest = hashlib.sha256()
    for examples in parts:
        if examples is None:
            digest.update(b"\x00none")
            continue
        for text in examples.texts:
            digest.update(text.encode("utf-8", "surrogatepass") + b"\x1f")
        for text in examples.pairs or ():
            digest.update(text.encode("utf-8", "surrogatepass") + b"\x1e")
        arrays = [examples.labels, *(examples.extra[k] for k in sorted(examples.extra))]
        for array in arrays:
            if array is not None:
                values = np.ascontiguousarray(np.asarray(array))
                digest.update(str((values.dtype, values.shape)).encode() + values.tobytes())
    return digest.hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    """Settings as they read back from JSON (tuples become lists)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    names = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            names += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(f"{prefix}{key} ({a!r} -> {b!r})")
    return names


def _loss(model: Any, batch: dict[str, mx.array]) -> mx.array:
    return model.loss(batch)  # the head's own loss (focal, weighted, standardised, ...)


def _fresh_log(settings: dict[str, Any]) -> dict[str, Any]:
    return {"settings": settings, "epochs": [], "best": None, "finished": False}


class _Fit:
    """One fit's state: the model, its data, the trainer and the log (see :func:`fit`)."""

    def __init__(
        self,
        build: Builder,
        train: Examples,
        valid: Examples | None,
        *,
        training: TrainingConfig,
        max_length: int,
        eval_batch_size: int,
    ):
        mx.random.seed(training.seed)  # the new head's initialisation belongs to the run
        self.model, self.tokenizer, self.info = build()
        self.training = training
        self.max_length = fit_length(max_length, self.model.encoder)
        self.pad_id = pad_id_of(self.tokenizer)
        self.eval_batch_size = eval_batch_size
        self.valid = valid
        head = self.model.head
        if callable(getattr(head, "fit_scaler", None)) and train.labels is not None:
            head.fit_scaler(train.labels)  # targets are standardised with training statistics
        features = encode_examples(self.tokenizer, train, max_length=self.max_length)
        self.valid_features = (
            encode_examples(self.tokenizer, valid, max_length=self.max_length)
            if valid is not None
            else None
        )
        self.batches = batch_iterator(
            features,
            training.batch_size,
            shuffle=True,
            seed=training.seed,
            bucket_by_length=True,
            pad_id=self.pad_id,
            length_buckets=fixed_lengths(self.model),
        )
        self.model.train()
        self.trainer = Trainer(
            self.model, _loss, training, total_steps=training.optimizer_steps(len(self.batches))
        )

    def train_epoch(self, epoch: int, reporter: Reporter, label: str, best: float | None):
        self.batches.set_epoch(epoch)
        self.model.train()
        title = f"{label} epoch {epoch + 1}/{self.training.epochs}"
        with reporter.bar(title, len(self.batches)) as bar:
            if best is not None:
                bar.set_info(best=best)

            def on_step(step: int, loss: mx.array) -> None:
                if step % 10:
                    bar.advance(1)
                    return
                value = float(loss)  # reading the loss waits for the step: every tenth one
                bar.advance(1, loss=value)
                values = {"train/loss": value, "train/learning_rate": self.trainer.learning_rate}
                reporter.scalars(epoch * len(self.batches) + step, values, kind="step", run=label)

            return self.trainer.train_epoch(self.batches, progress=False, on_step=on_step)

    def outputs(self) -> np.ndarray:
        assert self.valid_features is not None
        return predict_logits(
            self.model, self.valid_features, batch_size=self.eval_batch_size, pad_id=self.pad_id
        )

    def save(self, model_dir: Path, extra: dict[str, Any] | None) -> None:
        with atomic_dir(model_dir) as tmp:
            save_task_model(
                self.model,
                self.tokenizer,
                tmp,
                info=self.info,
                max_length=self.max_length,
                extra=extra,
            )


def fit(
    build: Builder,
    train: Examples,
    valid: Examples | None = None,
    *,
    training: TrainingConfig,
    model_dir: str | Path,
    work_dir: str | Path,
    max_length: int,
    scorer: Scorer | None = None,
    metric: str | None = None,
    greater_is_better: bool = True,
    early_stopping: int | None = None,
    eval_batch_size: int = 64,
    settings: Mapping[str, Any] | None = None,
    resume: bool = True,
    reporter: Reporter | None = None,
    label: str = "train",
    extra: Callable[[dict[str, Any]], dict[str, Any]] | dict[str, Any] | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
    decision: str | None = None,
) -> FitResult:
    """Train the task model ``build()`` returns on ``train``; keep the best epoch in
    ``model_dir``.

    Args:
        build: called (after seeding MLX's random generator with ``training.seed``) to make
            ``(model, tokenizer, info)``, e.g. ``lambda: create_task_model(...)``.
        train / valid: the examples (``valid`` None: every epoch is kept, the last wins).
        training: the optimizer, schedule, epochs and batch size (core's ``TrainingConfig``).
        max_length: tokens per input (capped at the encoder's limit).
        scorer: ``scorer(head, outputs) -> {metric: value}`` on the validation examples'
            head outputs; ``metric`` (default: its first key) picks the best epoch, larger
            is better unless ``greater_is_better=False``.
        early_stopping: stop after this many epochs without improvement.
        settings: the caller's settings that change the result (model, task, ...): with
            ``resume`` a finished run is reused and an interrupted one continued only when
            they, the data and the training settings match.
        extra: ``mlxbert.json``'s ``extra`` for the saved model, or a function of the epoch's
            log entry returning it.
        on_epoch_end: called with the epoch number after its checkpoint is written.
        decision: for heads that decide with thresholds (binary, multilabel), fit them on the
            best epoch's validation outputs maximising this criterion (``"f1"``,
            ``"accuracy"``, ``"youden"``) and store them in the saved model; the log's
            ``decision`` says what was fitted.
    """
    reporter = reporter or Reporter()
    model_dir, work_dir = Path(model_dir), Path(work_dir)
    log_path, state_dir = work_dir / LOG_FILE, work_dir / STATE_DIR
    outputs_path = work_dir / OUTPUTS_FILE
    has_valid = valid is not None and len(valid) > 0 and scorer is not None
    identity = _jsonable(
        {
            **dict(settings or {}),
            "training": training.to_dict(),
            "max_length": int(max_length),
            "metric": metric,
            "early_stopping": early_stopping,
            "data": data_fingerprint(train, valid if has_valid else None),
        }
    )

    log = read_json(log_path)
    if log is not None and log.get("settings") != identity:
        if resume:
            changed = _differences(log.get("settings") or {}, identity)
            raise StaleRunError(
                f"{work_dir} holds a run with other settings: {'; '.join(changed)}; use the "
                "same settings to continue it, or start afresh (overwrite) to replace it"
            )
        log = None
    if not resume:
        log = None
    if log is not None and log.get("finished") and (model_dir / META_FILE).is_file():
        reporter.log(f"{label}: already finished, reusing {model_dir}")
        outputs = np.load(outputs_path) if outputs_path.is_file() else None
        return FitResult(log, outputs, model_dir)
    if log is None:
        shutil.rmtree(state_dir, ignore_errors=True)
        outputs_path.unlink(missing_ok=True)
        log = _fresh_log(identity)
    work_dir.mkdir(parents=True, exist_ok=True)
    if has_valid:
        save_examples(work_dir / EXAMPLES_FILE, valid)

    run = _Fit(
        build,
        train,
        valid if has_valid else None,
        training=training,
        max_length=max_length,
        eval_batch_size=eval_batch_size,
    )
    start_epoch = 0
    if log["epochs"] and (state_dir / "trainer_state.json").is_file():
        start_epoch = int(run.trainer.load_state(state_dir).get("epochs_done", 0))
        log["epochs"] = log["epochs"][:start_epoch]
        reporter.log(f"{label}: resuming after epoch {start_epoch}")
    elif log["epochs"]:  # a log without its state: start the fit again
        log = _fresh_log(identity)

    stale = int(log.get("stale_epochs", 0))
    for epoch in range(start_epoch, training.epochs):
        best = log["best"]["score"] if log.get("best") else None
        stats = run.train_epoch(epoch, reporter, label, best)
        entry: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": stats["loss"],
            "train_seconds": stats["seconds"],
            "samples_per_s": stats["samples_per_s"],
            "learning_rate": stats["learning_rate"],
        }
        improved, outputs = True, None
        if has_valid:
            started = time.perf_counter()
            outputs = run.outputs()
            metrics = scorer(run.model.head, outputs)
            name = metric or next(iter(metrics))
            if name not in metrics:
                raise ValueError(
                    f"metric {name!r} is not computed here; choose one of {', '.join(metrics)}"
                )
            entry |= {
                "metrics": metrics,
                "score": metrics[name],
                "metric": name,
                "eval_seconds": time.perf_counter() - started,
            }
            if best is not None:
                gain = metrics[name] - best
                improved = gain > 0 if greater_is_better else gain < 0
        if improved:
            log["best"] = {k: entry.get(k) for k in ("epoch", "score", "metric", "metrics")}
            run.save(model_dir, extra(entry) if callable(extra) else extra)
            if outputs is not None:
                np.save(outputs_path, outputs)
            stale = 0
        else:
            stale += 1
        log["epochs"].append(entry)
        reporter.scalars(epoch + 1, epoch_scalars(entry), kind="epoch", run=label)
        log["stale_epochs"] = stale
        reporter.log(_epoch_line(label, entry, improved and has_valid))
        stop = has_valid and early_stopping is not None and stale >= early_stopping
        log["stopped"] = bool(stop)
        if epoch + 1 < training.epochs and not stop:
            # The state first, then the log that points at it (a kill in between is harmless).
            run.trainer.save_state(state_dir, extra={"epochs_done": epoch + 1})
        write_json(log_path, log)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
        if stop:
            reporter.log(f"{label}: early stopping after {stale} epoch(s) without improvement")
            break
    outputs = np.load(outputs_path) if has_valid and outputs_path.is_file() else None
    if decision and outputs is not None and valid.labels is not None:
        log["decision"] = fit_decision(model_dir, outputs, valid.labels, decision)
    log["finished"] = True
    write_json(log_path, log)
    shutil.rmtree(state_dir, ignore_errors=True)
    return FitResult(log, outputs, model_dir)


def fit_decision(
    model_dir: str | Path, outputs: np.ndarray, labels: np.ndarray, criterion: str
) -> dict[str, Any] | None:
    """Fit the saved model's decision thresholds on validation ``outputs`` (see ``fit``'s
    ``decision``) and store them in its record; returns what was fitted (None: the head has
    no thresholds, or the labels give nothing to choose between)."""
    info = read_info(model_dir)
    head = head_from_config(info.head)
    fitted = head.fit_decision(outputs, labels, criterion=criterion)
    if fitted:
        info.head = head.get_config()
        write_json(Path(model_dir) / META_FILE, info.to_meta())
    return fitted


def _epoch_line(label: str, entry: dict[str, Any], best: bool) -> str:
    metrics = entry.get("metrics") or {}
    order = [entry["metric"], *[k for k in metrics if k != entry["metric"]]][:4] if metrics else []
    shown = ", ".join(f"{k} {metrics[k]:.4f}" for k in order)
    return (
        f"{label} epoch {entry['epoch']}: loss {entry['loss']:.4f}"
        + (f", {shown}" if shown else "")
        + (" (best)" if best else "")
        + f" [{entry['train_seconds']:.0f} s]"
    )


__all__ = ["FitResult", "StaleRunError", "data_fingerprint", "fit", "fit_decision"]
