"""Reports of training runs: ``write_report(run_dir)`` -> a self-contained HTML page and its
figures as PNG (learning curves, fold / seed scores, confusion matrix and per-class scores,
calibration, the decision threshold, regression residuals, the most confident errors, the
run's settings and timings). Needs matplotlib (``pip install 'mlxbert-kaggle[report]'``).

============  ==============================================================
``summary``   the typed summary every section reads (``RunSummary``)
``load``      a run folder of any kind -> ``RunSummary``
``fits``      one fit's work folder: log.json, head outputs, examples
``glue_run``  GLUE fine-tuning outputs (finetune.json)
``table_run`` ``mlxbert train`` / ``kaggle run`` outputs (metrics.json)
``analysis``  numbers: confusion, per-class, reliability, threshold, errors
``figures``   matplotlib figures (the optional dependency)
``sections``  what each section shows; ``html``: the page
``write``     ``write_report``: files, overwrite rules
============  ==============================================================
"""

from .figures import INSTALL_HINT, PlottingUnavailable
from .load import load_run
from .summary import FitCurve, PartScore, Predictions, RunSummary
from .write import ReportFiles, report_paths, write_report

__all__ = [
    "INSTALL_HINT",
    "FitCurve",
    "PartScore",
    "PlottingUnavailable",
    "Predictions",
    "ReportFiles",
    "RunSummary",
    "load_run",
    "report_paths",
    "write_report",
]
