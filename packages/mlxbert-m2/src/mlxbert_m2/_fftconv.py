"""FFT long convolution as dense matrix products ("four-step" / Monarch FFT).

MLX's FFT runs in float32/complex64 only. For bfloat16 and float16 activations this module
computes the same length-2L circular convolution with batched *real* matrix products, which run
on tensor cores in the activation dtype (the approach of FlashFFTConv).

Factor ``N = 2L = N1 * N2`` with ``N2`` dividing ``L``; write a time index ``n = n1*N2 + n2`` and
a frequency index ``k = k1 + N1*k2``. Then

    X[k1, k2] = sum_n2 W_N2^(n2 k2) * W_N^(n2 k1) * sum_n1 x[n1, n2] W_N1^(n1 k1)

so a DFT is a size-N1 DFT over ``n1`` (one matmul on the (B, L, C) layout as it comes, no
transpose), a twiddle ``W_N^(n2 k1)`` and a size-N2 DFT over ``n2`` (one batched matmul per
``k1``; the twiddle is folded into its matrices). The structure used:

* the input is zero-padded from L to 2L, i.e. ``x[n1, :] = 0`` for ``n1 >= N1/2``: the first
  matrix only has N1/2 columns, and the last one only produces the kept outputs ``n1 < N1/2``;
* the input, the kernel and the output are real, so every intermediate is Hermitian in ``k1``:
  only ``k1 = 0..N1/2`` (``K1 = N1/2 + 1`` rows) are computed, halving the work;
* complex numbers are (real, imag) pairs stacked on the axis the next matmul contracts, so
  every step is one real matmul; the pointwise product with the kernel spectrum is one fused
  elementwise expression.

Per channel and output element that is about ``4L/N2 + 8*N2`` multiply-adds (768 at L=4096),
four matmuls and one elementwise pass, all differentiable (plain matmuls and slices), so
gradients reach the input and, through the kernel spectrum, the filter parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import mlx.core as mx
import numpy as np

#: Largest N1 or N2 accepted: beyond it the dense DFT matrices get large and a length with no
#: convenient divisor (a large prime) is better served by the FFT.
MAX_FACTOR = 1024


@dataclass(frozen=True)
class MonarchPlan:
    """Factorisation of the length-2L transform: ``2 * length == n1 * n2``, ``n2 | length``."""

    length: int
    n1: int
    n2: int

    @property
    def k1(self) -> int:
        """Rows kept of the first DFT (Hermitian half plus the Nyquist row)."""
        return self.n1 // 2 + 1

    @property
    def spectrum_shape(self) -> tuple[int, int]:
        """Leading shape of a kernel spectrum, (K1, 2*N2); channels follow."""
        return (self.k1, 2 * self.n2)


@lru_cache(maxsize=64)
def monarch_plan(length: int) -> MonarchPlan | None:
    """The cheapest factorisation of ``2 * length``, or None when none is reasonable.

    Cost per element ``4L/N2 + 8*N2`` (first/last DFT over half the rows, middle DFTs over
    (real, imag) pairs); ties go to the larger N2, which gives squarer, tensor-core-friendlier
    middle matrices.
    """
    if length < 1:
        raise ValueError(f"length must be positive, got {length}")
    best: tuple[float, int] | None = None
    for n2 in range(1, length + 1):
        if length % n2:
            continue
        n1 = 2 * length // n2
        if n1 > MAX_FACTOR or n2 > MAX_FACTOR:
            continue
        cost = 4 * length / n2 + 8 * n2
        if best is None or cost <= best[0]:
            best = (cost, n2)
    if best is None:
        return None
    return MonarchPlan(length, 2 * length // best[1], best[1])


def _complex_block(c: np.ndarray) -> np.ndarray:
    """(..., R, S) complex -> (..., 2R, 2S) real acting on stacked [re; im] vectors."""
    top = np.concatenate([c.real, -c.imag], axis=-1)
    bottom = np.concatenate([c.imag, c.real], axis=-1)
    return np.concatenate([top, bottom], axis=-2)


def _first_dft(plan: MonarchPlan, n_in: int) -> np.ndarray:
    """(2*K1, n_in): rows (k1, re/im) interleaved, the DFT over n1 of a real input."""
    k1 = np.arange(plan.k1)[:, None]
    n1 = np.arange(n_in)[None, :]
    w = np.exp(-2j * np.pi * k1 * n1 / plan.n1)
    return np.stack([w.real, w.imag], axis=1).reshape(2 * plan.k1, n_in)


def _middle_dft(plan: MonarchPlan, inverse: bool) -> np.ndarray:
    """(K1, 2*N2, 2*N2): per k1, the twiddled size-N2 DFT on stacked [re; im] vectors.

    Forward maps ``n2 -> k2`` with ``W_N2^(n2 k2) W_N^(n2 k1)`` (twiddle before the DFT);
    inverse maps ``k2 -> n2`` with the conjugates (twiddle after).
    """
    k1 = np.arange(plan.k1)[:, None, None]
    a = np.arange(plan.n2)[None, :, None]  # output index
    b = np.arange(plan.n2)[None, None, :]  # input index
    if inverse:  # out n2 = a, in k2 = b
        phase = a * b / plan.n2 + a * k1 / (plan.n1 * plan.n2)
        c = np.exp(2j * np.pi * phase)
    else:  # out k2 = a, in n2 = b
        phase = a * b / plan.n2 + b * k1 / (plan.n1 * plan.n2)
        c = np.exp(-2j * np.pi * phase)
    return _complex_block(c)


def _last_idft(plan: MonarchPlan) -> np.ndarray:
    """(N1/2, 2*K1): real part of the inverse DFT over k1 for the kept outputs n1 < N1/2.

    The spectrum is Hermitian in k1, so ``x[n1] = sum_k1 c_k1 Re(V[k1] e^{2 pi i n1 k1 / N1})``
    with ``c = 1`` for k1 = 0 and N1/2 and 2 otherwise.
    """
    n1 = np.arange(plan.n1 // 2)[:, None]
    k1 = np.arange(plan.k1)[None, :]
    weight = np.where((k1 == 0) | (2 * k1 == plan.n1), 1.0, 2.0)
    theta = 2 * np.pi * n1 * k1 / plan.n1
    cols = np.stack([weight * np.cos(theta), -weight * np.sin(theta)], axis=-1)
    return cols.reshape(plan.n1 // 2, 2 * plan.k1)


@dataclass(frozen=True)
class _Matrices:
    first: mx.array  # (2*K1, N1/2)
    middle: mx.array  # (K1, 2*N2, 2*N2)
    middle_inv: mx.array  # (K1, 2*N2, 2*N2)
    last: mx.array  # (N1/2, 2*K1)


@lru_cache(maxsize=32)
def _conv_matrices(plan: MonarchPlan, dtype: mx.Dtype) -> _Matrices:
    """The four matrices of the input/output transforms, built in float64 and cast once.

    Scaled by 1/sqrt(N1) (first, last) and 1/sqrt(N2) (middle ones) so that every intermediate
    keeps the input's magnitude (no float16 overflow); together they give the inverse DFT's 1/N.
    """
    s1, s2 = 1 / math.sqrt(plan.n1), 1 / math.sqrt(plan.n2)
    arrays = (
        _first_dft(plan, plan.n1 // 2) * s1,
        _middle_dft(plan, inverse=False) * s2,
        _middle_dft(plan, inverse=True) * s2,
        _last_idft(plan) * s1,
    )
    out = _Matrices(*(mx.array(a.astype(np.float32)).astype(dtype) for a in arrays))
    mx.eval(out.first, out.middle, out.middle_inv, out.last)
    return out


@lru_cache(maxsize=32)
def _kernel_matrices(plan: MonarchPlan) -> tuple[mx.array, mx.array]:
    """Unscaled float32 forward matrices over the full length 2L (the kernel is not padded)."""
    first = mx.array(_first_dft(plan, plan.n1).astype(np.float32))
    middle = mx.array(_middle_dft(plan, inverse=False).astype(np.float32))
    mx.eval(first, middle)
    return first, middle


def monarch_kernel_spectrum(kernel: mx.array, plan: MonarchPlan) -> mx.array:
    """Spectrum of a (2L, C) real kernel in the transform's layout: (K1, 2*N2, C) float32.

    Row ``(k1, part*N2 + k2)`` holds the real (part 0) or imaginary (part 1) part of
    ``rfft``-style frequency ``k1 + N1*k2``. Computed in float32 (the caller casts).
    """
    n, c = kernel.shape
    if n != plan.n1 * plan.n2:
        raise ValueError(f"kernel length {n} does not match the plan's 2L = {plan.n1 * plan.n2}")
    first, middle = _kernel_matrices(plan)
    y = first @ kernel.astype(mx.float32).reshape(plan.n1, plan.n2 * c)  # (2K1, N2*C)
    return middle @ y.reshape(plan.k1, 2 * plan.n2, c)


def monarch_fft_conv(u: mx.array, spectrum: mx.array, plan: MonarchPlan) -> mx.array:
    """Circular convolution of ``u`` (B, L, C) zero-padded to 2L with a kernel given by its
    :func:`monarch_kernel_spectrum`; returns the first L outputs, (B, L, C) in ``u``'s dtype.

    All products run in ``u.dtype`` (``spectrum`` is cast to it), accumulating in float32 on
    GPU tensor cores.
    """
    b, length, c = u.shape
    if length != plan.length:
        raise ValueError(f"input length {length} does not match the plan's {plan.length}")
    if spectrum.shape != (*plan.spectrum_shape, c):
        raise ValueError(
            f"kernel spectrum shape {tuple(spectrum.shape)} != {(*plan.spectrum_shape, c)}"
        )
    dtype = u.dtype
    mats = _conv_matrices(plan, dtype)
    k1, n2, half = plan.k1, plan.n2, plan.n1 // 2
    y = mats.first @ u.reshape(b, half, n2 * c)  # (B, 2K1, N2*C): DFT over n1
    z = mats.middle @ y.reshape(b, k1, 2 * n2, c)  # (B, K1, 2N2, C): twiddle + DFT over n2
    # Complex product with the kernel spectrum on the (re, im) axis, in one fused expression:
    # [re; im] * [Kr; Kr] + [im; re] * [-Ki; Ki].
    z = z.reshape(b, k1, 2, n2, c)
    s = spectrum.astype(dtype).reshape(k1, 2, n2, c)
    sign = mx.array([-1.0, 1.0], dtype=dtype).reshape(2, 1, 1)
    h = z * s[:, :1] + z[:, :, ::-1] * (s[:, 1:] * sign)
    w = mats.middle_inv @ h.reshape(b, k1, 2 * n2, c)  # inverse DFT over k2, conj twiddle
    out = mats.last @ w.reshape(b, 2 * k1, n2 * c)  # real inverse DFT over k1, kept n1 only
    return out.reshape(b, length, c)
