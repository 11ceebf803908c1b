"""``mlxbert kaggle run`` and ``mlxbert kaggle submit``: a competition preset end to end,
and uploading through the official ``kaggle`` package (never a dependency: used only when
installed and configured)."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Any

from .cv import train_table
from .errors import InputError
from .predicting import predict_file
from .presets import get_preset
from .progress import Reporter
from .submission import validate_submission
from .training import FitConfig


def run_preset(
    preset: str,
    data_dir: str | Path,
    output: str | Path,
    *,
    folds: int = 5,
    max_rows: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Cross-validate the preset's model on ``train.csv``, predict ``test.csv`` with the fold
    ensemble and write ``OUTPUT/submission.csv`` aligned to (and checked against) the sample
    submission. ``overrides``: FitConfig fields (``model``, ``epochs``, ``lr``, …; None keeps
    the preset's). Returns the training summary plus ``submission``."""
    reporter = reporter or Reporter()
    started = time.perf_counter()
    p = get_preset(preset)
    folder = p.locate(data_dir)
    values = {**p.train_defaults, "metric": p.metric}
    values.update({k: v for k, v in overrides.items() if v is not None})
    config = FitConfig(**values)
    output = Path(output)
    reporter.log(f"{p.name}: {p.description}; data in {folder}")
    summary = train_table(
        folder / p.train_file,
        target=p.target,
        output=output,
        text=p.text,
        features=p.features,
        template=p.template,
        transforms=p.transforms or None,
        task=p.task,
        target_transform=p.target_transform,
        folds=folds,
        id_col=p.id_col,
        max_rows=max_rows,
        config=config,
        resume=resume,
        overwrite=overwrite,
        reporter=reporter,
    )
    submission = output / "submission.csv"
    predict_file(
        [output],
        folder / p.test_file,
        submission,
        id_col=p.id_col,
        sample_submission=folder / p.sample_submission,
        reporter=reporter,
        overwrite=True,  # the run's own output folder
    )
    checked = validate_submission(submission, folder / p.sample_submission)
    summary["submission"] = {"path": str(submission), **checked}
    summary["train_seconds"] = summary["seconds"]
    summary["seconds"] = time.perf_counter() - started  # training and prediction
    return summary


def kaggle_credentials() -> tuple[bool, str]:
    """(found, where or what is missing) for the official kaggle client's credentials."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True, "KAGGLE_USERNAME / KAGGLE_KEY"
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    token = config_dir / "kaggle.json"
    if token.is_file():
        return True, str(token)
    return False, (
        f"no Kaggle credentials: neither {token} nor the KAGGLE_USERNAME and KAGGLE_KEY "
        "environment variables exist (create an API token on kaggle.com -> Settings -> API)"
    )


def submit(competition: str, file: str | Path, message: str) -> str:
    """Upload ``file`` to ``competition`` (a preset name or a Kaggle competition slug) with the
    official client. Raises :class:`InputError` naming exactly what is missing."""
    path = Path(file)
    if not path.is_file():
        raise InputError(f"submission file {path} does not exist")
    try:
        slug = get_preset(competition).competition
    except InputError:
        slug = competition
    if importlib.util.find_spec("kaggle") is None:
        raise InputError(
            "the official Kaggle client is not installed: `pip install kaggle` (mlxbert does "
            f"not install it); or upload {path} on kaggle.com/competitions/{slug}/submit"
        )
    found, where = kaggle_credentials()
    if not found:
        raise InputError(where)
    # Imported only now: the kaggle package authenticates (and may exit) on import.
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    api.authenticate()
    result = api.competition_submit(str(path), message, slug)
    return str(result) if result is not None else f"submitted {path} to {slug}"


__all__ = ["kaggle_credentials", "run_preset", "submit"]
