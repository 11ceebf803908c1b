"""Hyper-parameter search over ``mlxbert train``'s settings with Optuna (the ``[tune]``
extra).

Each trial is one ``train_table`` run (the same CV as ``mlxbert train``) with the trial's
:class:`FitConfig`, in its own folder. After every fold the running CV score goes to
Optuna's pruner, which stops a trial that trails the others at the same fold (its folder is
removed). The study lives in SQLite beside the trials, so an interrupted search continues
with ``resume``: finished and pruned trials are kept as they are, and a trial that was
interrupted mid-way continues in its folder through ``train``'s own resume (finished folds
reused, the unfinished one from its last epoch checkpoint). A study is continued only with
the same data, flags and search space; otherwise the search refuses and says what differs.

Output folder::

    DIR/study.db            the Optuna study (SQLite)
    DIR/trials/trial-N/     each kept trial: a complete ``mlxbert train`` output folder
    DIR/best.json           the best trial's score, settings and a ready ``mlxbert train``
                            command; every trial's state, score and settings
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import read_json, write_json
from .cv import train_table
from .errors import InputError
from .outputs import INTERRUPTS, check_output_dir, claimed_dir
from .progress import Reporter
from .scoring import greater_is_better, primary_metric
from .table_spec import target_spec
from .targets import TargetSpec
from .training import FitConfig, maybe_simulate_kill

STUDY_FILE = "study.db"
STUDY_NAME = "mlxbert-tune"
BEST_FILE = "best.json"
TRIALS = "trials"

#: What a search can vary; ``--search`` picks among these (default: all that apply).
SEARCHABLE = ("lr", "epochs", "batch_size", "max_length", "lora", "pooling", "head_loss")
LORA_CHOICES = ("none", "efficient", "balanced", "expressive")
LORA_RANKS = (4, 8, 16)
HEAD_LOSSES = {
    "binary": ("bce", "focal"),
    "multilabel": ("bce", "focal"),
    "multiclass": ("ce", "focal"),
    "regression": ("mse", "huber"),
}
INSTALL_HINT = 'hyper-parameter search needs Optuna: pip install "mlxbert-kaggle[tune]"'


def import_optuna() -> Any:
    """Optuna, or an :class:`InputError` with the install hint."""
    try:
        import optuna
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return optuna


@dataclass
class SearchSpace:
    """The values a trial draws from. ``lr_factor`` multiplies the method's default rate
    (5e-4 with LoRA, the model preset's rate without), log-uniformly, so one range serves
    full fine-tuning and adapters; ``lora_rank`` is drawn only for trials with LoRA."""

    params: list[str]
    lr_factor: tuple[float, float] = (0.25, 4.0)
    epochs: list[int] = field(default_factory=list)
    batch_size: list[int] = field(default_factory=list)
    max_length: list[int] = field(default_factory=list)
    lora: list[str] = field(default_factory=list)
    lora_rank: list[int] = field(default_factory=lambda: list(LORA_RANKS))
    pooling: list[str] = field(default_factory=lambda: ["mean", "cls"])
    head_loss: list[str] = field(default_factory=list)

    @classmethod
    def around(cls, base: FitConfig, task: str, params: Sequence[str] | None = None):
        """The default space for a base configuration: ``base.epochs``, ``base.max_length``
        and ``base.batch_size`` are the upper ends of their ranges."""
        chosen = list(params) if params else list(SEARCHABLE)
        unknown = [p for p in chosen if p not in SEARCHABLE]
        if unknown:
            raise InputError(f"--search {unknown}: choose among {', '.join(SEARCHABLE)}")
        losses = HEAD_LOSSES.get(task)
        if "head_loss" in chosen and losses is None:
            if params:
                raise InputError(f"--search head_loss: no loss choice for a {task} head")
            chosen.remove("head_loss")
        lengths = sorted({max(8, base.max_length // 2), base.max_length})
        batches = sorted({b for b in (8, 16, 32, base.batch_size) if b <= base.batch_size})
        loras = [c for c in LORA_CHOICES if not (base.quantize and c == "none")]
        return cls(
            params=[p for p in SEARCHABLE if p in chosen],
            epochs=list(range(1, base.epochs + 1)),
            batch_size=batches[-2:],
            max_length=lengths,
            lora=loras,
            head_loss=list(losses or ()),
        )

    def suggest(self, trial: Any, base: FitConfig) -> FitConfig:
        """The trial's configuration: ``base`` with the searched values drawn."""
        values = base.to_dict()
        p = self.params
        if "epochs" in p:
            values["epochs"] = trial.suggest_categorical("epochs", self.epochs)
        if "batch_size" in p:
            values["batch_size"] = trial.suggest_categorical("batch_size", self.batch_size)
        if "max_length" in p:
            values["max_length"] = trial.suggest_categorical("max_length", self.max_length)
        if "lora" in p:
            lora = trial.suggest_categorical("lora", self.lora)
            values["lora"] = None if lora == "none" else lora
            values["lora_rank"] = (
                None if lora == "none" else trial.suggest_categorical("lora_rank", self.lora_rank)
            )
        if "pooling" in p:
            values["pooling"] = trial.suggest_categorical("pooling", self.pooling)
        if "head_loss" in p:
            values["head_loss"] = trial.suggest_categorical("head_loss", self.head_loss)
        if "lr" in p:
            low, high = self.lr_factor
            factor = trial.suggest_float("lr_factor", low, high, log=True)
            values["lr"] = None
            values["lr"] = float(f"{FitConfig(**values).learning_rate() * factor:.3g}")
        return FitConfig(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------- the command


def _file_digest(path: Any) -> str | None:
    if isinstance(path, pd.DataFrame):
        hashed = pd.util.hash_pandas_object(path, index=True).to_numpy()
        return "frame:" + hashlib.sha256(hashed.tobytes()).hexdigest()[:16]
    if path is None:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _study_settings(
    table: dict[str, Any], base: FitConfig, space: SearchSpace, metric: str, prune: bool
) -> dict[str, Any]:
    """Everything that changes a search's result (the trial budget and timeout do not)."""
    plain = {k: v for k, v in table.items() if k not in ("train", "valid")}
    return _jsonable(
        {
            "table": plain,
            "train_data": _file_digest(table["train"]),
            "valid_data": _file_digest(table.get("valid")),
            "base": base.to_dict(),
            "space": space.to_dict(),
            "metric": metric,
            "prune": prune,
        }
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} ({a!r} -> {b!r})")
    return out


#: ``train_table`` keyword -> ``mlxbert train`` flag.
_TABLE_FLAGS = {
    "train": "--train",
    "valid": "--valid",
    "target": "--target",
    "text": "--text",
    "features": "--feature",
    "template": "--template",
    "task": "--task",
    "label_sep": "--label-sep",
    "target_transform": "--target-transform",
    "valid_fraction": "--valid-fraction",
    "folds": "--folds",
    "group_col": "--group-col",
    "id_col": "--id-col",
    "exclude": "--exclude",
    "max_rows": "--max-rows",
    "time_col": "--time-col",
    "horizon": "--horizon",
    "history": "--history",
}
_TABLE_DEFAULTS = {"task": "auto", "valid_fraction": 0.1, "horizon": 1, "history": 0}
_CONFIG_FLAGS = {
    "model": "--model",
    "checkpoint": "--checkpoint",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "max_length": "--max-length",
    "lr": "--lr",
    "lora": "--lora",
    "lora_rank": "--lora-rank",
    "quantize": "--quantize",
    "seed": "--seed",
    "early_stopping": "--early-stopping",
    "metric": "--metric",
    "pooling": "--pooling",
    "head_loss": "--head-loss",
}


def train_command(table: dict[str, Any], config: FitConfig, output: str | Path) -> str:
    """The ``mlxbert train`` command line that trains ``config`` on ``table``'s data."""
    words = ["mlxbert", "train"]
    for key, flag in _TABLE_FLAGS.items():
        value = table.get(key)
        if isinstance(value, pd.DataFrame):
            value = "<DataFrame>"  # a table handed over in Python: save it as a file first
        elif value is None or value == _TABLE_DEFAULTS.get(key) or value in ((), []):
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            words += [flag, str(item)]
    defaults = FitConfig().to_dict()
    for key, value in config.to_dict().items():
        if key in _CONFIG_FLAGS and value is not None and value != defaults.get(key):
            words += [_CONFIG_FLAGS[key], str(value)]
    if not config.fit_threshold:
        words.append("--no-fit-threshold")
    if not config.balance_labels:
        words.append("--no-balance-labels")
    words += ["--output", str(output)]
    return " ".join(shlex.quote(w) for w in words)


def _describe(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items()
    )


def tune(
    table: dict[str, Any],
    *,
    output: str | Path,
    base: FitConfig | None = None,
    trials: int = 20,
    timeout: float | None = None,
    search: Sequence[str] | None = None,
    prune: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Search ``base``'s neighbourhood for the best CV score; returns (and writes)
    ``best.json``'s content.

    ``table``: :func:`train_table`'s data keywords (``train``, ``target``, ``folds``, ...).
    ``trials``: the study's total trial budget (a resumed study counts what it already ran);
    ``timeout``: no trial starts after this many seconds (a running one finishes).
    ``search``: the names of :data:`SEARCHABLE` to vary (default: all that apply).
    ``prune``: stop a trial whose running CV score after a fold is below the median of the
    earlier trials at that fold (Optuna's ``MedianPruner``, after two trials).
    """
    optuna = import_optuna()
    if trials < 1:
        raise InputError(f"--trials must be >= 1, got {trials}")
    if timeout is not None and timeout <= 0:
        raise InputError(f"--timeout must be > 0 seconds, got {timeout}")
    if "output" in table or "config" in table:
        raise InputError("table holds the data keywords only (output and config are tune's)")
    reporter = reporter or Reporter()
    base = base or FitConfig()
    output = Path(output)
    check_output_dir(output, overwrite=overwrite, resume=resume, resumable=True)
    spec = _target_spec(table)
    metric = base.metric or primary_metric(spec)
    direction = "maximize" if greater_is_better(metric) else "minimize"
    space = SearchSpace.around(base, spec.task, search)
    settings = _study_settings(table, base, space, metric, prune)
    with claimed_dir(output, overwrite=overwrite, resume=resume, resumable=True):
        study = _open_study(optuna, output, settings, direction, base.seed, prune)
        started = time.perf_counter()
        _run_trials(optuna, study, table, base, space, output, trials, timeout, reporter)
        result = _summary(optuna, study, table, metric, direction, output)
        result["seconds"] = time.perf_counter() - started
        write_json(output / BEST_FILE, result)
        return result


def _target_spec(table: dict[str, Any]) -> TargetSpec:
    if table.get("task") == "timeseries":
        raise InputError("tune searches classification and regression tables, not time series")
    return target_spec(table)


def _open_study(optuna, output: Path, settings: dict, direction: str, seed: int, prune: bool):
    """The study in ``output/study.db``: continued when its settings match, else refused."""
    storage = f"sqlite:///{(output / STUDY_FILE).resolve()}"
    sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
        if prune
        else optuna.pruners.NopPruner()
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    exists = (output / STUDY_FILE).is_file()
    if exists and STUDY_NAME in optuna.study.get_all_study_names(storage):
        study = optuna.load_study(
            study_name=STUDY_NAME, storage=storage, sampler=sampler, pruner=pruner
        )
        saved = study.user_attrs.get("settings") or {}
        if saved != settings:
            changed = _differences(saved, settings)
            raise InputError(
                f"--resume: {output} holds a search with other settings "
                f"({'; '.join(changed)}); use the same flags and search space, or "
                "--overwrite to start again"
            )
        return study
    study = optuna.create_study(
        study_name=STUDY_NAME,
        storage=storage,
        direction=direction,
        sampler=sampler,
        pruner=pruner,
    )
    study.set_user_attr("settings", settings)
    return study


def _continue_interrupted(optuna: Any, study: Any, reporter: Reporter) -> int:
    """Queue every trial that was interrupted mid-way (or killed: still marked running) to
    run again with the same values in the same folder; returns how many."""
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    continued = {t.user_attrs.get("resumes") for t in trials}
    queued = 0
    for t in trials:
        killed = t.state == state.RUNNING  # tune is the study's only user: a left-over
        if killed:
            study.tell(t.number, state=state.FAIL)
        interrupted = killed or (t.state == state.FAIL and t.user_attrs.get("interrupted"))
        if not interrupted or t.number in continued or not t.user_attrs.get("folder"):
            continue
        study.enqueue_trial(
            t.params, user_attrs={"resumes": t.number, "folder": t.user_attrs["folder"]}
        )
        reporter.log(f"trial {t.number} was interrupted: it continues in its folder")
        queued += 1
    return queued


def _used(optuna: Any, study: Any) -> int:
    """Trials that used up budget: finished, pruned, or failed other than by an interrupt
    (an interrupted trial is continued by another, which counts instead)."""
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    continued = {t.user_attrs.get("resumes") for t in trials}
    return sum(
        t.state in (state.COMPLETE, state.PRUNED)
        or (
            t.state == state.FAIL
            and not t.user_attrs.get("interrupted")
            and t.number not in continued
        )
        for t in trials
    )


def _run_trials(optuna, study, table, base, space, output, trials, timeout, reporter) -> None:
    trials_dir = output / TRIALS
    _continue_interrupted(optuna, study, reporter)
    used = _used(optuna, study)
    if used:
        reporter.log(f"continuing the search: {used} of {trials} trial(s) already run")
    todo = max(0, trials - used)
    if todo == 0:
        return
    seen = [used]

    def objective(trial: Any) -> float:
        folder = trial.user_attrs.get("folder") or f"trial-{trial.number}"
        trial.set_user_attr("folder", folder)
        config = space.suggest(trial, base)
        trial.set_user_attr("config", config.to_dict())
        where = trials_dir / folder
        again = "resumes" in trial.user_attrs and where.is_dir()
        seen[0] += 1
        reporter.log(
            f"trial {trial.number} ({seen[0]}/{trials}): {_describe(trial.params)}"
            + (" (continuing)" if again else "")
        )
        started = time.perf_counter()

        def on_fold_end(done: int, metrics: dict[str, float]) -> None:
            value = float(metrics[study.user_attrs["settings"]["metric"]])
            trial.report(value, step=done)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after {done} fold(s) at {value:.4f}")

        try:
            summary = train_table(
                **table,
                output=where,
                config=config,
                resume=again,
                overwrite=not again,
                reporter=reporter,
                on_fold_end=on_fold_end,
            )
        except optuna.TrialPruned as exc:
            shutil.rmtree(where, ignore_errors=True)
            trial.set_user_attr("seconds", time.perf_counter() - started)
            reporter.log(f"trial {trial.number}: {exc} [{time.perf_counter() - started:.0f} s]")
            raise
        except INTERRUPTS:
            trial.set_user_attr("interrupted", True)
            raise
        seconds = time.perf_counter() - started
        trial.set_user_attr("seconds", seconds)
        value = float(summary["score"])
        best = _best_value(study, value)
        reporter.log(
            f"trial {trial.number}: CV {summary['metric']} {value:.4f} "
            f"(best so far {best:.4f}) [{seconds:.0f} s]"
        )
        return value

    study.optimize(
        objective,
        n_trials=todo,  # continued trials run first and count as they finish
        timeout=timeout,
        catch=(),
        callbacks=[lambda s, t: maybe_simulate_kill("trials", t.number + 1)],
        gc_after_trial=True,
    )


def _best_value(study: Any, current: float) -> float:
    try:
        best = study.best_value
    except ValueError:  # no finished trial before this one
        return current
    better = max if study.direction.name.lower() == "maximize" else min
    return better(best, current)


def _trial_record(t: Any) -> dict[str, Any]:
    return {
        "trial": t.number,
        "state": t.state.name.lower(),
        "value": t.value,
        "params": t.params,
        "folder": t.user_attrs.get("folder"),
        "seconds": t.user_attrs.get("seconds"),
        "fold_scores": {str(k): v for k, v in t.intermediate_values.items()},
        "continues_trial": t.user_attrs.get("resumes"),
        "interrupted": bool(t.user_attrs.get("interrupted")),
    }


def _summary(optuna, study, table, metric, direction, output) -> dict[str, Any]:
    state = optuna.trial.TrialState
    every = study.get_trials(deepcopy=False)
    records = [_trial_record(t) for t in every]
    complete = [t for t in every if t.state == state.COMPLETE]
    result: dict[str, Any] = {
        "metric": metric,
        "direction": direction,
        "counts": {
            s: sum(r["state"] == s for r in records) for s in ("complete", "pruned", "fail")
        },
        "best": None,
        "command": None,
        "trials": records,
    }
    if complete:
        best = study.best_trial
        config = FitConfig(**best.user_attrs["config"])
        result["best"] = {
            "trial": best.number,
            "score": best.value,
            "params": best.params,
            "config": config.to_dict(),
            "folder": str(Path(TRIALS) / best.user_attrs["folder"]),
        }
        result["command"] = train_command(table, config, Path(output) / "best")
    return result


def read_best(output: str | Path) -> dict[str, Any] | None:
    """A finished search's ``best.json`` (None when there is none)."""
    return read_json(Path(output) / BEST_FILE)


__all__ = [
    "INSTALL_HINT",
    "SEARCHABLE",
    "SearchSpace",
    "read_best",
    "train_command",
    "tune",
]
