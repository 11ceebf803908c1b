"""Monarch Mixer sequence mixing: implicit Hyena filters and FFT long convolutions.

Layouts: activations are ``(batch, length, channels)``; generated kernels are
``(length, channels)``. Everything here is shape-static (no data-dependent Python control flow),
so a forward pass can be wrapped in :func:`mlx.core.compile`.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from ._fftconv import MonarchPlan, monarch_fft_conv, monarch_kernel_spectrum, monarch_plan
from ._spectrum_cache import SpectrumCache
from .config import M2BertConfig

# Filter generation and the kernel transforms always run in float32: the Sin(10 x) chain of the
# implicit filter amplifies rounding. MLX's FFT works on float32/complex64 only; the
# matrix-product FFT runs in the activation dtype.
_FILTER_DTYPE = mx.float32


class Sin(nn.Module):
    """``sin(w_mod * freq * x)`` with a learned per-feature frequency (reference ``Sin``)."""

    def __init__(self, dim: int, w: float, w_mod: float):
        super().__init__()
        self.freq = w * mx.ones((1, dim))
        self._w_mod = w_mod

    def __call__(self, x: mx.array) -> mx.array:
        return mx.sin(self._w_mod * self.freq * x)


class SharedSin(nn.Module):
    """A parameter-free alias of the filter's one shared :class:`Sin`.

    The reference reuses a single ``Sin`` object at positions 1, 3, 5 of both implicit MLPs, so
    its ``freq`` appears under up to six state-dict names that hold one tensor. Here it is
    stored once, under ``implicit_filter.1.freq`` (the name ``safetensors`` keeps); the other
    positions are these aliases and own no parameter, so training updates one tensor.
    """

    def __call__(self, x: mx.array, sin: Sin) -> mx.array:
        return sin(x)


def positional_features(l_max: int, emb_dim: int) -> tuple[mx.array, mx.array]:
    """Construction-time ``z`` (1, l_max, emb_dim) and ``t`` (1, l_max, 1) of ``PositionalEmbedding``.

    Only used to initialise a fresh model; a checkpoint's stored values are always loaded.
    """
    t = mx.linspace(0, 1, l_max)[None, :, None]
    bands = (emb_dim - 1) // 2
    t_rescaled = mx.linspace(0, l_max - 1, l_max)[None, :, None]
    w = 2 * math.pi * t_rescaled / l_max
    f = mx.linspace(1e-4, bands - 1, bands)[None, None]
    z = mx.concatenate([t, mx.cos(f * w), -mx.sin(f * w)], axis=-1)
    return z, t


class PositionalEmbedding(nn.Module):
    """Holds ``z`` (trainable) and ``t`` (a frozen buffer)."""

    def __init__(self, emb_dim: int, l_max: int):
        super().__init__()
        self.z, self.t = positional_features(l_max, emb_dim)
        self.freeze(recurse=False, keys=["t"])

    def __call__(self, length: int) -> tuple[mx.array, mx.array]:
        return self.z[:, :length], self.t[:, :length]


class ExponentialModulation(nn.Module):
    """``k[t, c] = h[t, c] * exp(-t * |deltas[c]|)``; ``deltas`` is a frozen buffer."""

    def __init__(self, d_model: int, fast_decay_pct: float = 0.3, slow_decay_pct: float = 1.5):
        super().__init__()
        max_decay = math.log(1e-2) / fast_decay_pct
        min_decay = math.log(1e-2) / slow_decay_pct
        self.deltas = mx.linspace(min_decay, max_decay, d_model)[None, None]
        self.freeze(recurse=False, keys=["deltas"])

    def __call__(self, t: mx.array, h: mx.array) -> mx.array:
        return h * mx.exp(-t * mx.abs(self.deltas))


def _implicit_mlp(config: M2BertConfig, owns_sin: bool) -> list[nn.Module]:
    """Linear, Sin, Linear, Sin, Linear, Sin, Linear (indices 0..6 as in the reference)."""
    order, d = config.hyena_filter_order, config.hidden_size
    first = Sin(order, config.hyena_w, config.hyena_w_mod) if owns_sin else SharedSin()
    acts = [first, SharedSin(), SharedSin()]
    return [
        nn.Linear(config.hyena_emb_dim, order),
        acts[0],
        nn.Linear(order, order),
        acts[1],
        nn.Linear(order, order),
        acts[2],
        nn.Linear(order, d, bias=False),
    ]


class HyenaFilter(nn.Module):
    """Implicit long-convolution filter (reference ``HyenaFilter``).

    Generates ``k_fwd`` (and ``k_rev`` when bidirectional) of shape (L, D) from the positional
    features, and holds the per-channel skip weight ``bias`` (the reference's "D" term).
    """

    def __init__(self, config: M2BertConfig):
        super().__init__()
        d = config.hidden_size
        self.bidirectional = config.bidirectional
        self.bias = mx.zeros((d,))
        self.pos_emb = PositionalEmbedding(config.hyena_emb_dim, config.long_conv_l_max)
        self.implicit_filter = _implicit_mlp(config, owns_sin=True)
        if config.bidirectional:
            self.implicit_filter_rev = _implicit_mlp(config, owns_sin=False)
        self.modulation = ExponentialModulation(d)

    def _run_mlp(self, layers: list[nn.Module], z: mx.array) -> mx.array:
        sin = self.implicit_filter[1]
        h = z
        for layer in layers:
            h = layer(h, sin) if isinstance(layer, SharedSin) else layer(h)
        return h

    def kernels(self, length: int) -> tuple[mx.array, mx.array | None]:
        """``(k_fwd, k_rev)``, each (length, D) float32; ``k_rev`` is None when causal."""
        z, t = self.pos_emb(length)
        z, t = z.astype(_FILTER_DTYPE), t.astype(_FILTER_DTYPE)
        k_fwd = self.modulation(t, self._run_mlp(self.implicit_filter, z))[0]
        k_rev = None
        if self.bidirectional:
            k_rev = self.modulation(t, self._run_mlp(self.implicit_filter_rev, z))[0]
        return k_fwd.astype(_FILTER_DTYPE), (None if k_rev is None else k_rev.astype(_FILTER_DTYPE))

    def conv_kernel(self, length: int) -> mx.array:
        """The length-2L time-domain kernel of the circular convolution, (2L, D).

        Bidirectional: ``[k_fwd[0..L-1], k_rev[L-1], ..., k_rev[0]]``, so ``k_rev[0]`` multiplies
        the *next* position. Causal: ``k_fwd`` zero-padded to 2L (no wrap-around).
        """
        k_fwd, k_rev = self.kernels(length)
        if k_rev is None:
            return mx.concatenate([k_fwd, mx.zeros_like(k_fwd)], axis=0)
        return mx.concatenate([k_fwd, k_rev[::-1]], axis=0)


def rfft_kernel_spectrum(kernel: mx.array) -> mx.array:
    """``rfft`` of a (2L, C) kernel along time, channel-major: (C, L+1) complex64."""
    return mx.fft.rfft(kernel.astype(_FILTER_DTYPE).T, n=kernel.shape[0])


def rfft_long_conv(u: mx.array, spectrum: mx.array) -> mx.array:
    """:func:`fft_long_conv` with the kernel given by its :func:`rfft_kernel_spectrum`."""
    length = u.shape[1]
    n = 2 * length
    u_f = mx.fft.rfft(u.astype(_FILTER_DTYPE).swapaxes(1, 2), n=n)  # (B, C, L+1)
    y = mx.fft.irfft(u_f * spectrum, n=n)[..., :length]
    return y.swapaxes(1, 2)


def fft_long_conv(u: mx.array, kernel: mx.array) -> mx.array:
    """Per-channel circular convolution of ``u`` (B, L, C) zero-padded to 2L with ``kernel`` (2L, C).

    Returns the first L outputs, (B, L, C) float32. One rfft of the input, one rfft of the
    kernel (shared by the whole batch) and one irfft, all along the last axis (channel-major:
    measured faster than transforming the middle axis on GPU); MLX provides their VJPs, so
    gradients flow to the input and to the filter parameters.
    """
    return rfft_long_conv(u, rfft_kernel_spectrum(kernel))


@mx.compile
def _causal_taps3(p: mx.array, w: mx.array, b: mx.array) -> mx.array:
    # Fused into one kernel by mx.compile (unfused, the shifted adds cost more than the
    # input projection on GPU).
    z = mx.zeros_like(p[:, :1])
    p1 = mx.concatenate([z, p[:, :-1]], axis=1)
    p2 = mx.concatenate([z, z, p[:, :-2]], axis=1)
    return w[:, 0] * p2 + w[:, 1] * p1 + w[:, 2] * p + b


def short_causal_conv(p: mx.array, weight: mx.array, bias: mx.array) -> mx.array:
    """Depthwise causal Conv1d with kernel 3 (reference ``short_filter``, padding 2, first L kept).

    ``weight`` is the torch layout (C, 1, 3): ``q[t] = w0 p[t-2] + w1 p[t-1] + w2 p[t] + b``.
    """
    if weight.shape[-1] != 3 or p.shape[1] < 3:
        length, k = p.shape[1], weight.shape[-1]
        padded = mx.pad(p, [(0, 0), (k - 1, 0), (0, 0)])
        out = bias.astype(p.dtype)
        for i in range(k):
            out = out + padded[:, i : i + length] * weight[:, 0, i].astype(p.dtype)
        return out
    return _causal_taps3(p, weight[:, 0, :].astype(p.dtype), bias.astype(p.dtype))


class ShortFilter(nn.Module):
    """Parameter holder named like the reference's depthwise ``nn.Conv1d``."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        scale = 1.0 / math.sqrt(kernel_size)
        self.weight = mx.random.uniform(-scale, scale, (channels, 1, kernel_size))
        self.bias = mx.random.uniform(-scale, scale, (channels,))

    def __call__(self, p: mx.array) -> mx.array:
        return short_causal_conv(p, self.weight, self.bias)


#: ``"auto"``: matrix-product FFT (:mod:`._fftconv`) for bfloat16/float16 activations, ``rfft``
#: for float32; ``"rfft"``: always MLX's float32 FFT; ``"matmul"``: always the matrix-product FFT,
#: in the activation dtype (float32 included). Lengths with no usable factorisation (large
#: primes) always take the rfft path.
LONG_CONV_BACKENDS = ("auto", "rfft", "matmul")
_MATMUL_DTYPES = (mx.bfloat16, mx.float16, mx.float32)


class MonarchMixerSequenceMixing(nn.Module):
    """The M2 sequence mixer that replaces attention (reference ``MonarchMixerSequenceMixing``).

    The two long convolutions of a layer (``filter_fn`` on the gated value, ``filter_fn2`` on
    the mixer input) are fused into one FFT over 2D channels. How the FFT is computed is
    ``long_conv_backend`` (see :func:`set_long_conv_backend`); outside training the kernel
    spectra are cached (see :class:`SpectrumCache`, :func:`set_filter_caching`).
    """

    def __init__(self, config: M2BertConfig):
        super().__init__()
        d = config.hidden_size
        self.d_model = d
        self.residual_long_conv = config.residual_long_conv
        self.hyena_training_additions = config.hyena_training_additions
        if config.hyena_training_additions:
            self.layernorm = nn.LayerNorm(d, eps=1e-5)
        self.in_linear = nn.Linear(d, 3 * d)
        self.out_linear = nn.Linear(d, d)
        self.short_filter = ShortFilter(3 * d)
        self.filter_fn = HyenaFilter(config)
        if config.residual_long_conv:
            self.filter_fn2 = HyenaFilter(config)
        # Plain attributes (not arrays): neither parameters nor saved with the weights.
        self.long_conv_backend = "auto"
        self.filter_caching = True
        self._spectra = SpectrumCache()

    def _set_training_mode(self, mode: bool) -> None:
        # Module.train()/eval() call this on every submodule: drop cached spectra on train().
        super()._set_training_mode(mode)
        if mode:
            self._spectra.clear()

    def _filter_arrays(self) -> tuple[mx.array, ...]:
        arrays = [a for _, a in tree_flatten(self.filter_fn.parameters())]
        if self.residual_long_conv:
            arrays += [a for _, a in tree_flatten(self.filter_fn2.parameters())]
        return tuple(arrays)

    def _time_kernel(self, length: int) -> mx.array:
        """(2L, D) or, with the residual convolution, (2L, 2D) float32."""
        kernel = self.filter_fn.conv_kernel(length)
        if self.residual_long_conv:
            kernel = mx.concatenate([kernel, self.filter_fn2.conv_kernel(length)], axis=1)
        return kernel

    def _plan(self, dtype: mx.Dtype, length: int) -> MonarchPlan | None:
        """The matrix-product FFT plan to use, or None for the rfft path."""
        backend = self.long_conv_backend
        if backend not in LONG_CONV_BACKENDS:
            raise ValueError(
                f"long_conv_backend must be one of {LONG_CONV_BACKENDS}, got {backend!r}"
            )
        if backend == "rfft" or dtype not in _MATMUL_DTYPES:
            return None
        if backend == "auto" and dtype == mx.float32:
            return None
        return monarch_plan(length)

    def _kernel_spectrum(self, length: int, plan: MonarchPlan | None, dtype: mx.Dtype) -> mx.array:
        """The long-convolution kernel's spectrum, cached while not training.

        The filters depend only on parameters and the length, so at inference their generation
        and transform are done once per (length, dtype) and reused. During training they are
        always recomputed, so gradients reach the filter parameters.
        """

        def compute() -> mx.array:
            kernel = self._time_kernel(length)
            if plan is None:
                return rfft_kernel_spectrum(kernel)
            return monarch_kernel_spectrum(kernel, plan).astype(dtype)

        if self.training or not self.filter_caching:
            self._spectra.clear()
            return compute()
        # Dtype names, not mx.Dtype objects: those raise on comparison with other types.
        key = (length, plan, "rfft" if plan is None else str(dtype))
        params = self._filter_arrays()
        cached = self._spectra.get(key, params)
        if cached is not None:
            return cached
        value = compute()
        try:
            # Evaluated now, it enters an mx.compile trace as a constant (the parameters are
            # captured constants there), so a compiled forward does not regenerate filters.
            mx.eval(value)
        except ValueError:
            # The parameters are traced inputs of a transformation (e.g. mx.compile with the
            # model state as inputs): the spectrum is part of the traced graph, not cacheable.
            return value
        self._spectra.put(key, params, value)
        return value

    def long_conv(self, z: mx.array) -> mx.array:
        """The (fused) long convolution of ``z`` (B, L, D or 2D), returned in ``z.dtype``."""
        length = z.shape[1]
        plan = self._plan(z.dtype, length)
        spectrum = self._kernel_spectrum(length, plan, z.dtype)
        if plan is None:
            return rfft_long_conv(z, spectrum).astype(z.dtype)
        return monarch_fft_conv(z, spectrum, plan)

    def __call__(self, x: mx.array) -> mx.array:
        d = self.d_model
        u = self.layernorm(x) if self.hyena_training_additions else x
        q = self.short_filter(self.in_linear(u))
        x1, x2, v = q[..., :d], q[..., d : 2 * d], q[..., 2 * d :]
        v = v * x1
        if self.residual_long_conv:
            conv = self.long_conv(mx.concatenate([v, u], axis=-1)).astype(x.dtype)
            y = conv[..., :d] + v * self.filter_fn.bias
            y = y * x2
            y = y + conv[..., d:] + u * self.filter_fn2.bias
        else:
            conv = self.long_conv(v).astype(x.dtype)
            y = (conv + v * self.filter_fn.bias) * x2
        return self.out_linear(y)


def _mixers(model: nn.Module) -> list[MonarchMixerSequenceMixing]:
    mixers = [m for m in model.modules() if isinstance(m, MonarchMixerSequenceMixing)]
    if not mixers:
        raise ValueError(
            f"{type(model).__name__} contains no MonarchMixerSequenceMixing layer; pass an "
            "M2-BERT model (or one of its layers)"
        )
    return mixers


def set_long_conv_backend(model: nn.Module, backend: str) -> None:
    """Choose how every mixer of ``model`` computes its long convolutions.

    ``"auto"`` (default): the matrix-product FFT for bfloat16/float16 activations (tensor
    cores; relative error of the convolution ~5e-3 in bfloat16, the dtype's own precision),
    MLX's float32 rfft for float32 (exact). ``"rfft"``: always the float32 rfft. ``"matmul"``:
    always the matrix-product FFT in the activation dtype; in float32 it matches the rfft to
    ~1e-6 where float32 matmuls are exact (CPU), ~5e-4 where they use TF32 (MLX on CUDA).
    """
    if backend not in LONG_CONV_BACKENDS:
        raise ValueError(f"backend must be one of {LONG_CONV_BACKENDS}, got {backend!r}")
    for mixer in _mixers(model):
        mixer.long_conv_backend = backend
        mixer._spectra.clear()


def set_filter_caching(model: nn.Module, enabled: bool) -> None:
    """Turn the inference-time kernel-spectrum cache of every mixer on (default) or off."""
    for mixer in _mixers(model):
        mixer.filter_caching = bool(enabled)
        mixer._spectra.clear()


def clear_filter_cache(model: nn.Module) -> None:
    """Drop every cached kernel spectrum (needed only after editing filter arrays in place)."""
    for mixer in _mixers(model):
        mixer._spectra.clear()
