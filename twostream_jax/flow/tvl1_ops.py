"""Building blocks of TV-L1 optical flow, written to reproduce OpenCV's DualTVL1 numerics.

Each function mirrors the OpenCV routine that ``cv::optflow::DualTVL1OpticalFlow`` calls
(``modules/optflow/src/tvl1flow.cpp``): ``cv::resize(INTER_LINEAR)`` for the pyramid and flow
upscaling, ``cv::remap(INTER_CUBIC, BORDER_CONSTANT)`` for warping, ``cv::medianBlur(5)`` on float
images, and the file's own centred / forward gradients and divergence with their border rules.
The rules were checked against cv2 5.0 (see tests/test_tvl1_ops.py); where OpenCV's arithmetic order
matters for float32 rounding we follow it, elsewhere agreement is to about one ulp.

Images are float32 ``[..., H, W]`` (leading dimensions broadcast) unless a docstring says otherwise.
JAX only: no cv2 or TensorFlow import here.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

# OpenCV's bicubic kernel parameter (interpolateCubic in imgproc).
_CUBIC_A = -0.75
# estimateV only divides by |grad I1|^2 above single-precision epsilon.
_FLT_EPSILON = float(np.finfo(np.float32).eps)


def pyramid_shapes(height: int, width: int, num_scales: int, scale_step: float,
                   min_size: int = 16) -> list[tuple[int, int]]:
  """Image sizes of OpenCV's TV-L1 pyramid, finest first.

  Each level is ``cv::resize(prev, Size(), scale_step, scale_step)`` of the previous one, whose
  size is ``cvRound(prev * scale_step)`` (round half to even, like Python's ``round``). OpenCV
  stops adding levels as soon as one would be narrower or shorter than 16 pixels.

  Args:
    height: H of the full-resolution frames.
    width: W of the full-resolution frames.
    num_scales: the most levels to build (>= 1).
    scale_step: size ratio between consecutive levels, in (0, 1).
    min_size: smallest allowed side (OpenCV: 16).

  Returns:
    ``[(H0, W0), (H1, W1), ...]`` with ``(H0, W0) == (height, width)``.
  """
  shapes = [(height, width)]
  for _ in range(1, num_scales):
    prev_h, prev_w = shapes[-1]
    h, w = round(prev_h * scale_step), round(prev_w * scale_step)
    if h < min_size or w < min_size:
      break
    shapes.append((h, w))
  return shapes


def _linear_taps(out_size: int, in_size: int, src_per_dst: float):
  """Source indices and float32 weights of OpenCV's INTER_LINEAR along one axis.

  OpenCV maps destination pixel d to source coordinate ``(d + 0.5) * src_per_dst - 0.5`` (in
  double; cv2 5.0 no longer rounds it to float first) and clamps at the edges by collapsing to
  the edge pixel with weight 1.
  """
  coord = (np.arange(out_size, dtype=np.float64) + 0.5) * src_per_dst - 0.5
  left = np.floor(coord).astype(np.int64)
  frac = coord - left
  below = left < 0
  frac[below], left[below] = 0.0, 0
  above = left >= in_size - 1
  frac[above], left[above] = 0.0, in_size - 1
  right = np.minimum(left + 1, in_size - 1)
  frac32 = frac.astype(np.float32)
  return left, right, np.float32(1.0) - frac32, frac32


def resize_linear(x: jax.Array, out_hw: tuple[int, int],
                  src_per_dst: Optional[tuple[float, float]] = None) -> jax.Array:
  """Bilinear resize matching ``cv2.resize(..., interpolation=cv2.INTER_LINEAR)`` on float32.

  Args:
    x: images ``[..., H, W]``.
    out_hw: output size ``(H_out, W_out)``.
    src_per_dst: source pixels per destination pixel along (y, x). OpenCV uses ``1 / fx`` when
      called with scale factors (``dsize=Size()``, the pyramid) and ``H / H_out`` when called with
      a destination size (flow upscaling, the default here).

  Returns:
    ``[..., H_out, W_out]`` float32.
  """
  in_h, in_w = x.shape[-2:]
  out_h, out_w = out_hw
  if src_per_dst is None:
    src_per_dst = (in_h / out_h, in_w / out_w)
  x0, x1, ax0, ax1 = _linear_taps(out_w, in_w, src_per_dst[1])
  y0, y1, ay0, ay1 = _linear_taps(out_h, in_h, src_per_dst[0])
  # Horizontal pass first, then vertical, as OpenCV's separable resize does.
  rows = jnp.take(x, x0, axis=-1) * ax0 + jnp.take(x, x1, axis=-1) * ax1
  return (jnp.take(rows, y0, axis=-2) * ay0[:, None]
          + jnp.take(rows, y1, axis=-2) * ay1[:, None])


def _pad_edge(x: jax.Array, pad_y: int, pad_x: int) -> jax.Array:
  """Replicates the border of ``[..., H, W]`` by pad_y rows and pad_x columns on each side."""
  widths = [(0, 0)] * (x.ndim - 2) + [(pad_y, pad_y), (pad_x, pad_x)]
  return jnp.pad(x, widths, mode='edge')


def _pad_hw(x: jax.Array, top: int, bottom: int, left: int, right: int) -> jax.Array:
  """Zero-pads the last two axes of ``[..., H, W]``."""
  return jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)])


def centered_gradient(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """OpenCV TV-L1's ``centeredGradient``: half central differences, half one-sided at borders.

  Args:
    x: images ``[..., H, W]``.

  Returns:
    ``(dx, dy)``, each ``[..., H, W]``; e.g. ``dx[:, 0] = 0.5 * (x[:, 1] - x[:, 0])``.
  """
  # With a replicated border the one-sided border rule is the central formula.
  px = _pad_edge(x, 0, 1)
  py = _pad_edge(x, 1, 0)
  dx = 0.5 * (px[..., :, 2:] - px[..., :, :-2])
  dy = 0.5 * (py[..., 2:, :] - py[..., :-2, :])
  return dx, dy


def forward_gradient(u: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Forward differences with zero in the last column (dx) / last row (dy).

  Args:
    u: ``[..., H, W]``.

  Returns:
    ``(ux, uy)``, each ``[..., H, W]``.
  """
  ux = _pad_hw(u[..., :, 1:] - u[..., :, :-1], 0, 0, 0, 1)
  uy = _pad_hw(u[..., 1:, :] - u[..., :-1, :], 0, 1, 0, 0)
  return ux, uy


def divergence(v1: jax.Array, v2: jax.Array) -> jax.Array:
  """Backward-difference divergence of the field (v1, v2), the adjoint used by OpenCV's TV-L1.

  ``div[y, x] = (v1[y, x] - v1[y, x-1]) + (v2[y, x] - v2[y-1, x])`` with the out-of-image
  neighbours taken as zero (first row and column).

  Args:
    v1: x component ``[..., H, W]``.
    v2: y component ``[..., H, W]``.

  Returns:
    ``[..., H, W]``.
  """
  return ((v1 - _pad_hw(v1[..., :, :-1], 0, 0, 1, 0))
          + (v2 - _pad_hw(v2[..., :-1, :], 1, 0, 0, 0)))


def primal_dual_step(u: jax.Array, p: jax.Array, i1w_grad: jax.Array, grad: jax.Array,
                     rho_c: jax.Array, *, l_t: float, theta: float,
                     taut: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One inner iteration of OpenCV's TV-L1, in its order of operations.

  estimateV (pointwise thresholding of the linearised data term), divergence of the duals,
  estimateU (and the squared update that drives early stopping), forwardGradient of the new
  flow, estimateDualVariables. Both flow components are processed as one stacked array, which
  lets XLA fuse the step into about a dozen loops over the image instead of twenty.

  Args:
    u: flow ``[..., 2, H, W]`` (x, y), OpenCV's (u1, u2).
    p: dual variables ``[..., 2, 2, H, W]``: ``p[..., c, d]`` is the d-th (x or y) part of the
      dual of flow component c, OpenCV's (p11, p12; p21, p22).
    i1w_grad: gradient of the warped second frame ``[..., 2, H, W]`` (x, y).
    grad: its squared norm ``[..., H, W]``.
    rho_c: constant part of the linearised residual ``[..., H, W]``,
      ``I1w - I1wx u1_0 - I1wy u2_0 - I0``.
    l_t: lambda * theta.
    theta: coupling weight.
    taut: tau / theta.

  Returns:
    ``(u, p, error)``: the updated flow and duals, and the sum of squared flow updates
    ``[...]``.
  """
  l_t, theta, taut = np.float32(l_t), np.float32(theta), np.float32(taut)
  rho = rho_c + (i1w_grad[..., 0, :, :] * u[..., 0, :, :]
                 + i1w_grad[..., 1, :, :] * u[..., 1, :, :])
  l_t_grad = l_t * grad
  # Step along the gradient: clipped to +-l_t, or the exact zero of rho inside the band.
  textured = grad > _FLT_EPSILON
  fi = jnp.where(textured, -rho / jnp.where(textured, grad, 1.0), 0.0)
  fi = jnp.where(rho < -l_t_grad, l_t, jnp.where(rho > l_t_grad, -l_t, fi))
  v = u + fi[..., None, :, :] * i1w_grad
  new_u = v + theta * divergence(p[..., 0, :, :], p[..., 1, :, :])
  error = jnp.sum(jnp.square(new_u - u), axis=(-3, -2, -1))
  ux, uy = forward_gradient(new_u)
  norm = 1.0 + taut * jnp.sqrt(ux * ux + uy * uy)
  new_p = (p + taut * jnp.stack([ux, uy], axis=-3)) / norm[..., None, :, :]
  return new_u, new_p, error


def _cubic_weights(t: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """The four bicubic tap weights (for offsets -1, 0, 1, 2) at fractional position t in [0, 1)."""
  a = _CUBIC_A
  t1 = t + 1.0
  s = 1.0 - t
  w0 = ((a * t1 - 5.0 * a) * t1 + 8.0 * a) * t1 - 4.0 * a
  w1 = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
  w2 = ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0
  return w0, w1, w2, 1.0 - w0 - w1 - w2


def warp_bicubic(images: jax.Array, flow_x: jax.Array, flow_y: jax.Array) -> jax.Array:
  """Samples images at ``(x + flow_x, y + flow_y)`` like ``cv2.remap(INTER_CUBIC)``, 0 outside.

  cv2 5.0 uses the float coordinates directly (no 1/32-pixel table), and with BORDER_CONSTANT each
  of the 16 taps that falls outside the image counts as 0.

  Args:
    images: ``[C, H, W]`` channels sampled at the same positions (e.g. image, dx, dy).
    flow_x: ``[H, W]`` horizontal displacement in pixels.
    flow_y: ``[H, W]`` vertical displacement in pixels.

  Returns:
    ``[C, H, W]`` float32.
  """
  c, h, w = images.shape
  xs = jnp.arange(w, dtype=jnp.float32)[None, :] + flow_x
  ys = jnp.arange(h, dtype=jnp.float32)[:, None] + flow_y
  x_floor, y_floor = jnp.floor(xs), jnp.floor(ys)
  wx = _cubic_weights(xs - x_floor)
  wy = _cubic_weights(ys - y_floor)
  # A 4-pixel ring of zeros holds a whole 4x4 window: clamping the window's top-left corner into
  # it keeps every read in bounds and leaves exactly the outside taps at 0.
  pad = 4
  left = jnp.clip(x_floor - 1, -pad, w).astype(jnp.int32) + pad
  top = jnp.clip(y_floor - 1, -pad, h).astype(jnp.int32) + pad
  # Rows of interleaved channels, so that the 4 taps x C channels of a row are contiguous.
  table = jnp.pad(jnp.moveaxis(images, 0, -1), ((pad, pad), (pad, pad), (0, 0)))
  table = table.reshape(h + 2 * pad, (w + 2 * pad) * c)
  dims = jax.lax.GatherDimensionNumbers(offset_dims=(2,), collapsed_slice_dims=(0,),
                                        start_index_map=(0, 1))
  out = None
  for j in range(4):
    # One gather of 4*C contiguous floats per pixel and row, rather than 16 scalar-index gathers:
    # contiguous slices are much cheaper to gather on CPU.
    starts = jnp.stack([top + j, left * c], axis=-1)
    taps = jax.lax.gather(table, starts, dims, slice_sizes=(1, 4 * c),
                          mode=jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS)
    taps = taps.reshape(h, w, 4, c)
    row = taps[:, :, 0] * wx[0][..., None]
    for k in range(1, 4):
      row = row + taps[:, :, k] * wx[k][..., None]
    term = row * wy[j][..., None]
    out = term if out is None else out + term
  return jnp.moveaxis(out, -1, 0)


def _batcher_pairs(n: int) -> list[tuple[int, int]]:
  """Comparator pairs of Batcher's odd-even merge sort for n a power of two."""
  pairs = []
  p = 1
  while p < n:
    k = p
    while k >= 1:
      for j in range(k % p, n - k, 2 * k):
        for i in range(min(k, n - j - k)):
          if (i + j) // (2 * p) == (i + j + k) // (2 * p):
            pairs.append((i + j, i + j + k))
      k //= 2
    p *= 2
  return pairs


def select_rank(values: Sequence[jax.Array], rank: int) -> jax.Array:
  """Elementwise rank-th smallest of equally shaped arrays, by a pruned min/max network.

  Runs Batcher's sorting network on the values (padded to a power of two with +inf) but emits
  only the comparator halves that feed output wire ``rank``, so a median of 25 costs ~100 min/max
  ops per element, traced once (XLA would drop the rest too, but tracing them costs compile time).

  Args:
    values: n arrays of the same shape.
    rank: 0-based rank to return, ``0 <= rank < n``.

  Returns:
    An array of that shape.
  """
  n = len(values)
  if not 0 <= rank < n:
    raise ValueError(f'select_rank needs 0 <= rank < {n}, got {rank}.')
  size = 1
  while size < n:
    size *= 2
  pairs = _batcher_pairs(size)
  # Backward liveness: which halves (min to wire i, max to wire j) of each comparator are used.
  needed = {rank}
  plan = []
  for i, j in reversed(pairs):
    want_min, want_max = i in needed, j in needed
    if want_min or want_max:
      plan.append((i, j, want_min, want_max))
      needed |= {i, j}
  # None stands for +inf padding, folded away at trace time.
  wires: list[Optional[jax.Array]] = list(values) + [None] * (size - n)
  for i, j, want_min, want_max in reversed(plan):
    a, b = wires[i], wires[j]
    if b is None:
      continue
    if a is None:
      wires[i], wires[j] = b, None
      continue
    # An unwanted half is never read again (every comparator reads the wires it writes).
    wires[i] = jnp.minimum(a, b) if want_min else None
    wires[j] = jnp.maximum(a, b) if want_max else None
  return wires[rank]


def median_filter(x: jax.Array, ksize: int = 5) -> jax.Array:
  """``cv2.medianBlur(x, ksize)`` for float32 images: k x k median, replicated borders.

  A pruned min/max selection network over the k*k shifted views of the edge-padded image: about
  100 min/max per pixel for k = 5, far cheaper than jnp.sort over the window.

  Args:
    x: images ``[..., H, W]``.
    ksize: odd window size (OpenCV supports 3 and 5 on float images).

  Returns:
    ``[..., H, W]``.
  """
  if ksize % 2 != 1 or ksize < 1:
    raise ValueError(f'median_filter needs an odd ksize >= 1, got {ksize}.')
  if ksize == 1:
    return x
  h, w = x.shape[-2:]
  r = ksize // 2
  padded = _pad_edge(x, r, r)
  window = [padded[..., dy:dy + h, dx:dx + w] for dy in range(ksize) for dx in range(ksize)]
  return select_rank(window, (ksize * ksize - 1) // 2)
