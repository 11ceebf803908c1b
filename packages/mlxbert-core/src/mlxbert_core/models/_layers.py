"""Pieces shared by the encoder implementations: input checks, masks, attention, activations.

Masks are boolean (True = may attend) and every query row is guaranteed at least one allowed key,
so attention never produces NaN in float16/bfloat16: there is no additive -1e9 that could overflow,
and no row whose softmax is taken over nothing but masked scores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from mlxbert_core.encoder import find_encoder
from mlxbert_core.models import _cpu_math
from mlxbert_core.parallel import split_call, split_rows


def on_cpu() -> bool:
    return mx.default_device().type == mx.DeviceType.cpu


def _gelu_tanh(x: mx.array) -> mx.array:
    return nn.gelu_approx(x)


def gelu(x: mx.array) -> mx.array:
    """GELU, exact erf form. On CPU a compiled, fused kernel with its closed-form gradient
    (``_cpu_math``: MLX's precompiled ``erf`` is scalar code); elsewhere ``nn.gelu``."""
    return _cpu_math.gelu(x) if on_cpu() else nn.gelu(x)


def silu(x: mx.array) -> mx.array:
    """SiLU (x * sigmoid(x)); on CPU a compiled, fused kernel with its exact gradient."""
    return _cpu_math.silu(x) if on_cpu() else nn.silu(x)


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` (same parameters), computed on a CPU in inference by
    ``_cpu_math.layer_norm``: MLX's own CPU layer norm spends most of its time in scalar
    row sums."""

    def __call__(self, x: mx.array) -> mx.array:
        if on_cpu() and not self.training and x.dtype == mx.float32:
            weight = self.get("weight")
            bias = self.get("bias")
            return _cpu_math.layer_norm(x, weight, bias, self.eps)
        return super().__call__(x)


class RMSNorm(nn.RMSNorm):
    """``nn.RMSNorm`` (same parameters), computed on a CPU in inference by
    ``_cpu_math.rms_norm``, for the same reason as :class:`LayerNorm`."""

    def __call__(self, x: mx.array) -> mx.array:
        if on_cpu() and not self.training and x.dtype == mx.float32:
            return _cpu_math.rms_norm(x, self.weight, self.eps)
        return super().__call__(x)


def masked_softmax(scores: mx.array, mask: mx.array | None) -> mx.array:
    """Softmax over the last axis in float32 (result in the input dtype), masked entries
    (mask False) set to the float32 minimum first, as eager attention does."""
    if on_cpu():
        return _cpu_math.softmax(scores, mask)
    if mask is not None:
        scores = mx.where(mask, scores, mx.array(mx.finfo(scores.dtype).min, scores.dtype))
    return mx.softmax(scores, axis=-1, precise=True)


#: Hugging Face ``hidden_act`` names -> MLX functions. "gelu" is the exact erf form.
ACTIVATIONS: dict[str, Callable[[mx.array], mx.array]] = {
    "gelu": gelu,
    "gelu_python": gelu,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": _gelu_tanh,
    "relu": nn.relu,
    "silu": silu,
    "swish": silu,
    "tanh": mx.tanh,
}


def get_activation(name: str) -> Callable[[mx.array], mx.array]:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unsupported activation {name!r}; supported: {', '.join(sorted(ACTIVATIONS))}"
        ) from None


def require_positive(config_name: str, config: Any, names: Iterable[str]) -> None:
    """Raise a clear error for missing / non-positive integer fields ``names`` of ``config``."""
    for key in names:
        value = getattr(config, key)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{config_name}: {key} must be a positive integer, got {value!r}")


def config_fields(
    args_type: Any, config: dict[str, Any], exclude: Iterable[str] = ()
) -> dict[str, Any]:
    """The entries of a ``config.json`` that are fields of the dataclass ``args_type`` (null
    values left to the defaults, ``exclude`` left out), ``num_labels`` as transformers
    derives it."""
    known = {f.name for f in dataclasses.fields(args_type)} - set(exclude)
    values = {k: v for k, v in config.items() if k in known and v is not None}
    values["num_labels"] = num_labels_from_config(config)
    return values


def num_labels_from_config(config: dict[str, Any]) -> int:
    """``num_labels`` as transformers derives it: explicit field, else len(id2label), else 2."""
    if config.get("num_labels") is not None:
        n = int(config["num_labels"])
    elif config.get("id2label"):
        n = len(config["id2label"])
    else:
        n = 2
    if n <= 0:
        raise ValueError(f"num_labels must be positive, got {n}")
    return n


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def to_mx(x: Any, what: str) -> mx.array:
    if isinstance(x, mx.array):
        return x
    try:
        return mx.array(np.asarray(x))
    except Exception as exc:
        raise TypeError(f"{what} must be an array of integers, got {type(x).__name__}") from exc


def _host_value(x: mx.array) -> int | None:
    """Read a scalar to the host, or None when that is impossible (inside mx.compile)."""
    try:
        return int(x.item())
    except (ValueError, RuntimeError):
        return None


def _host_copy(x: Any) -> np.ndarray | None:
    """``x`` as a NumPy array when its values are already on the host (NumPy, lists), else None.

    Checking such inputs in NumPy costs no device work and, above all, no device
    synchronisation; only inputs that are already MLX arrays need a device reduction."""
    if x is None or isinstance(x, mx.array):
        return None
    try:
        return np.asarray(x)
    except Exception:
        return None  # to_mx reports it


#: How MLX-array inputs are range-checked: "reduce" (min/max on the device, one read-back)
#: or "host" (copy the ids to the host and check them in NumPy).
DEVICE_INPUT_CHECK = "reduce"


def _input_stats(
    ids: mx.array,
    ids_host: np.ndarray | None,
    types: mx.array | None,
    types_host: np.ndarray | None,
    mask: mx.array | None,
    mask_host: np.ndarray | None,
    *,
    device: bool = True,
) -> dict[str, int] | None:
    """min/max of the ids (and type ids) and whether the mask is all ones.

    Host inputs are summarised in NumPy; the rest with a single stacked device reduction read
    back in one synchronisation (skipped, and their keys left out, with ``device=False``).
    None inside ``mx.compile``, where values cannot be read."""
    if DEVICE_INPUT_CHECK == "host" and device:
        try:
            ids_host = np.asarray(ids) if ids_host is None else ids_host
            if types is not None and types_host is None:
                types_host = np.asarray(types)
            if mask is not None and mask_host is None:
                mask_host = np.asarray(mask)
        except (ValueError, RuntimeError, TypeError):
            return None
    stats: dict[str, int] = {}
    pending: dict[str, mx.array] = {}
    for name, host, dev in (("ids", ids_host, ids), ("types", types_host, types)):
        if dev is None:
            continue
        if host is not None and host.size:
            stats[name + "_min"], stats[name + "_max"] = int(host.min()), int(host.max())
        elif device:
            pending[name + "_min"] = mx.min(dev).astype(mx.int64)
            pending[name + "_max"] = mx.max(dev).astype(mx.int64)
    if mask is not None:
        if mask_host is not None:
            stats["mask_full"] = int(np.all(mask_host != 0))
        elif device:
            pending["mask_full"] = mx.all(mask != 0).astype(mx.int64)
    if pending:
        try:
            values = mx.stack(list(pending.values())).tolist()
        except (ValueError, RuntimeError):
            return None
        stats.update(zip(pending, (int(v) for v in values)))
    return stats


def _per_token_input(
    values: Any, name: str, shape: tuple[int, int]
) -> tuple[mx.array | None, np.ndarray | None]:
    """An optional [batch, seq_len] input beside ``input_ids`` (attention mask, token types)
    as an MLX array, with its host copy when it came from the host; (None, None) if absent."""
    if values is None:
        return None, None
    host = _host_copy(values)
    array = to_mx(values if host is None else host, name)
    if tuple(array.shape) != shape:
        raise ValueError(
            f"{name} shape {tuple(array.shape)} does not match input_ids shape {shape}"
        )
    return array, host


def validate_inputs(
    input_ids: Any,
    attention_mask: Any = None,
    token_type_ids: Any = None,
    *,
    vocab_size: int,
    max_positions: int,
    max_positions_name: str,
    type_vocab_size: int | None = None,
    drop_full_mask: bool = False,
    check_device_values: bool = True,
) -> tuple[mx.array, mx.array | None, mx.array | None]:
    """Check shapes and id ranges; return the inputs as MLX arrays.

    Inputs given as NumPy arrays or lists (tokenizer output) are range-checked on the host for
    free; MLX-array inputs cost one small device reduction and one synchronisation (pass NumPy
    arrays to avoid even that). The range checks are skipped inside ``mx.compile``, where
    values cannot be read. With ``drop_full_mask``, an attention mask without any padding is
    returned as None: attention then runs unmasked, which gives the same result and lets
    fused attention kernels skip the mask. ``check_device_values=False`` skips the value
    checks (ranges, full mask) of inputs that are MLX arrays, and with them the device
    synchronisation; host inputs are still checked.
    """
    ids_host = _host_copy(input_ids)
    ids = to_mx(input_ids if ids_host is None else ids_host, "input_ids")
    if ids.ndim != 2:
        raise ValueError(
            f"input_ids must be 2-D [batch, seq_len], got shape {tuple(ids.shape)}; "
            "for a single sequence pass input_ids[None]"
        )
    if not mx.issubdtype(ids.dtype, mx.integer):
        raise TypeError(f"input_ids must hold integers, got dtype {ids.dtype}")
    batch, seq_len = ids.shape
    if seq_len == 0:
        raise ValueError("input_ids has length 0; every sequence needs at least one token")
    if seq_len > max_positions:
        raise ValueError(
            f"sequence length {seq_len} exceeds {max_positions_name}={max_positions} of this "
            f"model; truncate the input (tokenizer max_length <= {max_positions})"
        )
    mask, mask_host = _per_token_input(attention_mask, "attention_mask", (batch, seq_len))
    types, types_host = _per_token_input(token_type_ids, "token_type_ids", (batch, seq_len))
    check_types = types is not None and type_vocab_size is not None
    stats = _input_stats(
        ids,
        ids_host,
        types if check_types else None,
        types_host,
        mask if drop_full_mask else None,
        mask_host,
        device=check_device_values,
    )
    if stats is None:  # inside mx.compile
        return ids, mask, types
    lo, hi = stats.get("ids_min", 0), stats.get("ids_max", 0)
    if lo < 0 or hi >= vocab_size:
        raise ValueError(
            f"input_ids contain ids outside the vocabulary [0, {vocab_size}) (min {lo}, "
            f"max {hi}); was the text tokenized with this model's tokenizer?"
        )
    if check_types:
        lo, hi = stats.get("types_min", 0), stats.get("types_max", 0)
        if lo < 0 or hi >= type_vocab_size:
            raise ValueError(
                f"token_type_ids must lie in [0, {type_vocab_size}) (min {lo}, max {hi})"
            )
    if drop_full_mask and stats.get("mask_full"):
        mask = None
    return ids, mask, types


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------


def token_mask(attention_mask: mx.array | None) -> mx.array | None:
    """[B, S] boolean "is a real token", or None when there is no padding information."""
    if attention_mask is None:
        return None
    return attention_mask if attention_mask.dtype == mx.bool_ else attention_mask != 0


def key_padding_mask(tokens: mx.array | None) -> mx.array | None:
    """[B, 1, 1, S] boolean mask over keys. A row with no real token at all is opened fully,
    so its (meaningless) outputs stay finite instead of becoming NaN."""
    if tokens is None:
        return None
    empty = mx.logical_not(mx.any(tokens, axis=-1, keepdims=True))
    return mx.logical_or(tokens, empty)[:, None, None, :]


def sliding_window_mask(tokens: mx.array | None, seq_len: int, half_window: int) -> mx.array:
    """[B or 1, 1, S, S] boolean mask: |i - j| <= half_window, combined with key padding.

    A padded query far past the last real token would have every key masked; padded queries
    therefore ignore the padding (they always see themselves), which keeps them finite and
    leaves every real token's output unchanged.
    """
    pos = mx.arange(seq_len)
    window = mx.abs(pos[:, None] - pos[None, :]) <= half_window  # [S, S]
    if tokens is None:
        return window[None, None]
    allowed = mx.logical_or(tokens[:, None, :], mx.logical_not(tokens)[:, :, None])  # [B,S,S]
    return mx.logical_and(window[None], allowed)[:, None]


# --------------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------------


#: GPU tuning switches. Module attributes (not arguments) so that
#: ``tools/bench/encoder_variants.py`` can compare the alternatives in one process; the defaults
#: are the fastest measured on an NVIDIA H200 (see tools/bench/README.md). None of them is
#: used on CPU, where attention is always the explicit softmax below.
#:   GPU_ATTENTION: "fused" (mx.fast.scaled_dot_product_attention) or "explicit".
#:   GPU_ADDITIVE_MASK: hand a float (0 / -max) mask to the fused kernel instead of a boolean.
#:   GPU_FUSED_QKV: one [3H, H] projection instead of three (plain nn.Linear layers only).
#:   GPU_SPLIT_BIAS: x @ Wᵀ, then + b as a separate elementwise op (which a compiled forward
#:     fuses into the GELU or residual add that follows) instead of one addmm.
GPU_ATTENTION = "fused"
GPU_ADDITIVE_MASK = True
GPU_FUSED_QKV = True
GPU_SPLIT_BIAS = False


def linear(layer: nn.Module, x: mx.array, split_bias: bool = False) -> mx.array:
    """``layer(x)``, or for a plain ``nn.Linear`` with a bias, ``x @ Wᵀ + b``: on GPU with
    ``GPU_SPLIT_BIAS``, and where the caller asks (``split_bias``: the packed forward on a
    CPU, which runs eagerly). There ``addmm`` first fills its output with the broadcast bias
    through MLX's general (scalar) copy, slower than a vectorised add; in a compiled CPU
    forward ``addmm`` measured faster, so it stays."""
    split = split_bias or (GPU_SPLIT_BIAS and not on_cpu())
    if split and type(layer) is nn.Linear and "bias" in layer:
        return x @ layer.weight.T + layer.bias
    return layer(x)


def attention(
    q: mx.array,
    k: mx.array,
    v: mx.array,
    *,
    scale: float,
    mask: mx.array | None,
    output_attentions: bool = False,
) -> tuple[mx.array, mx.array | None]:
    """Scaled dot-product attention on [B, H, S, D] inputs; returns ([B, H, S, D], probs).

    On GPU the default path is ``mx.fast.scaled_dot_product_attention``. With
    ``output_attentions``, and always on CPU, the softmax is computed explicitly (scores in
    the input dtype, softmax in float32, masked scores set to the float32 minimum as eager
    attention does); with ``output_attentions`` the probabilities are returned too.
    """
    if not output_attentions and not on_cpu() and GPU_ATTENTION == "fused":
        if mask is not None and GPU_ADDITIVE_MASK and mask.dtype == mx.bool_:
            mask = mx.where(mask, mx.array(0, q.dtype), mx.array(mx.finfo(q.dtype).min, q.dtype))
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=mask), None
    if on_cpu():
        # MLX's fused attention is several times slower on CPU than two matrix products and
        # a compiled softmax. The scores are laid out [B, H, keys, queries] and normalised
        # over keys: the row max and sum then broadcast along the contiguous axis, which the
        # compiled kernels vectorise (1.3-1.5x faster softmax than over the last axis); the
        # transposes are free, as BLAS takes them as flags.
        scores_t = k @ (q * scale).swapaxes(-1, -2)
        mask_t = None if mask is None else mask.swapaxes(-1, -2)
        probs = _cpu_math.softmax(scores_t, mask_t, axis=-2).swapaxes(-1, -2)
        return probs @ v, (probs if output_attentions else None)
    # Explicit path on GPU, for the attention probabilities.
    probs = masked_softmax((q * scale) @ k.swapaxes(-1, -2), mask)
    return probs @ v, (probs if output_attentions else None)


def fused_linears(x: mx.array, layers: Sequence[nn.Module]) -> list[mx.array] | None:
    """The outputs of several ``nn.Linear`` layers of one input, from one matrix product of
    their concatenated weights (one large GEMM instead of several), or None when that does
    not apply: on CPU, with ``GPU_FUSED_QKV`` off, or when a layer is not a plain
    ``nn.Linear`` (quantized, LoRA-wrapped...). Parameters stay separate (checkpoint names
    unchanged); the concatenation is a cheap copy, fused into compiled forwards."""
    if not GPU_FUSED_QKV or on_cpu() or any(type(layer) is not nn.Linear for layer in layers):
        return None
    has_bias = ["bias" in layer for layer in layers]
    if any(has_bias) and not all(has_bias):
        return None
    weight = mx.concatenate([layer.weight for layer in layers], axis=0)
    if all(has_bias):
        bias = mx.concatenate([layer.bias for layer in layers])
        out = x @ weight.T + bias if GPU_SPLIT_BIAS else mx.addmm(bias, x, weight.T)
    else:
        out = x @ weight.T
    sizes = [layer.weight.shape[0] for layer in layers]
    splits = list(itertools.accumulate(sizes[:-1]))
    return mx.split(out, splits, axis=-1)


_PLAIN = (bool, int, float, str, type(None))


def module_signature(module: nn.Module) -> tuple:
    """The types and plain Python attributes (flags, scales, sizes) of ``module`` and all its
    submodules: what a traced graph bakes in besides array shapes. A compiled forward traced
    with one configuration (adapters switched on, a layer replaced) must not serve another."""
    out: list = []
    stack: list = [module]
    while stack:
        item = stack.pop()
        if isinstance(item, nn.Module):
            attrs = vars(item)
            out.append((type(item), *((k, v) for k, v in attrs.items() if isinstance(v, _PLAIN))))
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return tuple(out)


class CompiledForward:
    """Mixin for encoders: the compiled inference forward, on by default.

    Plain inference calls (eval mode, no ``output_hidden_states`` / ``output_attentions``) run
    through ``mx.compile``, which fuses the elementwise work (bias + GELU, residual adds,
    masks) and replays the traced graph without rebuilding it in Python; on a CPU with a few
    cores the batch is also split into one slice per core (:func:`mlxbert_core.parallel.
    split_call`). The model's parameters are passed to the compiled function as implicit
    inputs, so weight updates (loading, ``set_dtype``, training) are picked up. ``mx.compile``
    traces once per input shape. ``compile_forward(False)`` turns it off (the eager forward),
    ``with model.eager_forward():`` for a block; ``compile_forward(False, per_core=True)``
    keeps the slices without compiling (a server's batches come in every shape, and each new
    shape would be traced and kept). Training mode always runs eager.
    """

    _forward_compiled: bool | None = None  # None: the default, on
    _check_mx_inputs: bool = True
    _eager_per_core: bool = False

    def compile_forward(
        self, enabled: bool = True, *, check_mx_inputs: bool = True, per_core: bool = False
    ):
        """Switch the compiled inference forward on (the default) or off (see the class
        docstring); returns the model, so ``model = load(...).compile_forward()`` works.

        ``check_mx_inputs=False`` skips the id range check of inputs that are already MLX
        arrays on these calls (it costs a device reduction and a synchronisation per call);
        out-of-range ids then give undefined embeddings instead of an error. NumPy and list
        inputs are always checked, on the host, at no device cost.

        ``per_core=True`` with ``enabled=False``: the eager forward also runs one batch slice
        per core on a CPU with a few cores (:func:`mlxbert_core.parallel.split_call`), as the
        compiled one always does; elsewhere it is the plain eager forward. Encoders with a
        packed forward (BERT, ModernBERT, NeoBERT) then compute a batch with padding on its
        real tokens only, the rows grouped by length per core (:attr:`packs_batches`); the
        padding's rows of ``last_hidden_state`` are then zero."""
        self._forward_compiled = bool(enabled)
        self._check_mx_inputs = bool(check_mx_inputs)
        self._eager_per_core = bool(per_core) and not enabled
        return self

    @property
    def forward_compiled(self) -> bool:
        return self._forward_compiled is not False

    @contextlib.contextmanager
    def eager_forward(self) -> Iterator[Any]:
        """The eager forward for the calls inside the ``with`` block, then the setting as it
        was: for transformations of a call that closes over arrays the compiled forward
        does not take as inputs (``mx.grad`` through a hook on the embeddings)."""
        saved = self._forward_compiled, self._eager_per_core
        self._forward_compiled, self._eager_per_core = False, False
        try:
            yield self
        finally:
            self._forward_compiled, self._eager_per_core = saved

    def _use_compiled(self, plain: bool) -> bool:
        """Whether this call takes :meth:`_compiled_call` (compiled, or eager per core)."""
        return plain and not self.training and (self.forward_compiled or self._eager_per_core)

    @property
    def packs_batches(self) -> bool:
        """Whether plain inference calls with padding run packed (:mod:`._packing`): the
        real tokens only, the rows grouped by length per core. On a CPU, in the eager
        forward per core, for encoders that have a packed forward (BERT, ModernBERT,
        NeoBERT)."""
        return (
            self._eager_per_core
            and not self.forward_compiled
            and not self.training
            and on_cpu()
            and callable(getattr(self, "_packed_forward", None))
        )

    def _use_packed(self, plain: bool, attention_mask: mx.array | None) -> bool:
        """Whether this call takes the packed forward: see :attr:`packs_batches`."""
        return plain and attention_mask is not None and self.packs_batches

    def _packed_call(
        self, fn: Callable[..., tuple], input_ids: mx.array, attention_mask: mx.array, *rest
    ) -> tuple:
        """``fn(input_ids, attention_mask, *rest)``, the rows in one group per core of similar
        lengths and equal cost (:func:`mlxbert_core.parallel.split_rows`). ``fn`` gets the
        inputs as NumPy arrays: a packed forward lays its tokens out on the host, and
        slicing MLX arrays would make each group wait for an evaluation of its slice."""
        host = [None if a is None else np.asarray(a) for a in (input_ids, attention_mask, *rest)]
        tokens = (host[1] != 0).sum(axis=1)
        return split_rows(fn, host, tokens, self._pair_cost())

    def _pair_cost(self) -> float:
        """The cost of one (query, key) pair of attention against one token's projections
        and feed-forward block: 4h multiply-adds against 2h(4h + 2f) per layer, i.e.
        1 / (2h + f), times 3 for the softmax's elementwise work (with MiniLM, 1x and 3x
        measured alike, and a little faster than balancing tokens alone). 0 when unknown."""
        config = getattr(self, "config", None)
        hidden = getattr(config, "hidden_size", None)
        inner = getattr(config, "intermediate_size", None)
        if not isinstance(hidden, int) or not isinstance(inner, int):
            return 0.0
        return 3.0 / (2 * hidden + inner)

    def _check_device_values(self, plain: bool) -> bool:
        """Whether validate_inputs should range-check MLX-array inputs on this call."""
        return self._check_mx_inputs or not (plain and self.forward_compiled and not self.training)

    def _compiled_call(self, fn: Callable[..., tuple], *arrays: mx.array | None) -> tuple:
        """``fn(*arrays)`` through an ``mx.compile`` cached per pattern of None arguments and
        per module configuration (:func:`module_signature`), one batch slice per core on a
        small CPU (``parallel.split_call``); with the eager forward per core, ``fn`` itself."""
        missing = tuple(a is None for a in arrays)
        given = [a for a in arrays if a is not None]

        def run(*present: mx.array) -> tuple:
            it = iter(present)
            return fn(*(None if absent else next(it) for absent in missing))

        if not self.forward_compiled:
            return split_call(run, given)
        cache = self.__dict__.setdefault("_compiled_cache", {})
        key = (fn.__name__, missing, module_signature(self))
        compiled = cache.get(key)
        if compiled is None:
            compiled = mx.compile(run, inputs=self.state)
            cache[key] = compiled
        return split_call(compiled, given)


def split_heads(x: mx.array, num_heads: int) -> mx.array:
    """[B, S, H*D] -> [B, H, S, D]."""
    b, s, _ = x.shape
    return x.reshape(b, s, num_heads, -1).transpose(0, 2, 1, 3)


def merge_heads(x: mx.array) -> mx.array:
    """[B, H, S, D] -> [B, S, H*D]."""
    b, h, s, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, s, h * d)


def strip_prefix(key: str, prefix: str) -> str:
    return key[len(prefix) :] if key.startswith(prefix) else key


def summarize_keys(keys: list[str], limit: int = 3) -> str:
    """'a, b, c, ...' naming a few of the keys (their common stems), for notes."""
    stems: list[str] = []
    for key in sorted(keys):
        stem = key.rsplit(".", 1)[0]
        if stem not in stems:
            stems.append(stem)
    shown = ", ".join(stems[:limit])
    return shown + (", ..." if len(stems) > limit else "")


def ignored_heads_notes(keys: list[str]) -> list[str]:
    """The load note for checkpoint task-head weights the model does not use (none if none)."""
    return [f"ignored {len(keys)} task-head weights ({summarize_keys(keys)})"] if keys else []


def build_for_task(
    task: str, args: Any, classes: dict[str, type[nn.Module]], config: dict[str, Any]
) -> nn.Module:
    """Instantiate the model class registered for ``task`` (encoder, masked_lm,
    sequence_classification) in eval mode, as transformers returns loaded models; its encoder
    keeps ``config`` (the ``config.json`` it was built from) as ``config_dict``."""
    if task not in classes:
        raise ValueError(f"unknown task {task!r}; expected {', '.join(classes)}")
    model = classes[task](args)
    model.eval()
    encoder = find_encoder(model)
    if encoder is not None:
        encoder.config_dict = config
    return model


def task_builder(
    args_type: Any, **classes: type[nn.Module]
) -> Callable[[dict[str, Any], str], nn.Module]:
    """An architecture's ``build(config, task)``: ``args_type.from_dict(config)`` given to the
    class registered for ``task`` (``encoder=``, ``masked_lm=``, ``sequence_classification=``),
    through :func:`build_for_task`."""

    def build(config: dict[str, Any], task: str) -> nn.Module:
        return build_for_task(task, args_type.from_dict(config), classes, config)

    return build
