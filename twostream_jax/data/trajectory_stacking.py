"""Trajectory stacking (the paper, section 3.1): flow sampled along the motion trajectories.

Optical flow stacking samples every field of a stack at the same pixel; trajectory stacking follows
the motion: from p_1 = (u, v), p_k = p_{k-1} + d_{tau+k-2}(p_{k-1}), and channels 2(k-1), 2(k-1)+1
hold d_{tau+k-1}(p_k), for a stack of L fields starting at field tau. Flow is sampled bilinearly
between pixels and positions are clipped to the frame. It runs on the full stored field, before
cropping and flipping. `trajectory_stack_quantised` works on the records' uint8 quantised values
and returns the same quantisation.

TensorFlow only (no JAX). Design: docs/design_notes.md.
"""

from __future__ import annotations

import tensorflow as tf

STACKINGS = ('optical_flow', 'trajectory')


def bilinear_sample(field: tf.Tensor, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
  """Samples a field bilinearly at real positions inside it.

  Args:
    field: float32 `[H, W, 2]`.
    x, y: float32 `[H, W]`, positions in [0, W-1] and [0, H-1].

  Returns:
    float32 `[H, W, 2]`.
  """
  shape = tf.shape(field)
  height, width = shape[0], shape[1]
  x0f, y0f = tf.floor(x), tf.floor(y)
  wx, wy = (x - x0f)[..., None], (y - y0f)[..., None]
  x0 = tf.clip_by_value(tf.cast(x0f, tf.int32), 0, width - 1)
  y0 = tf.clip_by_value(tf.cast(y0f, tf.int32), 0, height - 1)
  # At the last row or column the weight of the neighbour beyond it is 0: clamp its index.
  x1, y1 = tf.minimum(x0 + 1, width - 1), tf.minimum(y0 + 1, height - 1)
  at = lambda yy, xx: tf.gather_nd(field, tf.stack([yy, xx], axis=-1))
  top = at(y0, x0) * (1.0 - wx) + at(y0, x1) * wx
  bottom = at(y1, x0) * (1.0 - wx) + at(y1, x1) * wx
  return top * (1.0 - wy) + bottom * wy


def trajectory_fields(fields: tf.Tensor) -> tf.Tensor:
  """Resamples L consecutive flow fields along the trajectories of every pixel (module docstring).

  Args:
    fields: float32 `[L, H, W, 2]`, flow in pixels (x, y) of fields tau .. tau+L-1; L static.

  Returns:
    float32 `[L, H, W, 2]`: field k sampled at p_{k+1} (0-based k), p_1 the pixel grid.
  """
  fields = tf.convert_to_tensor(fields, tf.float32)
  num_fields = fields.shape[0]
  if num_fields is None:
    raise ValueError('trajectory_fields needs a static number of fields')
  shape = tf.shape(fields)
  height, width = shape[1], shape[2]
  y, x = tf.meshgrid(tf.range(height, dtype=tf.float32), tf.range(width, dtype=tf.float32),
                     indexing='ij')
  x_max, y_max = tf.cast(width - 1, tf.float32), tf.cast(height - 1, tf.float32)
  out = []
  for k in range(num_fields):
    d = bilinear_sample(fields[k], x, y)
    out.append(d)
    x = tf.clip_by_value(x + d[..., 0], 0.0, x_max)
    y = tf.clip_by_value(y + d[..., 1], 0.0, y_max)
  return tf.stack(out)


def trajectory_stack_quantised(q: tf.Tensor, bound_px: float) -> tf.Tensor:
  """Trajectory stacking of quantised fields, in the records' channel-first interleaved layout.

  Args:
    q: uint8 `[2L, H, W]` (x_0, y_0, x_1, y_1, ...), quantised with bound B = `bound_px`; L static.
    bound_px: B.

  Returns:
    uint8 `[2L, H, W]`: the trajectory-resampled fields, quantised with the same bound.
  """
  channels = q.shape[0]
  if channels is None or channels % 2:
    raise ValueError(f'a quantised flow stack needs a static, even channel count, got {channels}')
  step = float(bound_px) / 127.5
  shape = tf.shape(q)
  pairs = tf.reshape(tf.cast(q, tf.float32), [channels // 2, 2, shape[1], shape[2]])
  fields = (tf.transpose(pairs, [0, 2, 3, 1]) - 127.5) * step  # [L, H, W, 2] pixels
  sampled = trajectory_fields(fields)
  # Values stay inside [-B, B] (bilinear weights are convex), so the levels stay within 0..255.
  levels = tf.round(sampled / step + 127.5)
  levels = tf.clip_by_value(levels, 0.0, 255.0)
  return tf.reshape(tf.cast(tf.transpose(levels, [0, 3, 1, 2]), tf.uint8), [channels, shape[1], shape[2]])
