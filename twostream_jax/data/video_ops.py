"""TensorFlow ops on single examples: crops, flips, flow rules, colour jitter, normalisation.

The input pipeline uses the boxes, crops and decoders here; the float view transform
(`rgb_view`, `flow_view`) now runs on the device (`train.device_views`, pure JAX), and the TF form
here is its reference: the tests check the device views against it to float32 rounding.

Usable eagerly and inside tf.data (every op is a TF op). Random choices take uniform numbers in
[0, 1) rather than seeds: the pipeline draws all numbers of an example with one stateless call
(`uniforms`), as each random op costs as much as a whole crop here. Conventions:
  * An image is `[H, W, 3]`; a flow stack is `[H, W, 2L]` with channel 2k the x and 2k+1 the y
    component of field k (`record_format`'s interleaved order).
  * Quantised flow is the uint8 `q` of `record_format` (v = (q - 127.5) / 127.5 * B); float flow is
    in pixels.
  * A box is int32 `[4]` = (y0, x0, height, width) in pixels of the frame it crops.

Flow rules (docs/ARCHITECTURE.md): a horizontal flip negates x (q -> 255 - q on quantised flow, exact); one box
and one flip serve every channel of a stack; resizing from (h, w) to (h', w') multiplies x by w'/w
and y by h'/h; mean flow subtraction subtracts each channel's own spatial mean, i.e. each field's
mean vector, computed on the network input (after crop, flip and resize).

Frames smaller than the crop: a box never exceeds the frame, so the paper's S x S crop of a frame
with a side below S is a square of the short side, resized up to S x S (flow scaled accordingly).

TensorFlow only (no JAX).
"""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf

from twostream_jax.data import protocol_views
# The input pipeline checks `config.data` against these through this module.
from twostream_jax.data.protocol_views import MEAN_SUBTRACTIONS, NORMALIZATIONS, TEST_NUM_CROPS
from twostream_jax.data.random_draws import uniform_int

TensorLike = Any  # a tf.Tensor, or a value tf.convert_to_tensor accepts

# TSN's multi-scale crop: box sides are these fractions of the frame's short side.
MULTISCALE_SCALES = (1.0, 0.875, 0.75, 0.66)


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


def random_crop_box(u: TensorLike, height: TensorLike, width: TensorLike, size: int) -> tf.Tensor:
  """The paper's crop: a uniformly placed square of side min(size, H, W).

  Args:
    u: float32 `[..., 2]` uniform numbers in [0, 1).
    height, width: frame size, scalars or `[...]`.
    size: S.

  Returns:
    int32 `[..., 4]` boxes (one per leading index: the training pipeline draws a group at once).
  """
  side = tf.minimum(size, tf.minimum(height, width))
  side = side + tf.zeros_like(u[..., 0], tf.int32)  # broadcast to the leading shape
  return tf.stack([uniform_int(u[..., 0], height - side + 1), uniform_int(u[..., 1], width - side + 1),
                   side, side], axis=-1)


def _five_positions(height, width, h, w) -> tuple[tf.Tensor, tf.Tensor]:
  """y0, x0 `[..., 5]` of the corner and centre boxes: top-left, top-right, bottom-left,
  bottom-right, centre (arguments: scalars or `[...]`)."""
  y0 = tf.stack([0 * height, 0 * height, height - h, height - h, (height - h) // 2], axis=-1)
  x0 = tf.stack([0 * width, width - w, 0 * width, width - w, (width - w) // 2], axis=-1)
  return y0, x0


def multiscale_crop_box(u: TensorLike, height: TensorLike, width: TensorLike,
                        scales: Sequence[float] = MULTISCALE_SCALES, max_distort: int = 1) -> tf.Tensor:
  """TSN's corner cropping: returns boxes `[..., 4]` int32 (to be resized to the network input).

  Box height and width are floor(s * min(H, W)) for scales s_i, s_j of `scales` with
  |i - j| <= max_distort (the pair drawn uniformly by u[..., 0]), at one of 5 positions drawn
  uniformly by u[..., 1] (4 corners and the centre, as in `_five_positions`). `u` is `[..., 2]`;
  height and width are scalars or `[...]`.
  """
  height = tf.cast(height, tf.int32) + tf.zeros_like(u[..., 0], tf.int32)
  width = tf.cast(width, tf.int32) + tf.zeros_like(height)
  short = tf.cast(tf.minimum(height, width), tf.float32)
  pairs = tf.constant([(i, j) for i in range(len(scales)) for j in range(len(scales))
                       if abs(i - j) <= max_distort], tf.int32)
  scale = tf.constant(scales, tf.float32)
  k = uniform_int(u[..., 0], pairs.shape[0])
  h = tf.cast(tf.floor(short * tf.gather(scale, tf.gather(pairs[:, 0], k))), tf.int32)
  w = tf.cast(tf.floor(short * tf.gather(scale, tf.gather(pairs[:, 1], k))), tf.int32)
  y0, x0 = _five_positions(height, width, h, w)
  p = uniform_int(u[..., 1], 5)[..., None]
  return tf.stack([tf.gather(y0, p, batch_dims=p.shape.rank - 1)[..., 0],
                   tf.gather(x0, p, batch_dims=p.shape.rank - 1)[..., 0], h, w], axis=-1)


def test_crop_boxes(height: int, width: int, size: int,
                    num_crops: int) -> tuple[tf.Tensor, tf.Tensor]:
  """`protocol_views.test_crop_boxes` as constant tensors: boxes int32 `[C, 4]`, flips bool `[C]`.

  The frame size is a Python number: the evaluation pipeline makes the boxes once per frame size
  on the host, so there is no TensorFlow version of the rule to keep in step with the numpy one.
  """
  boxes, flips = protocol_views.test_crop_boxes(int(height), int(width), size, num_crops)
  return tf.constant(boxes), tf.constant(flips)


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

  Why not `image * scale + offset`: TF's CPU kernels broadcast a short innermost dimension
  element by element (about 5x slower here); seen as `[H, W * C]` with `[W * C]` rows, the
  broadcast is over the outer dimension and vectorises.
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
  if normalization not in NORMALIZATIONS:
    raise ValueError(f'normalization must be one of {NORMALIZATIONS}, got {normalization!r}')
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
  if mean_subtraction not in MEAN_SUBTRACTIONS:
    raise ValueError(f'flow_mean_subtraction must be one of {MEAN_SUBTRACTIONS}, got {mean_subtraction!r}')
  q = _crop_flip_resize(stack, box, flip, size)
  step = float(bound_px) / 127.5
  box = tf.cast(box, tf.float32)
  x_sign = tf.where(flip, -1.0, 1.0)
  scale = _per_axis(size / box[3] * step * x_sign, size / box[2] * step, tf.shape(stack)[-1])
  centre = channel_mean(q) if mean_subtraction == 'per_field' else 127.5
  return per_channel_affine(q, scale, -centre * scale)


# The record format's decoder settings: `prep.jpeg_codec.decode_jpeg` gives the same pixels.
_DCT_METHOD = 'INTEGER_ACCURATE'


def decode_jpeg(jpeg: TensorLike, channels: int) -> tf.Tensor:
  """Decodes one JPEG (scalar tf.string) to uint8 `[H, W, channels]` as the records were meant to
  be read: every decoder of stored frames and flow planes goes through here."""
  return tf.io.decode_jpeg(jpeg, channels=channels, dct_method=_DCT_METHOD)


def decode_frame(jpeg: TensorLike) -> tf.Tensor:
  """Decodes one RGB JPEG (scalar tf.string) to uint8 `[H, W, 3]` (`decode_jpeg`).

  Decoding only the crop's window (`tf.io.decode_and_crop_jpeg`, with context pixels so that
  chroma upsampling matches) was slower for 340x256 frames: 0.84x the speed in an A/B of one run.
  """
  return decode_jpeg(jpeg, 3)


def decode_flow_fields_quantised(flow_x_jpeg: TensorLike, flow_y_jpeg: TensorLike,
                                 crop_window: TensorLike | None = None) -> tf.Tensor:
  """Decodes K x and K y flow JPEGs to their quantised values, fields interleaved.

  Channel-first, in the stack's interleaved order; `fields_to_stack` makes the `[H, W, 2K]` stack.
  Working on uint8 until the network input saves 4x the memory traffic of float crops and flips.

  Args:
    flow_x_jpeg, flow_y_jpeg: tf.string `[K]`.
    crop_window: optional int32 `[4]` = (y0, x0, h, w): decode only that window of every plane
      (libjpeg skips the rows above and below it; single-channel JPEGs have no chroma upsampling,
      so the values equal those of decoding whole and slicing).

  Returns:
    uint8 `[2K, H, W]` (`[2K, h, w]` with `crop_window`): x_0, y_0, x_1, y_1, ...
  """
  jpegs = tf.reshape(tf.stack([flow_x_jpeg, flow_y_jpeg], axis=1), [-1])
  if crop_window is None:
    decode = lambda s: decode_jpeg(s, 1)
  else:
    decode = lambda s: tf.io.decode_and_crop_jpeg(s, crop_window, channels=1,
                                                  dct_method=_DCT_METHOD)
  planes = tf.map_fn(decode, jpegs, fn_output_signature=tf.TensorSpec([None, None, 1], tf.uint8))
  return tf.squeeze(planes, -1)  # a reshape: no per-plane slice, no copy


def fields_to_stack(fields: tf.Tensor) -> tf.Tensor:
  """Channel-first fields `[..., 2K, H, W]` -> channel-last stack `[..., H, W, 2K]`.

  As a transpose of the last two dimensions of `[..., 2K, H * W]`: TF's CPU transpose of uint8 is
  about 40% faster on that 2-D pattern than on the equivalent 3-D permutation.
  """
  shape = tf.shape(fields)
  rank = len(fields.shape)
  lead = shape[:rank - 3]
  flat = tf.reshape(fields, tf.concat([lead, [shape[rank - 3], shape[rank - 2] * shape[rank - 1]]], 0))
  moved = tf.transpose(flat, list(range(rank - 3)) + [rank - 2, rank - 3])
  out = tf.reshape(moved, tf.concat([lead, [shape[rank - 2], shape[rank - 1], shape[rank - 3]]], 0))
  return tf.ensure_shape(out, fields.shape[:rank - 3] + [fields.shape[rank - 2], fields.shape[rank - 1],
                                                        fields.shape[rank - 3]])
