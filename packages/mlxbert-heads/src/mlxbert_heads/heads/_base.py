"""Shared machinery of every task head: an optional MLP body, input checks, config I/O."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import mlx.core as mx
import mlx.nn as nn
import numpy as np

ACTIVATIONS = {"gelu": nn.gelu, "relu": nn.relu, "tanh": mx.tanh, "silu": nn.silu}


def any_true(condition: mx.array) -> bool:
    """Whether any element of a boolean array is true, for input checks.

    Inside ``mx.compile`` (or vmap) array values are not available and evaluating them raises;
    the checks then pass, since they already ran on the concrete data outside the compiled
    step (eagerly, or on the first batch of a training loop that validates its data). This keeps
    losses usable in compiled training steps without giving up the checks in eager use.
    """
    try:
        return bool(mx.any(condition).item())
    except ValueError as exc:
        if "function transformations" in str(exc):
            return False
        raise


def to_mx(values: Any, name: str = "targets") -> mx.array:
    """numpy arrays, lists and mlx arrays to an mlx array, refusing NaN/inf."""
    array = values if isinstance(values, mx.array) else mx.array(np.asarray(values))
    if mx.issubdtype(array.dtype, mx.floating) and any_true(~mx.isfinite(array)):
        raise ValueError(f"{name} contain NaN or infinite values")
    return array


def to_numpy(values: Any) -> np.ndarray:
    """mlx (any float dtype, bfloat16 included) or numpy to a float64 numpy array."""
    if isinstance(values, mx.array):
        values = np.array(values.astype(mx.float32))
    return np.asarray(values, dtype=np.float64)


def labels_to_numpy(values: Any) -> np.ndarray:
    if isinstance(values, mx.array):
        values = np.array(values)
    return np.asarray(values)


class TaskHead(nn.Module):
    """Base class: ``features`` (batch, hidden_size) -> optional MLP body -> output layer.

    The body is ``dropout(norm(act(linear(x))))`` per entry of ``hidden_dims``; ``body_bias``
    drops the linear layers' biases and ``body_norm={"eps": ..., "bias": ...}`` adds the
    LayerNorm (without it the body is ``dropout(act(linear(x)))``).

    Subclasses set ``task`` (via ``@register_head``), call ``super().__init__`` with their
    output width, and implement ``__call__``, ``loss``, ``predict`` and ``metrics``. The
    weights are ordinary mlx parameters (``head.parameters()``, ``head.save_weights``);
    fitted state (temperature, thresholds, target scaling) lives in plain attributes that
    ``get_config`` / ``from_config`` carry.
    """

    task: ClassVar[str] = ""
    extra_inputs: ClassVar[tuple[str, ...]] = ()
    #: The constructor argument giving the number of outputs (``num_classes``, ``horizon``...),
    #: so that generic code can size any registered head; None: the head's size is fixed.
    outputs_argument: ClassVar[str | None] = None
    #: What a prediction is: ``"label"`` (one class, with probabilities), ``"labels"`` (a set
    #: of labels) or ``"value"`` (numbers). None: ``"label"`` when the head has
    #: ``predict_proba``, else ``"value"``.
    output_kind: ClassVar[str | None] = None
    #: The head's own constructor arguments that ``get_config`` writes, in order (see
    #: :meth:`_config_value` for where each value is read).
    config_arguments: ClassVar[tuple[str, ...]] = ()
    #: Fitted scalars and their values before fitting (a temperature, a decision threshold),
    #: carried under ``"fitted"``; heads with other fitted state override the two methods.
    fitted_floats: ClassVar[dict[str, float]] = {}

    @classmethod
    def prediction_kind(cls) -> str:
        """``output_kind``, or what the head's methods imply."""
        if cls.output_kind is not None:
            return cls.output_kind
        return "label" if callable(getattr(cls, "predict_proba", None)) else "value"

    def __init__(
        self,
        hidden_size: int,
        output_size: int,
        *,
        hidden_dims: Sequence[int] = (),
        dropout: float = 0.0,
        activation: str = "gelu",
        body_bias: bool = True,
        body_norm: dict[str, Any] | None = None,
    ):
        super().__init__()
        if not isinstance(hidden_size, (int, np.integer)) or hidden_size < 1:
            raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
        dims = [int(d) for d in hidden_dims]
        if any(d < 1 for d in dims):
            raise ValueError(f"hidden_dims must be positive integers, got {list(hidden_dims)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of {list(ACTIVATIONS)}"
            )
        norm = _norm_settings(body_norm)
        self.hidden_size = int(hidden_size)
        self._body_config: dict[str, Any] = {
            "hidden_size": int(hidden_size),
            "hidden_dims": dims,
            "dropout": float(dropout),
            "activation": activation,
        }
        # Written only when they differ from the plain MLP body, so older configs read alike.
        if not body_bias:
            self._body_config["body_bias"] = False
        if norm is not None:
            self._body_config["body_norm"] = norm
        self._activation = ACTIVATIONS[activation]
        sizes = [self.hidden_size, *dims]
        self.layers = [nn.Linear(a, b, bias=body_bias) for a, b in itertools.pairwise(sizes)]
        if norm is not None:
            # A LayerNorm after each body layer's activation (ModernBERT's classifier body).
            self.norms = [nn.LayerNorm(d, eps=norm["eps"], bias=norm["bias"]) for d in dims]
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(sizes[-1], output_size)

    # -- forward helpers -------------------------------------------------------------------
    def features(self, x: mx.array) -> mx.array:
        """Validate (batch, hidden_size) features and run the MLP body (before the output)."""
        if not isinstance(x, mx.array):
            x = mx.array(np.asarray(x, dtype=np.float32))
        if x.ndim != 2 or x.shape[1] != self.hidden_size:
            raise ValueError(
                f"{type(self).__name__} expects features of shape (batch, {self.hidden_size}), "
                f"got {tuple(x.shape)}; pool token states first (see TaskModel / Pooler)"
            )
        norms = self.get("norms") or [None] * len(self.layers)
        for layer, norm in zip(self.layers, norms):
            x = self._activation(layer(x))
            x = self.dropout(norm(x) if norm is not None else x)
        return x

    def _check_batch(self, outputs: mx.array, targets: mx.array) -> None:
        if targets.ndim == 0 or targets.shape[0] != outputs.shape[0]:
            raise ValueError(
                f"targets have shape {tuple(targets.shape)} but the batch has {outputs.shape[0]} "
                "samples"
            )

    def _target_vector(
        self, outputs: mx.array, targets: Any, expected: str, hint: str = ""
    ) -> mx.array:
        """One target per sample as an mlx vector (batch,); a (batch, 1) column is accepted.
        Other shapes raise "``expected``, got (shape)``hint``"."""
        targets = to_mx(targets)
        self._check_batch(outputs, targets)
        if targets.ndim == 2 and targets.shape[1] == 1:
            targets = targets[:, 0]
        if targets.ndim != 1:
            raise ValueError(f"{expected}, got {tuple(targets.shape)}{hint}")
        return targets

    def _class_indices(
        self, targets: mx.array, num_classes: int, range_name: str = "class indices"
    ) -> mx.array:
        """A target vector checked to hold whole class indices 0..num_classes-1, as int32."""
        if mx.issubdtype(targets.dtype, mx.floating) and any_true(targets != mx.round(targets)):
            raise ValueError(f"{self.task} targets must be integer class indices")
        if any_true((targets < 0) | (targets >= num_classes)):
            raise ValueError(f"{range_name} must lie in [0, {num_classes - 1}]")
        return targets.astype(mx.int32)

    # -- decisions ---------------------------------------------------------------------------
    def fit_decision(self, outputs: Any, targets: Any, *, criterion: str = "f1") -> dict | None:
        """Fit the head's decision thresholds on validation outputs (binary: one threshold,
        multilabel: one per label) maximising ``criterion``; returns what was fitted, or
        None for heads that decide without a threshold."""
        return None

    # -- configuration ---------------------------------------------------------------------
    def _config_value(self, name: str) -> Any:
        """The head's value of constructor argument ``name``: ``loss_name`` for ``loss``
        (``loss`` is the method), else the attribute ``_name`` where the head keeps one (list
        values stay private, out of the module's parameter tree), else ``name``."""
        if name == "loss":
            return self.loss_name
        private = "_" + name
        return getattr(self, private) if hasattr(self, private) else getattr(self, name)

    def _head_config(self) -> dict[str, Any]:
        """Constructor arguments specific to the subclass (JSON-serialisable)."""
        return {name: self._config_value(name) for name in self.config_arguments}

    def _fitted_state(self) -> dict[str, Any]:
        """State learned after training (calibration, thresholds, scaling)."""
        return {name: getattr(self, name) for name in self.fitted_floats}

    def _load_fitted_state(self, state: dict[str, Any]) -> None:
        if state and not self.fitted_floats:
            raise ValueError(f"{type(self).__name__} has no fitted state, got {sorted(state)}")
        for name, unfitted in self.fitted_floats.items():
            setattr(self, name, finite_float(state.get(name, unfitted), name))

    def get_config(self) -> dict[str, Any]:
        """Everything needed to rebuild this head (except the weights), JSON-serialisable."""
        return {
            "task": self.task,
            **self._body_config,
            **self._head_config(),
            "fitted": self._fitted_state(),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        """Rebuild a head from :meth:`get_config` (load the weights separately)."""
        config = dict(config)
        task = config.pop("task", cls.task)
        if task != cls.task:
            raise ValueError(f"config is for task {task!r}, not {cls.task!r} ({cls.__name__})")
        fitted = config.pop("fitted", {}) or {}
        head = cls(**config)
        head._load_fitted_state(fitted)
        return head


def _norm_settings(body_norm: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"eps", "bias"}`` of the body's LayerNorms, checked, or None for no norm."""
    if body_norm is None:
        return None
    if not isinstance(body_norm, dict) or set(body_norm) - {"eps", "bias"}:
        raise ValueError(f"body_norm is a dict with 'eps' and 'bias', got {body_norm!r}")
    eps = float(body_norm.get("eps", 1e-5))
    if not eps > 0:
        raise ValueError(f"body_norm eps must be > 0, got {eps}")
    return {"eps": eps, "bias": bool(body_norm.get("bias", True))}


def count_argument(value: Any, name: str, minimum: int = 1) -> int:
    """A head's size argument (``num_classes``, ``horizon``...) checked to be an integer of at
    least ``minimum``."""
    if not isinstance(value, (int, np.integer)) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)


def finite_float(value: Any, name: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value
