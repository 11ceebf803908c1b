"""Task heads, losses, calibration and metrics for any MLX encoder (mlx + numpy only).

from mlxbert_heads import TaskModel, create_head
head = create_head("binary", hidden_size=384)
model = TaskModel(encoder, head, pooling="mean")
loss = model.loss({"input_ids": ids, "attention_mask": mask, "labels": y})
"""

from . import calibration, losses, metrics
from .calibration import choose_threshold, choose_thresholds, fit_temperature
from .heads import (
    ACTIVATIONS,
    BinaryClassificationHead,
    MulticlassClassificationHead,
    MultilabelClassificationHead,
    OrdinalRegressionHead,
    RegressionHead,
    TaskHead,
    TimeSeriesRegressionHead,
)
from .pooling import POOLING_MODES, Pooler
from .registry import (
    available_tasks,
    create_head,
    default_head_for,
    default_metrics_for,
    head_from_config,
    register_head,
)
from .saving import load_head, save_head
from .task_model import EncoderLike, EncoderOutputLike, TaskModel

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "POOLING_MODES",
    "BinaryClassificationHead",
    "EncoderLike",
    "EncoderOutputLike",
    "MulticlassClassificationHead",
    "MultilabelClassificationHead",
    "OrdinalRegressionHead",
    "Pooler",
    "RegressionHead",
    "TaskHead",
    "TaskModel",
    "TimeSeriesRegressionHead",
    "__version__",
    "available_tasks",
    "calibration",
    "choose_threshold",
    "choose_thresholds",
    "create_head",
    "default_head_for",
    "default_metrics_for",
    "fit_temperature",
    "head_from_config",
    "load_head",
    "losses",
    "metrics",
    "register_head",
    "save_head",
]
