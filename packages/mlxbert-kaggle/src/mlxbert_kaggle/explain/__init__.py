"""What a trained model looks at: attention maps of a chosen layer / head, and token
importances by attention rollout or gradient × input on the token embeddings, as a PNG and
as a coloured line of tokens in the terminal.

>>> from mlxbert_kaggle.explain import explain, plot, token_line
>>> e = explain("runs/sst2", "a gripping, funny film", layer=-1, method="rollout")
>>> plot(e, "explain.png")
"""

from .attention import attention_maps, rollout, select
from .core import METHODS, Explanation, explain
from .gradients import gradient_x_input, token_embedding
from .render import plot, summary_line, token_line

__all__ = [
    "METHODS",
    "Explanation",
    "attention_maps",
    "explain",
    "gradient_x_input",
    "plot",
    "rollout",
    "select",
    "summary_line",
    "token_embedding",
    "token_line",
]
