"""Train-mode batch normalisation with a hand-written backward pass.

Autodiff of `(x - mean(x)) * rsqrt(var(x) + eps) * scale + bias` keeps three full-size reductions
and several full-size temporaries per layer; the closed-form gradient needs two channel sums and
one elementwise pass, and its sums go through `channel_sums` (a product on CPU).
"""

from __future__ import annotations

import functools

import jax
from jax import lax

from twostream_jax.models.channel_sums import channel_sums


def _moments(x2: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Mean and biased variance (two passes, as torch computes them) of x2 [M, C] over M."""
  n = x2.shape[0]
  mean = channel_sums(x2) / n
  centred = x2 - mean
  return mean, channel_sums(centred * centred) / n


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(x: jax.Array, scale: jax.Array, bias: jax.Array,
                     epsilon: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Normalises x [..., C] float32 with its own batch statistics.

  Returns (y [..., C], mean [C], biased variance [C]); `y = (x - mean) * (scale * rsqrt(var + eps))
  + bias`, torch.nn.BatchNorm2d's train-mode arithmetic.
  """
  return _forward(x, scale, bias, epsilon)[0]


def _forward(x, scale, bias, epsilon):
  x2 = x.reshape(-1, x.shape[-1])
  mean, var = _moments(x2)
  inv = lax.rsqrt(var + epsilon)
  y = (x - mean) * (scale * inv) + bias
  return (y, mean, var), (x, mean, inv, scale)


def _backward(epsilon, residuals, cotangents):
  del epsilon
  x, mean, inv, scale = residuals
  dy, dmean, dvar = cotangents
  n = x.size // x.shape[-1]
  centred = x - mean
  xhat = centred * inv
  dbias = channel_sums(dy.reshape(-1, dy.shape[-1]))
  dscale = channel_sums((dy * xhat).reshape(-1, dy.shape[-1]))
  dx = (scale * inv) * (dy - (dbias + xhat * dscale) / n)
  # The statistics are outputs too (for the running averages); their cotangents are usually zero.
  dx = dx + dmean / n + centred * (2.0 * dvar / n)
  return dx, dscale, dbias


batch_norm_train.defvjp(_forward, _backward)
