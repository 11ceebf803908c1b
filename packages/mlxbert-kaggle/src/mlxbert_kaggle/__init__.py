"""From a competition CSV to submission.csv with BERT-family encoders on MLX; the mlxbert
command line.

>>> from mlxbert_kaggle import cross_validate, read_table
>>> train = read_table("titanic/train.csv")
>>> run = cross_validate(train, target="Survived", output="runs/titanic", id_col="PassengerId")
>>> run.metrics["cv"]["accuracy"], run.predict(read_table("titanic/test.csv")).head()
"""

# mlxbert_core first: on Linux it loads OpenBLAS, which must happen before mlx is imported.
import mlxbert_core  # noqa: F401  isort: skip

from .adversarial import adversarial_validation
from .api import TablePredictor, cross_validate, ensemble, fit
from .competition import kaggle_credentials, run_preset, submit
from .cv import FoldData, train_table
from .demo import DemoConfig, run_demo
from .distill import distill
from .ensemble import combine
from .errors import InputError
from .long_text import long_text_raw
from .predicting import load_model, predict_file, predict_frame, resolve_model_dirs
from .presets import PRESETS, KagglePreset, get_preset
from .pseudo import train_pseudo_labelled
from .scoring import primary_metric, score
from .splits import holdout_split, make_folds
from .stacking import predict_stack, stack
from .submission import align_to_sample, validate_submission
from .tables import read_table, write_table
from .targets import TargetSpec
from .template import TextTemplate, default_template, format_value
from .training import FitConfig, fit_model
from .tune import tune

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "DemoConfig",
    "FitConfig",
    "FoldData",
    "InputError",
    "KagglePreset",
    "TablePredictor",
    "TargetSpec",
    "TextTemplate",
    "__version__",
    "adversarial_validation",
    "align_to_sample",
    "combine",
    "cross_validate",
    "default_template",
    "distill",
    "ensemble",
    "fit",
    "fit_model",
    "format_value",
    "get_preset",
    "holdout_split",
    "kaggle_credentials",
    "load_model",
    "long_text_raw",
    "make_folds",
    "predict_file",
    "predict_frame",
    "predict_stack",
    "primary_metric",
    "read_table",
    "resolve_model_dirs",
    "run_demo",
    "run_preset",
    "score",
    "stack",
    "submit",
    "train_pseudo_labelled",
    "train_table",
    "tune",
    "validate_submission",
    "write_table",
]
