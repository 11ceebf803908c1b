"""mlxbert-core: BERT-family encoders on MLX, torch-free checkpoint loading, tokenization,
pooling, sentence embeddings and runtime set-up.

    >>> import mlxbert_core as mb
    >>> model = mb.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    >>> tokenizer = mb.load_tokenizer("sentence-transformers/all-MiniLM-L6-v2")
    >>> vectors = mb.embed(model, tokenizer, ["Hello world!"])   # (1, 384), unit norm
"""

# The runtime module must run before anything imports mlx.core: on Linux x86-64 it loads
# OpenBLAS into the global symbol scope so that MLX's CPU matmuls bind to it.
from mlxbert_core import runtime as _runtime

_runtime.preload_blas()

from mlxbert_core.checkpoints import (  # noqa: E402
    CheckpointError,
    UnsafePickleError,
    load_torch_checkpoint,
    load_weights,
)
from mlxbert_core.classifier_layout import ClassifierLayout  # noqa: E402
from mlxbert_core.dtypes import parse_dtype  # noqa: E402
from mlxbert_core.embed import embed  # noqa: E402
from mlxbert_core.encoder import Encoder, EncoderBase, find_encoder  # noqa: E402
from mlxbert_core.loading import WeightMismatchError, from_pretrained  # noqa: E402
from mlxbert_core.models import (  # noqa: E402
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    BertModelArgs,
    ModernBertForMaskedLM,
    ModernBertForSequenceClassification,
    ModernBertModel,
    ModernBertModelArgs,
    NeoBERT,
    NeoBERTForSequenceClassification,
    NeoBERTLMHead,
    NeoBertModelArgs,
)
from mlxbert_core.outputs import (  # noqa: E402
    EncoderOutput,
    MaskedLMOutput,
    SequenceClassifierOutput,
)
from mlxbert_core.pooling import (  # noqa: E402
    cls_pooling,
    max_pooling,
    mean_pooling,
    normalize,
    pool,
)
from mlxbert_core.presets import MODELS, ModelPreset, get_preset  # noqa: E402
from mlxbert_core.registry import (  # noqa: E402
    Architecture,
    available_architectures,
    register_architecture,
    resolve_architecture,
)
from mlxbert_core.runtime import runtime_info, set_device  # noqa: E402
from mlxbert_core.sentence_pooling import checkpoint_pooling  # noqa: E402
from mlxbert_core.tokenizer import Tokenizer, load_tokenizer  # noqa: E402
from mlxbert_core.weights import load_weights_strict  # noqa: E402

_runtime.apply_env_device()
_runtime.configure_cpu_buffer_cache()
_runtime.configure_cpu_jit()

__version__ = "0.1.0"

__all__ = [
    "MODELS",
    "Architecture",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertModel",
    "BertModelArgs",
    "CheckpointError",
    "ClassifierLayout",
    "Encoder",
    "EncoderBase",
    "EncoderOutput",
    "MaskedLMOutput",
    "ModelPreset",
    "ModernBertForMaskedLM",
    "ModernBertForSequenceClassification",
    "ModernBertModel",
    "ModernBertModelArgs",
    "NeoBERT",
    "NeoBERTForSequenceClassification",
    "NeoBERTLMHead",
    "NeoBertModelArgs",
    "SequenceClassifierOutput",
    "Tokenizer",
    "UnsafePickleError",
    "WeightMismatchError",
    "__version__",
    "available_architectures",
    "checkpoint_pooling",
    "cls_pooling",
    "embed",
    "find_encoder",
    "from_pretrained",
    "get_preset",
    "load_tokenizer",
    "load_torch_checkpoint",
    "load_weights",
    "load_weights_strict",
    "max_pooling",
    "mean_pooling",
    "normalize",
    "parse_dtype",
    "pool",
    "register_architecture",
    "resolve_architecture",
    "runtime_info",
    "set_device",
]
