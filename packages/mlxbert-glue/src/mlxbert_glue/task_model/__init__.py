"""The task-model layer: a fine-tuned encoder + head, built, fitted, saved, loaded and used.

Generic over architectures (their facts come from mlxbert-core's registry) and over heads
(anything registered with ``mlxbert_heads.register_head``); it knows nothing of GLUE. GLUE's
fine-tuning and the ``mlxbert`` CLI's table training are thin layers over it.

========================  ==========================================================
``record``                ``TaskModelInfo``: the model folder's typed record
``build``                 ``create_task_model``: encoder + head (+ LoRA, quantized base)
``layout``                heads shaped like the architecture's reference classifier
``folder``                ``save_task_model`` / ``open_task_model``: the model folder
``inputs``                ``Examples``, tokenization into training features
``predict``               ``predict_logits``: batched head outputs
``sources``               ``open_model``: mlxbert folders and reference checkpoints alike
``classifier``            ``Classifier``: labels, confidences, values
``fit``                   the one fit loop (best epoch, early stopping, exact resume)
``progress``, ``files``   progress display; atomic writes that keep the umask's modes
========================  ==========================================================
"""

from mlxbert_core import MODELS, ModelPreset, get_preset
from mlxbert_core.training import TrainingConfig

from .build import build_task_model, create_task_model, load_encoder, resolve_head
from .classifier import Classifier
from .files import atomic_dir, atomic_path, read_json, write_json, write_text
from .fit import FitResult, StaleRunError, data_fingerprint, fit
from .folder import load_task_model, open_task_model, read_info, read_meta, save_task_model
from .inputs import (
    Examples,
    encode_examples,
    encoder_positions,
    fit_length,
    load_examples,
    pad_id_of,
    save_examples,
    tokenize_texts,
)
from .predict import predict_logits
from .progress import Bar, Reporter, TqdmReporter, epoch_scalars, format_info, get_reporter
from .record import DEFAULT_MAX_LENGTH, TaskModelInfo
from .sources import (
    EncoderOnlyError,
    is_model_folder,
    open_model,
    open_reference_classifier,
    register_labels,
    task_labels,
)

__all__ = [
    "DEFAULT_MAX_LENGTH",
    "MODELS",
    "Bar",
    "Classifier",
    "EncoderOnlyError",
    "Examples",
    "FitResult",
    "ModelPreset",
    "Reporter",
    "StaleRunError",
    "TaskModelInfo",
    "TqdmReporter",
    "TrainingConfig",
    "atomic_dir",
    "atomic_path",
    "build_task_model",
    "create_task_model",
    "data_fingerprint",
    "encode_examples",
    "encoder_positions",
    "epoch_scalars",
    "fit",
    "fit_length",
    "format_info",
    "get_preset",
    "get_reporter",
    "is_model_folder",
    "load_encoder",
    "load_examples",
    "load_task_model",
    "open_model",
    "open_reference_classifier",
    "open_task_model",
    "pad_id_of",
    "predict_logits",
    "read_info",
    "read_json",
    "read_meta",
    "register_labels",
    "resolve_head",
    "save_examples",
    "save_task_model",
    "task_labels",
    "tokenize_texts",
    "write_json",
    "write_text",
]
