"""The :class:`Encoder` protocol: what code above core may rely on in an encoder.

Every encoder of mlxbert (BERT, ModernBERT, NeoBERT, and plugins such as M2-BERT) answers the
same questions the same way, so that callers -- gradient checkpointing, ``embed``, the task
models of mlxbert-glue -- never probe attributes or test architecture names:

* ``hidden_size``: the width of its hidden states;
* ``max_positions``: how many tokens it accepts (the one answer to "how long may an input
  be", whatever the config calls it);
* ``layers``: its list of transformer layer modules, in forward order;
* ``config_dict``: its Hugging Face ``config.json`` as a dict;
* ``name_or_path``: where it was loaded from (``""`` when built directly);
* ``architecture``: its registry name (``mlxbert_core.available_architectures()``);
* ``input_length``: the length every input is padded to, for encoders whose outputs depend
  on the padding (M2-BERT's long convolutions see the padded positions, and its reference
  pads every input to ``max_positions``); None for the others, whose batches pad to their
  longest input;
* calling it: ``encoder(input_ids, attention_mask=None, token_type_ids=None, *,
  output_hidden_states=False, output_attentions=False) -> EncoderOutput``.

:class:`EncoderBase` holds the bookkeeping half (``config_dict``, ``name_or_path``,
``architecture``) for encoder classes to inherit.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .outputs import EncoderOutput

__all__ = ["BertLayout", "Encoder", "EncoderBase", "EncoderTaskModel", "find_encoder"]


@runtime_checkable
class Encoder(Protocol):
    """A bare encoder, whatever its architecture (see the module docstring).

    ``isinstance(model, Encoder)`` checks that every member is present. Task models (a
    classifier wrapping an encoder) are not encoders; :func:`find_encoder` finds the one
    they hold.
    """

    @property
    def hidden_size(self) -> int: ...

    @property
    def max_positions(self) -> int: ...

    @property
    def layers(self) -> Sequence[nn.Module]: ...

    @property
    def config_dict(self) -> dict[str, Any]: ...

    @property
    def name_or_path(self) -> str: ...

    @property
    def architecture(self) -> str: ...

    @property
    def input_length(self) -> int | None: ...

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: mx.array | None = None,
        token_type_ids: mx.array | None = None,
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> EncoderOutput: ...


#: Plain-data attributes of an encoder: kept out of the module's parameter tree.
_INFO_ATTRIBUTES = ("config_dict", "name_or_path")


class EncoderBase:
    """Mixin for encoder classes (listed before ``nn.Module`` among the bases): the members of
    :class:`Encoder` that do not depend on the architecture. A subclass sets
    ``architecture``, keeps its parsed config (a dataclass with ``hidden_size``) as
    ``self.config`` and defines ``max_positions`` and ``layers``.

    ``config_dict`` defaults to the config the encoder was built from (``self.config`` with
    ``model_type``) until a loader sets the ``config.json`` it read; ``name_or_path``
    defaults to ``""``. Both are plain attributes that never enter the parameter tree
    (``nn.Module`` would store an assigned dict as a child).
    """

    #: The architecture's registry name; each encoder class sets it.
    architecture: ClassVar[str] = ""

    @property
    def input_length(self) -> int | None:
        """None: batches pad to their longest input (padding does not change real tokens)."""
        return None

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def __setattr__(self, key: str, value: Any) -> None:
        if key in _INFO_ATTRIBUTES:
            object.__setattr__(self, key, value)  # the properties below
        else:
            super().__setattr__(key, value)

    @property
    def config_dict(self) -> dict[str, Any]:
        stored = self.__dict__.get("_config_dict")
        return stored if stored is not None else self._default_config_dict()

    @config_dict.setter
    def config_dict(self, value: dict[str, Any]) -> None:
        self.__dict__["_config_dict"] = dict(value)

    @property
    def name_or_path(self) -> str:
        return self.__dict__.get("_name_or_path", "")

    @name_or_path.setter
    def name_or_path(self, value: str) -> None:
        self.__dict__["_name_or_path"] = str(value)

    def _default_config_dict(self) -> dict[str, Any]:
        """``config.json`` for an encoder built directly from its config dataclass."""
        return {"model_type": self.architecture, **dataclasses.asdict(self.config)}


class BertLayout:
    """Mixin for encoders laid out as transformers' ``BertModel`` (M2-BERT's is too): their
    layers are ``encoder.layer`` and their pooler an optional child named ``pooler``."""

    @property
    def layers(self) -> list[nn.Module]:
        return self.encoder.layer

    @property
    def has_pooler(self) -> bool:
        return "pooler" in self

    def remove_pooler(self) -> None:
        """Drop the pooler (for checkpoints saved without one); pooler_output becomes None."""
        if self.has_pooler:
            self.pop("pooler")


class EncoderTaskModel(nn.Module):
    """Base of the reference task models (``*ForMaskedLM``, ``*ForSequenceClassification``):
    an encoder's calling convention, once. A subclass keeps its encoder under the checkpoint's
    name (``encoder_attr``: ``"bert"``, ``"model"``) and turns the encoder's output into its
    own in :meth:`task_output`."""

    encoder_attr: ClassVar[str] = "bert"

    def __call__(
        self,
        input_ids: mx.array,
        attention_mask: mx.array | None = None,
        token_type_ids: mx.array | None = None,
        **output_flags: bool,
    ) -> Any:
        """``output_flags``: the encoder's ``output_hidden_states`` / ``output_attentions``."""
        out = self[self.encoder_attr](input_ids, attention_mask, token_type_ids, **output_flags)
        return self.task_output(out, attention_mask)

    def task_output(self, out: EncoderOutput, attention_mask: mx.array | None) -> Any:
        """The task's output from the encoder's (``attention_mask`` as given to the call)."""
        raise NotImplementedError


def _child_modules(module: nn.Module) -> list[nn.Module]:
    leaves = tree_flatten(module.children(), is_leaf=lambda m: isinstance(m, nn.Module))
    return [m for _, m in leaves if isinstance(m, nn.Module)]


def find_encoder(model: Any) -> Encoder | None:
    """``model`` itself when it is an :class:`Encoder`, else the encoder closest to the root
    among its submodules (a task model's ``encoder``, a ``*ForSequenceClassification``'s
    ``bert`` or ``model``), else None."""
    if isinstance(model, Encoder):
        return model
    if not isinstance(model, nn.Module):
        return None
    queue = deque(_child_modules(model))
    while queue:
        module = queue.popleft()
        if isinstance(module, Encoder):
            return module
        queue.extend(_child_modules(module))
    return None
