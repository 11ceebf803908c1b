"""M2-BERT (Monarch Mixer) encoders and checkpoints on MLX.

>>> from mlxbert_m2 import from_pretrained
>>> model = from_pretrained("m2-bert-80m-2k-retrieval")       # doctest: +SKIP

The published models are also presets of ``mlxbert_core.MODELS`` (``m2-bert-80m``, ...), so
``mlxbert_core.from_pretrained("m2-bert-80m")`` loads them too.
"""

import mlxbert_core  # noqa: F401  (first: it sets up the fast BLAS before mlx loads)

from .checkpoints import read_checkpoint, sanitize
from .config import M2BertConfig
from .hub import from_pretrained, load_tokenizer
from .loading import build_model, expand_positions, load_checkpoint_into, load_weights_strict
from .mixer import (
    LONG_CONV_BACKENDS,
    HyenaFilter,
    MonarchMixerSequenceMixing,
    clear_filter_cache,
    fft_long_conv,
    set_filter_caching,
    set_long_conv_backend,
)
from .mlp import BlockdiagLinear, GatedLinearUnitMLP
from .model import (
    M2BertForMaskedLM,
    M2BertForSequenceClassification,
    M2BertModel,
    M2SequenceClassifierOutput,
    plant_sequence_tokens,
)
from .presets import MODEL_PRESETS, PRESETS, TOKENIZER, M2Preset
from .training import is_filter_parameter, make_optimizer

__version__ = "0.1.0"

__all__ = [
    "LONG_CONV_BACKENDS",
    "MODEL_PRESETS",
    "PRESETS",
    "TOKENIZER",
    "BlockdiagLinear",
    "GatedLinearUnitMLP",
    "HyenaFilter",
    "M2BertConfig",
    "M2BertForMaskedLM",
    "M2BertForSequenceClassification",
    "M2BertModel",
    "M2Preset",
    "M2SequenceClassifierOutput",
    "MonarchMixerSequenceMixing",
    "__version__",
    "build_model",
    "clear_filter_cache",
    "expand_positions",
    "fft_long_conv",
    "from_pretrained",
    "is_filter_parameter",
    "load_checkpoint_into",
    "load_tokenizer",
    "load_weights_strict",
    "make_optimizer",
    "plant_sequence_tokens",
    "read_checkpoint",
    "sanitize",
    "set_filter_caching",
    "set_long_conv_backend",
]
