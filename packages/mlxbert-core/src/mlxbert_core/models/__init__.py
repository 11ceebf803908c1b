"""Encoder implementations shipped with mlxbert-core (BERT, ModernBERT, NeoBERT).

Each module holds a config dataclass (``ModelArgs``), the bare encoder, masked-LM and
sequence-classification models with Hugging Face parameter names, a ``sanitize`` function for
checkpoint keys and an ``ARCHITECTURE`` registered through the ``mlxbert.architectures`` entry
point.
"""

from .bert import (
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    BertModelArgs,
)
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
    "ModernBertForMaskedLM",
    "ModernBertForSequenceClassification",
    "ModernBertModel",
    "ModernBertModelArgs",
    "NeoBERT",
    "NeoBERTForSequenceClassification",
    "NeoBERTLMHead",
    "NeoBertModelArgs",
]
