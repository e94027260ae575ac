"""2-D max pooling whose gradient on CPU is a handful of elementwise passes.

XLA differentiates max pooling into a select-and-scatter, which its CPU backend expands into
index arrays the size of the padded input and a scatter, several times the cost of the pooling
itself. On CPU the gradient here instead finds each window's first maximal tap (row-major, the
tie rule of torch and of XLA's select-and-scatter) by comparing the strided taps with the output,
and writes every input phase (position modulo the stride) as a sum of shifted, masked output
gradients. Other backends keep XLA's gradient.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

Pads = tuple[tuple[int, int], tuple[int, int]]


def _pool(x: jax.Array, window: tuple[int, int], strides: tuple[int, int], pads: Pads) -> jax.Array:
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, *window, 1), (1, *strides, 1),
                           ((0, 0), *pads, (0, 0)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool(x, window, strides, pads):
  return _pool(x, window, strides, pads)


def _forward(x, window, strides, pads):
  y = _pool(x, window, strides, pads)
  return y, (x, y)


def _phase_gradient(x: jax.Array, y: jax.Array, g: jax.Array, window: tuple[int, int],
                    strides: tuple[int, int], pads: Pads) -> jax.Array:
  """d(loss)/dx [B, H, W, C] from the pooled y and its cotangent g, both [B, Ho, Wo, C]."""
  (kh, kw), (sh, sw), ((pt, _), (pl, _)) = window, strides, pads
  _, h, w, _ = x.shape
  ho, wo = y.shape[1:3]
  # Rows/columns of the padded input, rounded up to whole strides, so taps and phases fit.
  rows = max(-(-(h + pt) // sh), ho + (kh - 1) // sh) * sh
  cols = max(-(-(w + pl) // sw), wo + (kw - 1) // sw) * sw
  xp = jnp.pad(x, ((0, 0), (pt, rows - h - pt), (pl, cols - w - pl), (0, 0)),
               constant_values=-jnp.inf)
  taps = [(i, j) for i in range(kh) for j in range(kw)]
  first = jnp.full(y.shape, len(taps), jnp.int32)
  for k in reversed(range(len(taps))):  # Reversed, so that the first maximal tap wins.
    i, j = taps[k]
    tap = lax.slice(xp, (0, i, j, 0), (xp.shape[0], i + sh * (ho - 1) + 1,
                                       j + sw * (wo - 1) + 1, xp.shape[3]), (1, sh, sw, 1))
    first = jnp.where(tap == y, k, first)
  phase_rows, phase_cols = rows // sh, cols // sw
  phases = []
  for r in range(sh):
    for q in range(sw):
      acc = jnp.zeros((g.shape[0], phase_rows, phase_cols, g.shape[3]), g.dtype)
      for k, (i, j) in enumerate(taps):
        if i % sh != r or j % sw != q:
          continue
        m, n = i // sh, j // sw  # Tap (i, j) of output (a - m, b - n) lands on phase cell (a, b).
        masked = jnp.where(first == k, g, 0)
        acc = acc + jnp.pad(masked, ((0, 0), (m, phase_rows - ho - m),
                                     (n, phase_cols - wo - n), (0, 0)))
      phases.append(acc)
  stacked = jnp.stack(phases, axis=0).reshape(sh, sw, *phases[0].shape)
  # [sh, sw, B, R, Q, C] -> [B, R, sh, Q, sw, C] -> padded input [B, rows, cols, C].
  grid = stacked.transpose(2, 3, 0, 4, 1, 5).reshape(g.shape[0], rows, cols, g.shape[3])
  return grid[:, pt:pt + h, pl:pl + w, :]


def _backward(window, strides, pads, residuals, g):
  x, y = residuals

  def by_phases(x, y, g):
    return _phase_gradient(x, y, g, window, strides, pads)

  def by_xla(x, y, g):
    del y
    return jax.vjp(lambda v: _pool(v, window, strides, pads), x)[1](g)[0]

  return (lax.platform_dependent(x, y, g, cpu=by_phases, default=by_xla),)


_max_pool.defvjp(_forward, _backward)


def max_pool(x: jax.Array, window: Sequence[int], strides: Sequence[int],
             padding: Sequence[Sequence[int]] = ((0, 0), (0, 0))) -> jax.Array:
  """Max pooling of x [B, H, W, C] with -inf padding (flax's nn.max_pool); returns [B, Ho, Wo, C].

  Args:
    x: [B, H, W, C].
    window: (kh, kw).
    strides: (sh, sw).
    padding: ((top, bottom), (left, right)), filled with -inf.
  """
  pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  return _max_pool(x, tuple(int(k) for k in window), tuple(int(s) for s in strides), pads)
