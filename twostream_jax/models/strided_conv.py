"""Strided convolutions whose input gradient on CPU is one stride-1 convolution per input phase.

The input gradient of a stride-s convolution is a convolution over the output gradient dilated by
s; XLA's CPU backend runs it on the dilated (mostly zero) array. Split by input position modulo s
(its phase), the same gradient is s*s stride-1 convolutions of the undilated output gradient with
the sub-kernels `w[r::s, q::s]`, about s*s times less work. Other backends, stride 1, dilation and
grouped convolutions keep XLA's gradient. The weight gradient is XLA's except for 1x1 kernels,
whose strided weight gradient XLA also runs dilated; on CPU it is the strided input's product with
the output gradient.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ('NHWC', 'HWIO', 'NHWC')


def _conv(x, w, strides, pads, precision):
  return lax.conv_general_dilated(x, w, strides, pads, dimension_numbers=_NHWC, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _strided_conv(x, w, strides, pads, precision):
  return _conv(x, w, strides, pads, precision)


def _forward(x, w, strides, pads, precision):
  return _conv(x, w, strides, pads, precision), (x, w)


def _phase_input_gradient(x_shape: Sequence[int], w: jax.Array, g: jax.Array,
                          strides: tuple[int, int], pads: tuple[tuple[int, int], ...],
                          precision: Any) -> jax.Array:
  """d(loss)/dx [B, H, W, Cin] from g [B, Ho, Wo, Cout] and w [kh, kw, Cin, Cout]."""
  batch, h, wd, cin = x_shape
  (sh, sw), ((pt, _), (pl, _)) = strides, pads
  ho, wo = g.shape[1:3]
  # Phase (r, q) holds padded-input cells (r + sh * a, q + sw * b), a < rows, b < cols.
  rows, cols = -(-(h + pt) // sh), -(-(wd + pl) // sw)
  phases = []
  for r in range(sh):
    for q in range(sw):
      sub = w[r::sh, q::sw]
      mh, mw = sub.shape[:2]
      if mh == 0 or mw == 0:
        phases.append(jnp.zeros((batch, rows, cols, cin), g.dtype))
        continue
      # Cell a gets sum_m g[a - m] w[r + sh * m]: a full correlation with the flipped sub-kernel.
      flipped = jnp.swapaxes(sub[::-1, ::-1], 2, 3)
      phases.append(_conv(g, flipped, (1, 1), ((mh - 1, rows - ho), (mw - 1, cols - wo)),
                          precision))
  stacked = jnp.stack(phases, axis=0).reshape(sh, sw, batch, rows, cols, cin)
  grid = stacked.transpose(2, 3, 0, 4, 1, 5).reshape(batch, rows * sh, cols * sw, cin)
  return grid[:, pt:pt + h, pl:pl + wd, :]


def _pointwise_weight_gradient(x: jax.Array, g: jax.Array, strides: tuple[int, int],
                               pads: tuple[tuple[int, int], ...], precision: Any) -> jax.Array:
  """d(loss)/dw [1, 1, Cin, Cout] of a 1x1 convolution: the strided input's product with g."""
  (sh, sw), ((pt, pb), (pl, pr)) = strides, pads
  ho, wo = g.shape[1:3]
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  taps = lax.slice(xp, (0, 0, 0, 0), (xp.shape[0], sh * (ho - 1) + 1, sw * (wo - 1) + 1,
                                      xp.shape[3]), (1, sh, sw, 1))
  dw = jnp.einsum('bhwi,bhwo->io', taps, g, precision=precision)
  return dw[None, None]


def _backward(strides, pads, precision, residuals, g):
  x, w = residuals

  def dw_by_xla(x, g):
    return jax.vjp(lambda v: _conv(x, v, strides, pads, precision), w)[1](g)[0]

  if w.shape[:2] == (1, 1):
    dw = lax.platform_dependent(
        x, g, cpu=lambda x, g: _pointwise_weight_gradient(x, g, strides, pads, precision),
        default=dw_by_xla)
  else:
    dw = dw_by_xla(x, g)

  def by_phases(w, g):
    return _phase_input_gradient(x.shape, w, g, strides, pads, precision)

  def by_xla(w, g):
    return jax.vjp(lambda v: _conv(v, w, strides, pads, precision), x)[1](g)[0]

  return lax.platform_dependent(w, g, cpu=by_phases, default=by_xla), dw


_strided_conv.defvjp(_forward, _backward)


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                         padding: Any, lhs_dilation: Sequence[int] | None = None,
                         rhs_dilation: Sequence[int] | None = None,
                         dimension_numbers: Any = None, feature_group_count: int = 1,
                         precision: Any = None, **kwargs: Any) -> jax.Array:
  """`lax.conv_general_dilated` for flax's `nn.Conv(conv_general_dilated=...)`.

  A 2-D NHWC/HWIO convolution (lhs [B, H, W, Cin], rhs [kh, kw, Cin, Cout]) with a stride above
  1, explicit padding, no dilation and no groups goes through the phase-split input gradient;
  anything else is passed to lax unchanged.
  """
  phase_split = (
      lhs.ndim == 4 and len(window_strides) == 2 and max(window_strides) > 1
      and not isinstance(padding, str) and feature_group_count == 1 and not kwargs
      and all(d == 1 for d in (*(lhs_dilation or ()), *(rhs_dilation or ())))
      and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
      == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC))
  if phase_split:
    pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    return _strided_conv(lhs, rhs, tuple(int(s) for s in window_strides), pads, precision)
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                  rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                  feature_group_count=feature_group_count, precision=precision,
                                  **kwargs)
