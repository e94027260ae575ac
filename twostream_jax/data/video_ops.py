"""TensorFlow ops on single examples for the input pipeline: crop boxes and record decoders.

Training boxes (`random_crop_box`, TSN's `multiscale_crop_box`; the test protocol's boxes are
`data.protocol_views`'s) and the decoders of stored frames and flow planes.
The float view transform runs on the device (`train.device_views`).

Usable eagerly and inside tf.data (every op is a TF op). Random choices take uniform numbers in
[0, 1) rather than seeds: the pipeline draws all numbers of an example with one stateless call
(`uniforms`). A box is int32 `[4]` = (y0, x0, height, width) in pixels of the frame it crops; it
never exceeds the frame, so the paper's S x S crop of a frame with a side below S is a square of
the short side (resized up to S x S on the device).

TensorFlow only (no JAX).
"""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf

from twostream_jax.data.random_draws import uniform_int

TensorLike = Any  # a tf.Tensor, or a value tf.convert_to_tensor accepts

# TSN's multi-scale crop: box sides are these fractions of the frame's short side.
MULTISCALE_SCALES = (1.0, 0.875, 0.75, 0.66)


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


# The record format's decoder settings: `prep.jpeg_codec.decode_jpeg` gives the same pixels.
_DCT_METHOD = 'INTEGER_ACCURATE'


def decode_jpeg(jpeg: TensorLike, channels: int) -> tf.Tensor:
  """Decodes one JPEG (scalar tf.string) to uint8 `[H, W, channels]` as the records were meant to
  be read: every decoder of stored frames and flow planes goes through here."""
  return tf.io.decode_jpeg(jpeg, channels=channels, dct_method=_DCT_METHOD)


def decode_frame(jpeg: TensorLike) -> tf.Tensor:
  """Decodes one RGB JPEG (scalar tf.string) to uint8 `[H, W, 3]` (`decode_jpeg`), whole: for
  RGB, decoding only the crop's window did not pay (bench/RESULTS.md)."""
  return decode_jpeg(jpeg, 3)


def decode_flow_fields_quantised(flow_x_jpeg: TensorLike, flow_y_jpeg: TensorLike,
                                 crop_window: TensorLike | None = None) -> tf.Tensor:
  """Decodes K x and K y flow JPEGs to their quantised values, fields interleaved.

  Channel-first, in the stack's interleaved order, as the device views take them (no transpose on
  the host). Working on uint8 until the network input saves 4x the memory traffic of float crops
  and flips.

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
