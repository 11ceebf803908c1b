"""Encoder implementations shipped with mlxbert-core (BERT, ModernBERT, NeoBERT).

Each module holds a config dataclass (``ModelArgs``), the bare encoder, masked-LM and
sequence-classification models with Hugging Face parameter names, a ``sanitize`` function for
checkpoint keys and an ``ARCHITECTURE`` registered through the ``mlxbert.architectures`` entry
point. :class:`Embedding` is the embedding table they share (float32 gradient sums for 16-bit
tables).
"""

from .bert import (
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    BertModelArgs,
)
from .embedding import Embedding
from .modernbert import (
    ModernBertForMaskedLM,
    ModernBertForSequenceClassification,
    ModernBertModel,
    ModernBertModelArgs,
)
from .neobert import (
    NeoBERT,
    NeoBERTForSequenceClassification,
    NeoBERTLMHead,
    NeoBertModelArgs,
)

__all__ = [
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertModel",
    "BertModelArgs",
    "Embedding",
    "ModernBertForMaskedLM",
    "ModernBertForSequenceClassification",
    "ModernBertModel",
    "ModernBertModelArgs",
    "NeoBERT",
    "NeoBERTForSequenceClassification",
    "NeoBERTLMHead",
    "NeoBertModelArgs",
]
