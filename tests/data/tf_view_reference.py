"""The view transform in TensorFlow, per example: the reference of `train.device_views` in the tests.

The float view transform ran on the host in tf.data before `train.device_views` (pure JAX) moved it
onto the accelerator; this form of it stays as an independent implementation of the same rules
(docs/ARCHITECTURE.md, "Flow rules") that the device views must equal to float32 rounding.
Not shipped: no module of the package uses it.

Conventions as in `twostream_jax.data.video_ops`: an image is `[H, W, 3]`, a flow stack `[H, W, 2L]`
with channel 2k the x and 2k+1 the y component of field k, quantised flow the records' uint8 q
(v = (q - 127.5) / 127.5 * B), a box int32 `[4]` = (y0, x0, height, width).
"""

from __future__ import annotations

import tensorflow as tf

from twostream_jax.data import protocol_views
from twostream_jax.data.video_ops import TensorLike


def crop(image: tf.Tensor, box: TensorLike) -> tf.Tensor:
  """Crops `[H, W, C]` to the box `[4]` = (y0, x0, h, w); returns `[h, w, C]`."""
  box = tf.cast(box, tf.int32)
  return tf.slice(image, tf.stack([box[0], box[1], 0]), tf.stack([box[2], box[3], -1]))


def flip_image(image: tf.Tensor) -> tf.Tensor:
  """Mirrors `[H, W, C]` left-right."""
  return tf.reverse(image, axis=[1])


def _per_axis(x_value, y_value, num_channels) -> tf.Tensor:
  """float32 `[2L]`: x_value on x channels (even), y_value on y channels (odd)."""
  return tf.tile(tf.stack([x_value, y_value]), [num_channels // 2])


def flip_flow_quantised(q: tf.Tensor) -> tf.Tensor:
  """Mirrors quantised flow uint8 `[H, W, 2L]` left-right; x channels q -> 255 - q (exact negation)."""
  shape = tf.shape(q)
  mask = tf.tile(tf.constant([255, 0], tf.uint8), [shape[1] * shape[2] // 2])  # 255 - q == q ^ 255
  rows = tf.reshape(tf.reverse(q, axis=[1]), [shape[0], shape[1] * shape[2]])
  return tf.reshape(tf.bitwise.bitwise_xor(rows, mask), shape)


def color_jitter(image: tf.Tensor, u: TensorLike, strength: float) -> tf.Tensor:
  """Random brightness, contrast and saturation, each a factor in [1 - strength, 1 + strength].

  u: float32 `[3]` uniform numbers in [0, 1), one per factor.

  Applied in that order to float RGB `[H, W, 3]` in [0, 1], clipped to [0, 1] after each (as
  torchvision's ColorJitter with brightness = contrast = saturation = strength, in fixed order).
  """
  factors = 1.0 - strength + 2.0 * strength * u
  gray_weights = tf.constant([[0.299], [0.587], [0.114]])
  gray = lambda x: tf.reshape(tf.matmul(tf.reshape(x, [-1, 3]), gray_weights), tf.shape(x)[:2])
  image = tf.clip_by_value(image * factors[0], 0.0, 1.0)
  mean = tf.reduce_mean(gray(image))
  image = tf.clip_by_value((image - mean) * factors[1] + mean, 0.0, 1.0)
  g = gray(image)[..., None]
  return tf.clip_by_value(g + (image - g) * factors[2], 0.0, 1.0)


def per_channel_affine(image: tf.Tensor, scale: TensorLike, offset: TensorLike) -> tf.Tensor:
  """image * scale + offset with `[C]` scale and offset, for float `[H, W, C]`.

  Seen as `[H, W * C]` with `[W * C]` rows, as the host pipeline computed it (TF's CPU kernels
  broadcast a short innermost dimension element by element); the values are those of
  `image * scale + offset`.
  """
  shape = tf.shape(image)
  rows = tf.reshape(image, [shape[0], shape[1] * shape[2]])
  out = rows * tf.tile(scale, [shape[1]]) + tf.tile(offset, [shape[1]])
  return tf.reshape(out, shape)


def channel_mean(image: tf.Tensor) -> tf.Tensor:
  """Spatial mean of each channel of float `[H, W, C]`: `[C]` (fast path, see per_channel_affine)."""
  shape = tf.shape(image)
  columns = tf.reduce_sum(tf.reshape(image, [shape[0], shape[1] * shape[2]]), axis=0)
  total = tf.reduce_sum(tf.reshape(columns, [shape[1], shape[2]]), axis=0)
  return total / tf.cast(shape[0] * shape[1], tf.float32)


def _crop_flip_resize(image: tf.Tensor, box: TensorLike, flip: TensorLike, size: int) -> tf.Tensor:
  """Crop, optional mirror, and resize to size x size when the box differs; returns float32."""
  image = crop(image, box)
  image = tf.cond(flip, lambda: flip_image(image), lambda: image)
  same = tf.logical_and(tf.equal(box[2], size), tf.equal(box[3], size))
  out = tf.cond(same, lambda: tf.cast(image, tf.float32),
                lambda: tf.image.resize(image, [size, size], method='bilinear'))
  return tf.ensure_shape(out, [size, size, image.shape[-1]])


def rgb_view(frame: tf.Tensor, box: TensorLike, flip: TensorLike, size: int, normalization: str,
             jitter_uniforms: TensorLike | None = None, jitter_strength: float = 0.0) -> tf.Tensor:
  """One network input from a frame: crop, flip, resize, colour jitter, normalise.

  Args:
    frame: uint8 `[H, W, 3]`.
    box: int32 `[4]`.
    flip: bool scalar.
    size: S, the network input side.
    normalization: 'imagenet' or 'unit'.
    jitter_uniforms: float32 `[3]` uniform numbers of the colour jitter (when jitter_strength > 0).
    jitter_strength: 0 disables colour jitter.

  Returns:
    float32 `[S, S, 3]`.
  """
  if normalization not in protocol_views.NORMALIZATIONS:
    raise ValueError(f'normalization must be one of {protocol_views.NORMALIZATIONS}, got {normalization!r}')
  image = _crop_flip_resize(frame, box, flip, size)
  if normalization == 'imagenet':
    scale = 1.0 / tf.constant(protocol_views.IMAGENET_STD)
    offset = -tf.constant(protocol_views.IMAGENET_MEAN) * scale
  else:
    scale, offset = tf.ones([3]), tf.zeros([3])
  if jitter_strength > 0:
    image = color_jitter(image * (1.0 / 255.0), jitter_uniforms, jitter_strength)
  else:
    scale = scale / 255.0  # folds the [0, 255] -> [0, 1] scaling into the normalisation
  return per_channel_affine(image, scale, offset)


def flow_view(stack: tf.Tensor, box: TensorLike, flip: TensorLike, size: int, bound_px: float,
              mean_subtraction: str) -> tf.Tensor:
  """One network input from a quantised flow stack: crop, flip, resize, dequantise, subtract means.

  Crop and mirror work on the uint8 values; resizing works on q (bilinear weights sum to 1, so
  resizing q then dequantising equals dequantising then resizing). The output is then one affine
  map per channel: v = (q - c) * B / 127.5 * r * sign, with c = 127.5 (no mean subtraction) or the
  channel's mean of q (per field), r = size / w for x and size / h for y (the resize factor), and
  sign = -1 on x channels of a flipped view (the flip negation, exact up to float rounding).

  Args:
    stack: uint8 `[H, W, 2L]`, quantised flow with bound `bound_px`.
    box: int32 `[4]`.
    flip: bool scalar.
    size: S.
    bound_px: B of the quantisation.
    mean_subtraction: 'per_field' or 'none'.

  Returns:
    float32 `[S, S, 2L]` flow in pixels of the network input.
  """
  if mean_subtraction not in protocol_views.MEAN_SUBTRACTIONS:
    raise ValueError(f'flow_mean_subtraction must be one of {protocol_views.MEAN_SUBTRACTIONS}, got {mean_subtraction!r}')
  q = _crop_flip_resize(stack, box, flip, size)
  step = float(bound_px) / 127.5
  box = tf.cast(box, tf.float32)
  x_sign = tf.where(flip, -1.0, 1.0)
  scale = _per_axis(size / box[3] * step * x_sign, size / box[2] * step, tf.shape(stack)[-1])
  centre = channel_mean(q) if mean_subtraction == 'per_field' else 127.5
  return per_channel_affine(q, scale, -centre * scale)



def fields_to_stack(fields: tf.Tensor) -> tf.Tensor:
  """Channel-first fields `[..., 2K, H, W]` -> channel-last stack `[..., H, W, 2K]`.

  As a transpose of the last two dimensions of `[..., 2K, H * W]` (the pipeline's former form).
  """
  shape = tf.shape(fields)
  rank = len(fields.shape)
  lead = shape[:rank - 3]
  flat = tf.reshape(fields, tf.concat([lead, [shape[rank - 3], shape[rank - 2] * shape[rank - 1]]], 0))
  moved = tf.transpose(flat, list(range(rank - 3)) + [rank - 2, rank - 3])
  out = tf.reshape(moved, tf.concat([lead, [shape[rank - 2], shape[rank - 1], shape[rank - 3]]], 0))
  return tf.ensure_shape(out, fields.shape[:rank - 3] + [fields.shape[rank - 2], fields.shape[rank - 1],
                                                        fields.shape[rank - 3]])
