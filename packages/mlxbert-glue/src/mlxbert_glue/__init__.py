"""GLUE tasks, metrics, fine-tuning recipes and the Classifier API for mlxbert.

>>> from mlxbert_glue import finetune, evaluate, Classifier
>>> finetune("sst2", "all-minilm-l6-v2", "glue_data", "runs/sst2")
>>> evaluate("runs/sst2", "sst2", "glue_data", report="runs/sst2/dev.json")
>>> Classifier.from_pretrained("runs/sst2").classify("a gripping, funny film")
"""

# mlxbert_core first: on Linux it loads OpenBLAS, which must happen before mlx is imported.
import mlxbert_core  # noqa: F401  isort: skip

from ._task_model_info import TaskModelInfo
from .classifier import Classifier
from .data import GlueExamples, load_task
from .evaluate import evaluate, predict_logits
from .factory import create_model, create_model_and_tokenizer
from .finetune import finetune
from .metrics import compute_metrics, glue_score, predictions_from_logits, task_score
from .model_io import load_task_model, read_meta, save_task_model
from .presets import MODELS, ModelPreset
from .recipes import RECIPES, Recipe, default_recipe
from .submission import write_submission
from .tasks import TASKS, GlueTask, get_task

__version__ = "0.1.0"

__all__ = [
    "MODELS",
    "RECIPES",
    "TASKS",
    "Classifier",
    "GlueExamples",
    "GlueTask",
    "ModelPreset",
    "Recipe",
    "TaskModelInfo",
    "__version__",
    "compute_metrics",
    "create_model",
    "create_model_and_tokenizer",
    "default_recipe",
    "evaluate",
    "finetune",
    "get_task",
    "glue_score",
    "load_task",
    "load_task_model",
    "predict_logits",
    "predictions_from_logits",
    "read_meta",
    "save_task_model",
    "task_score",
    "write_submission",
]
