"""Experiment trackers users already have: the fit loop's per-step and per-epoch scalars
(:meth:`Reporter.scalars`) sent to TensorBoard, Weights & Biases or MLflow.

Each tracker is an optional extra, imported only when asked for:
``mlxbert-kaggle[tensorboard]`` (tensorboardX's event-file writer: no TensorFlow, no
server, files under ``OUTPUT/tensorboard/<fit>/``), ``[wandb]``, ``[mlflow]``.
Scalars: ``train/loss`` and ``train/learning_rate`` every tenth training batch (when the
progress bar reads the loss anyway), ``epoch/loss``, ``epoch/learning_rate``,
``epoch/train_seconds``, ``epoch/samples_per_s``, ``epoch/eval_seconds`` and
``valid/<metric>`` after every epoch; each fit (a fold, a seed) is its own run or prefix.

Trackers start on the first scalar (after the output folder was checked and prepared), and
a tracker that fails is switched off with one line of news: it never stops a training run.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlxbert_glue.task_model import Bar, Reporter

from .errors import InputError

TRACKERS = {
    "tensorboard": ("tensorboardX", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
}
TENSORBOARD_DIR = "tensorboard"


def slug(name: str) -> str:
    """A fit's label as a folder / metric prefix: ``fold 1/3`` -> ``fold-1-3``."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", name).strip("-") or "run"


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = (
                value if isinstance(value, (int, float, str, bool)) else str(value)
            )
    return out


class Tracker:
    """One tracker; ``scalars`` gets the fit loop's numbers, ``close`` flushes."""

    def scalars(self, step: int, values: dict[str, float], kind: str, run: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and finish."""


class TensorBoardTracker(Tracker):
    """Event files under ``log_dir/<fit>/`` (one TensorBoard run per fold or seed)."""

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self._writers: dict[str, Any] = {}

    def _writer(self, run: str) -> Any:
        if run not in self._writers:
            module = importlib.import_module("tensorboardX")
            self._writers[run] = module.SummaryWriter(logdir=str(self.log_dir / slug(run)))
        return self._writers[run]

    def scalars(self, step: int, values: dict[str, float], kind: str, run: str) -> None:
        writer = self._writer(run)
        for name, value in values.items():
            writer.add_scalar(name, value, global_step=step)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


class WandbTracker(Tracker):
    """One W&B run per command; each fit's scalars under its own prefix and step axis."""

    def __init__(self, directory: str | Path, name: str, config: dict[str, Any]):
        self.directory, self.name, self.config = Path(directory), name, config
        self._run: Any = None
        self._axes: set[str] = set()

    def scalars(self, step: int, values: dict[str, float], kind: str, run: str) -> None:
        if self._run is None:
            wandb = importlib.import_module("wandb")
            self.directory.mkdir(parents=True, exist_ok=True)
            self._run = wandb.init(name=self.name, config=self.config, dir=str(self.directory))
        prefix = slug(run)
        axis = f"{prefix}/{kind}"
        if axis not in self._axes:
            self._run.define_metric(axis)
            groups = ("train",) if kind == "step" else ("epoch", "valid")
            for group in groups:
                self._run.define_metric(f"{prefix}/{group}/*", step_metric=axis)
            self._axes.add(axis)
        self._run.log({axis: step, **{f"{prefix}/{k}": v for k, v in values.items()}})

    def close(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None


class MlflowTracker(Tracker):
    """One MLflow run per command (the tracking URI and experiment come from MLflow's own
    settings, e.g. ``MLFLOW_TRACKING_URI``); the settings as parameters."""

    def __init__(self, name: str, config: dict[str, Any]):
        self.name, self.config = name, config
        self._mlflow: Any = None

    def scalars(self, step: int, values: dict[str, float], kind: str, run: str) -> None:
        if self._mlflow is None:
            mlflow = importlib.import_module("mlflow")
            mlflow.start_run(run_name=self.name)
            mlflow.log_params(_flat(self.config))
            self._mlflow = mlflow
        prefix = slug(run)
        self._mlflow.log_metrics({f"{prefix}/{k}": v for k, v in values.items()}, step=step)

    def close(self) -> None:
        if self._mlflow is not None:
            self._mlflow.end_run()
            self._mlflow = None


class TrackingReporter(Reporter):
    """A reporter that shows what ``inner`` shows and sends scalars to trackers."""

    def __init__(self, inner: Reporter, trackers: list[Tracker]):
        self.inner = inner
        self.trackers = list(trackers)
        if self.trackers:
            atexit.register(self.close)  # flushed even when the command stops on an error

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Bar]:
        with self.inner.bar(description, total) as bar:
            yield bar

    def log(self, message: str) -> None:
        self.inner.log(message)

    def scalars(
        self, step: int, values: dict[str, float], *, kind: str = "step", run: str = ""
    ) -> None:
        self.inner.scalars(step, values, kind=kind, run=run)
        for tracker in list(self.trackers):
            try:
                tracker.scalars(step, values, kind, run)
            except Exception as exc:  # a tracker never stops training
                self.trackers.remove(tracker)
                self.inner.log(f"note: {type(tracker).__name__} switched off: {exc}")

    def close(self) -> None:
        for tracker in self.trackers:
            with contextlib.suppress(Exception):
                tracker.close()


def check_trackers(names: list[str] | None) -> list[str]:
    """Known, installed tracker names (:class:`InputError` with the install hint otherwise)."""
    out = []
    for name in names or []:
        key = name.strip().lower()
        if key not in TRACKERS:
            raise InputError(f"--log-to {name!r}: choose tensorboard, wandb or mlflow")
        module, extra = TRACKERS[key]
        if importlib.util.find_spec(module) is None:
            raise InputError(
                f"--log-to {key} needs the {module} package: pip install 'mlxbert-kaggle[{extra}]'"
            )
        if key not in out:
            out.append(key)
    return out


def tracking_reporter(
    inner: Reporter,
    log_to: list[str] | None,
    output: str | Path,
    *,
    name: str,
    config: dict[str, Any] | None = None,
) -> TrackingReporter:
    """A :class:`TrackingReporter` over ``inner`` and the trackers named in ``log_to`` (none:
    it only passes on to ``inner``); TensorBoard files go to ``output/tensorboard``. Unknown
    or uninstalled trackers raise :class:`InputError` before any work starts."""
    names = check_trackers(log_to)
    output, config = Path(output), dict(config or {})
    made: dict[str, Tracker] = {
        "tensorboard": TensorBoardTracker(output / TENSORBOARD_DIR),
        "wandb": WandbTracker(output, name, config),
        "mlflow": MlflowTracker(name, config),
    }
    return TrackingReporter(inner, [made[n] for n in names])


__all__ = [
    "TRACKERS",
    "MlflowTracker",
    "TensorBoardTracker",
    "Tracker",
    "TrackingReporter",
    "WandbTracker",
    "check_trackers",
    "slug",
    "tracking_reporter",
]
