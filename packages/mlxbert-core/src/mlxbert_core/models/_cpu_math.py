"""GELU, SiLU and softmax for MLX's CPU backend: compiled, fused, with closed-form gradients;
and layer and RMS norms for inference.

MLX runs elementwise math on the CPU either through its precompiled kernels (scalar ``exp``
and ``erf``, several times slower than PyTorch's vectorised ones) or, inside ``mx.compile``,
through C++ kernels it builds at run time. Every function here is a compiled, fused
expression, in one of two forms:

* ``native``: MLX's own ``exp``/``erf``. Used when mlxbert has MLX's kernel builds vectorised
  (``mlxbert_core.runtime.cpu_jit_vectorized()``, the default on Linux x86-64), where they are
  the fastest form: a GELU 3x, a softmax 1.6x faster than the polynomial form.
* ``poly``: ``exp``/``erf`` written as polynomials of plain arithmetic, which the compiler
  vectorises even without those flags (MLX's scalar ``exp`` then needs a library call for
  every ``fma`` and ``floor``).

Letting autodiff differentiate these expressions op by op (a polynomial, a rational function,
bit tricks) would cost several times their forward pass, so each is an ``mx.custom_function``
whose gradient is one more fused kernel of the exact derivative. Both forms agree with the
float64 functions to float32 precision (see the tests).

MLX's CPU reduction over a row is scalar code, which makes its layer norm (two means per
row) cost several passes over the activations. :func:`layer_norm` and :func:`rms_norm` take
the means as matrix-vector products with a column of ``1/n`` (OpenBLAS), and the
normalisation as one fused kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import mlx.core as mx

from mlxbert_core import runtime

# Odd numerator / even denominator of a rational approximation of erf on [-4, 4] (the
# single-precision form used by Eigen and XLA); |error| <= 4.3e-7 against float64 erf.
_ERF_P = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_ERF_Q = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)
# exp(x) = 2^n * 2^f with n = round(x·log2 e), |f| <= 1/2, 2^f from its degree-7 Taylor
# polynomial (relative error < 1e-8) and 2^n built from the exponent bits.
_EXP2_TAYLOR = tuple(math.log(2) ** k / math.factorial(k) for k in range(7, -1, -1))
_SQRT_HALF = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327


def erf_rational(z: mx.array) -> mx.array:
    """erf(z) for float32 z (clipped to [-4, 4], where erf is 1 to float32 precision)."""
    z = mx.clip(z, -4.0, 4.0)
    z2 = z * z
    p = mx.array(_ERF_P[0], mx.float32)
    for c in _ERF_P[1:]:
        p = p * z2 + c
    q = mx.array(_ERF_Q[0], mx.float32)
    for c in _ERF_Q[1:]:
        q = q * z2 + c
    return z * p / q


def exp_nonpositive(x: mx.array) -> mx.array:
    """exp(x) for float32 x <= 0; inputs below 2^-126 flush to exactly 0, as masked scores
    must."""
    t = mx.maximum(x * 1.4426950408889634, -127.0)
    n = mx.round(t)
    f = t - n
    p = mx.array(_EXP2_TAYLOR[0], mx.float32)
    for c in _EXP2_TAYLOR[1:]:
        p = p * f + c
    # 2^n from its exponent bits; a bit cast has no gradient and needs none (n is constant
    # almost everywhere), so it is cut from the graph.
    return p * mx.stop_gradient(mx.view((n.astype(mx.int32) + 127) << 23, mx.float32))


#: The closed-form gradient kernels, by forward function; looked up at each backward pass (so
#: that the tests can check they are the ones used).
BACKWARD: dict[str, Callable] = {}


def _with_vjp(key: str, forward, backward, vjp):
    """``forward`` as an ``mx.custom_function`` whose VJP is ``vjp(BACKWARD[key], ...)``."""
    BACKWARD[key] = backward
    fn = mx.custom_function(forward)
    fn.vjp(lambda primals, cotangent, output: vjp(BACKWARD[key], primals, cotangent, output))
    return fn


class _Math(NamedTuple):
    exp: Callable[[mx.array], mx.array]  # called on x <= 0 only
    erf: Callable[[mx.array], mx.array]


FORMS: dict[str, _Math] = {
    "native": _Math(exp=mx.exp, erf=mx.erf),
    "poly": _Math(exp=exp_nonpositive, erf=erf_rational),
}


def _gelu(form: str, m: _Math):
    # Not shapeless: MLX's shapeless CPU kernels are several times slower, and new shapes
    # reuse the compiled kernel cheaply.
    @mx.compile
    def forward(x):
        x32 = x.astype(mx.float32)
        return (0.5 * x32 * (1.0 + m.erf(x32 * _SQRT_HALF))).astype(x.dtype)

    @mx.compile
    def backward(x, cotangent):
        # d/dx [x Phi(x)] = Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
        x32 = x.astype(mx.float32)
        cdf = 0.5 * (1.0 + m.erf(x32 * _SQRT_HALF))
        pdf = m.exp(-0.5 * x32 * x32) * _INV_SQRT_2PI
        return (cotangent.astype(mx.float32) * (cdf + x32 * pdf)).astype(x.dtype)

    return _with_vjp(
        f"gelu/{form}", forward, backward, lambda b, primals, cotangent, _: b(primals, cotangent)
    )


def _sigmoid(m: _Math, x32: mx.array) -> mx.array:
    e = m.exp(-mx.abs(x32))  # sigmoid from exp(-|x|): no overflow
    return mx.where(x32 >= 0, 1.0, e) / (1.0 + e)


def _silu(form: str, m: _Math):
    @mx.compile
    def forward(x):
        x32 = x.astype(mx.float32)
        return (x32 * _sigmoid(m, x32)).astype(x.dtype)

    @mx.compile
    def backward(x, cotangent):
        # d/dx [x s(x)] = s(x) (1 + x (1 - s(x))).
        x32 = x.astype(mx.float32)
        s = _sigmoid(m, x32)
        grad = s * (1.0 + x32 * (1.0 - s))
        return (cotangent.astype(mx.float32) * grad).astype(x.dtype)

    return _with_vjp(
        f"silu/{form}", forward, backward, lambda b, primals, cotangent, _: b(primals, cotangent)
    )


def _softmax(form: str, m: _Math, axis: int):
    """Softmax over ``axis`` (-1, or -2 for scores laid out [..., keys, queries]), in
    float32; ``mask`` False entries set to the float32 minimum first, as eager attention
    does."""

    def normalise(x, scores):
        e = m.exp(x - mx.max(x, axis=axis, keepdims=True))
        return (e * (1.0 / mx.sum(e, axis=axis, keepdims=True))).astype(scores.dtype)

    @mx.compile
    def plain(scores):
        return normalise(scores.astype(mx.float32), scores)

    @mx.compile
    def masked(scores, mask):
        x = mx.where(mask, scores.astype(mx.float32), mx.finfo(mx.float32).min)
        return normalise(x, scores)

    @mx.compile
    def backward(probs, cotangent):
        # d softmax: p * (g - sum(g * p)). Masked entries have p == 0 and so get gradient 0.
        p = probs.astype(mx.float32)
        g = cotangent.astype(mx.float32)
        return (p * (g - mx.sum(g * p, axis=axis, keepdims=True))).astype(probs.dtype)

    plain_fn = _with_vjp(
        f"softmax{axis}/{form}", plain, backward, lambda b, _, cotangent, out: b(out, cotangent)
    )
    # The boolean mask gets a zero cotangent: it is not differentiable.
    masked_fn = _with_vjp(
        f"masked_softmax{axis}/{form}",
        masked,
        backward,
        lambda b, primals, cotangent, out: (b(out, cotangent), mx.zeros_like(primals[1])),
    )
    return plain_fn, masked_fn


_GELU = {form: _gelu(form, m) for form, m in FORMS.items()}
_SILU = {form: _silu(form, m) for form, m in FORMS.items()}
_SOFTMAX = {(form, axis): _softmax(form, m, axis) for form, m in FORMS.items() for axis in (-1, -2)}


def default_form() -> str:
    return "native" if runtime.cpu_jit_vectorized() else "poly"


def gelu(x: mx.array, form: str | None = None) -> mx.array:
    """GELU, exact erf form."""
    return _GELU[form or default_form()](x)


def silu(x: mx.array, form: str | None = None) -> mx.array:
    """SiLU, x * sigmoid(x)."""
    return _SILU[form or default_form()](x)


def softmax(
    scores: mx.array, mask: mx.array | None, *, axis: int = -1, form: str | None = None
) -> mx.array:
    """Masked softmax over ``axis`` (-1 or -2), float32 inside, result in the input dtype."""
    plain, masked = _SOFTMAX[(form or default_form(), axis)]
    return plain(scores) if mask is None else masked(scores, mask)


def _normalize(affine: tuple[bool, bool]):
    weighted, biased = affine

    def normalize(centered, variance, eps, weight, bias):
        out = centered * mx.rsqrt(variance + eps)
        out = out * weight if weighted else out
        return out + bias if biased else out

    return mx.compile(normalize, shapeless=True)


_NORMALIZE = {(w, b): _normalize((w, b)) for w in (False, True) for b in (False, True)}


def layer_norm(x: mx.array, weight: mx.array | None, bias: mx.array | None, eps: float) -> mx.array:
    """Layer norm over the last axis of float32 ``x`` (inference: no custom gradient)."""
    n = x.shape[-1]
    average = mx.full((n, 1), 1.0 / n, dtype=x.dtype)
    centered = x - x @ average
    variance = (centered * centered) @ average
    fn = _NORMALIZE[(weight is not None, bias is not None)]
    return fn(centered, variance, mx.array(eps, x.dtype), weight, bias)


def rms_norm(x: mx.array, weight: mx.array, eps: float) -> mx.array:
    """RMS norm over the last axis of float32 ``x`` (inference: no custom gradient)."""
    n = x.shape[-1]
    average = mx.full((n, 1), 1.0 / n, dtype=x.dtype)
    mean_square = (x * x) @ average
    return _NORMALIZE[(True, False)](x, mean_square, mx.array(eps, x.dtype), weight, None)
