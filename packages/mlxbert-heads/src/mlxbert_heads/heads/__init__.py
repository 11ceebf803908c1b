"""The built-in task heads (importing this package registers them)."""

from ._base import ACTIVATIONS, TaskHead
from .binary import BinaryClassificationHead
from .multiclass import MulticlassClassificationHead
from .multilabel import MultilabelClassificationHead
from .ordinal import OrdinalRegressionHead, cumulative_probabilities
from .regression import RegressionHead
from .timeseries import TimeSeriesRegressionHead

__all__ = [
    "ACTIVATIONS",
    "BinaryClassificationHead",
    "MulticlassClassificationHead",
    "MultilabelClassificationHead",
    "OrdinalRegressionHead",
    "RegressionHead",
    "TaskHead",
    "TimeSeriesRegressionHead",
    "cumulative_probabilities",
]
