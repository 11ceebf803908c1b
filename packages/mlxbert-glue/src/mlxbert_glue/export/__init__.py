"""Exporters of the task-model layer: ONNX, MLX function files, Hugging Face folders.

>>> from mlxbert_glue import export_model
>>> export_model("runs/sst2", "onnx", "deploy/sst2")          # doctest: +SKIP
>>> export_model("all-minilm-l6-v2", "mlxfn", "deploy/minilm", pooling="mean")  # doctest: +SKIP

=====================  =============================================================
``api``                ``export_model``: check, open, write, compare with MLX
``source``             what is exported (task model or encoder) and how it is opened
``ops``                the operations graphs are written with; backends ``onnx_ops``
                       (ONNX nodes) and ``mlx_ops`` (shapeless MLX)
``writers``            one graph writer per encoder family (+ heads and pooling);
                       plugins register theirs by entry point
``graph``              encoder + head (or sentence embedding) for any backend
``formats``            ``onnx``, ``mlxfn``, ``hf``: one module each
``reference``          the MLX outputs every export is checked against
``metadata``, ``files`` what an export says about itself; the output folder
=====================  =============================================================

ONNX needs the ``onnx`` extra (``pip install 'mlxbert-glue[onnx]'``).
"""

from .api import FORMATS, TOLERANCE, ExportResult, export_model
from .errors import ExportError
from .graph import EMBEDDING_POOLINGS
from .writers import ENTRY_POINT_GROUP, GraphWriter, find_graph_writer, register_graph_writer
from .writers.heads import HEAD_TAILS, register_head_tail

__all__ = [
    "EMBEDDING_POOLINGS",
    "ENTRY_POINT_GROUP",
    "FORMATS",
    "HEAD_TAILS",
    "TOLERANCE",
    "ExportError",
    "ExportResult",
    "GraphWriter",
    "export_model",
    "find_graph_writer",
    "register_graph_writer",
    "register_head_tail",
]
