"""GLUE tasks, metrics, fine-tuning recipes and the Classifier API for mlxbert.

Two layers: :mod:`mlxbert_glue.task_model` (build / fit / save / load / predict any task
model, generic over architectures and heads) and, on top of it, GLUE (tasks, readers,
recipes, metrics, submission files, ``finetune``, ``evaluate``).

>>> from mlxbert_glue import finetune, evaluate, Classifier
>>> finetune("sst2", "all-minilm-l6-v2", "glue_data", "runs/sst2")
>>> evaluate("runs/sst2", "sst2", "glue_data", report="runs/sst2/dev.json")
>>> Classifier.from_pretrained("runs/sst2").classify("a gripping, funny film")
"""

# mlxbert_core first: on Linux it loads OpenBLAS, which must happen before mlx is imported.
import mlxbert_core  # noqa: F401  isort: skip

from . import serve, task_model
from .commands import glue_eval, glue_finetune
from .data import GlueExamples, load_task
from .evaluate import evaluate, evaluate_tasks
from .export import ExportError, ExportResult, export_model
from .factory import create_model, create_model_and_tokenizer
from .finetune import finetune
from .metrics import compute_metrics, glue_score, predictions_from_logits, task_score
from .recipes import RECIPES, Recipe, default_recipe
from .submission import write_submission
from .task_model import (
    DEFAULT_MAX_LENGTH,
    MODELS,
    Classifier,
    EncoderOnlyError,
    Examples,
    FitResult,
    ModelPreset,
    Reporter,
    StaleRunError,
    TaskModelInfo,
    TrainingConfig,
    create_task_model,
    fit,
    get_preset,
    is_model_folder,
    load_task_model,
    open_model,
    open_task_model,
    pad_id_of,
    predict_logits,
    read_info,
    read_meta,
    save_task_model,
    tokenize_texts,
)
from .tasks import TASKS, GlueTask, get_task

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "MODELS",
    "RECIPES",
    "TASKS",
    "Classifier",
    "EncoderOnlyError",
    "Examples",
    "ExportError",
    "ExportResult",
    "FitResult",
    "GlueExamples",
    "GlueTask",
    "ModelPreset",
    "Recipe",
    "Reporter",
    "StaleRunError",
    "TaskModelInfo",
    "TrainingConfig",
    "__version__",
    "compute_metrics",
    "create_model",
    "create_model_and_tokenizer",
    "create_task_model",
    "default_recipe",
    "evaluate",
    "evaluate_tasks",
    "export_model",
    "finetune",
    "fit",
    "get_preset",
    "get_task",
    "glue_eval",
    "glue_finetune",
    "glue_score",
    "is_model_folder",
    "load_task",
    "load_task_model",
    "open_model",
    "open_task_model",
    "pad_id_of",
    "predict_logits",
    "predictions_from_logits",
    "read_info",
    "read_meta",
    "save_task_model",
    "serve",
    "task_model",
    "task_score",
    "tokenize_texts",
    "write_submission",
]
