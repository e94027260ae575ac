"""Tests of video_ops (boxes, decoders) and of the TF reference view transform (flow rules: flip,
crop alignment, resize scaling, mean subtraction; jitter, normalisation)."""

import numpy as np
import pytest
import tensorflow as tf

from twostream_jax.data import protocol_views
from twostream_jax.data import random_draws
from twostream_jax.data import record_schema
from twostream_jax.data import video_ops
from twostream_jax.prep import jpeg_codec
from tests.data import flow_reference
from tests.data import tf_view_reference as reference

B = 20.0  # flow bound of the quantised tests


def _uniforms(i, count):
  return random_draws.uniforms(tf.constant([7, i], tf.int64), count)


def test_flip_negates_x_exactly_and_keeps_y():
  rng = np.random.default_rng(0)
  flow = rng.normal(size=(6, 8, 6)).astype(np.float32)  # L = 3
  out = flow_reference.flip_flow(flow)
  mirrored = flow[:, ::-1]
  np.testing.assert_array_equal(out[..., 0::2], -mirrored[..., 0::2])
  np.testing.assert_array_equal(out[..., 1::2], mirrored[..., 1::2])
  # Quantised: q -> 255 - q on x is an exact negation of the dequantised value.
  q = rng.integers(0, 256, size=(6, 8, 6)).astype(np.uint8)
  flipped = record_schema.dequantise_flow(reference.flip_flow_quantised(tf.constant(q)).numpy(), B)
  expected = record_schema.dequantise_flow(q[:, ::-1], B)
  np.testing.assert_array_equal(flipped[..., 0::2], -expected[..., 0::2])
  np.testing.assert_array_equal(flipped[..., 1::2], expected[..., 1::2])


def test_flow_view_crops_every_channel_alike_and_flips_x():
  # Each channel holds the same coordinate pattern plus its own offset: an aligned crop keeps the
  # offsets, a misaligned one would not.
  h, w, channels = 10, 12, 8
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing='ij')
  pattern = (yy * w + xx) % 97
  q = np.stack([pattern + 3 * c for c in range(channels)], -1).astype(np.uint8)
  box = tf.constant([2, 3, 6, 6])
  out = reference.flow_view(tf.constant(q), box, tf.constant(False), 6, B, 'none').numpy()
  np.testing.assert_allclose(out, record_schema.dequantise_flow(q[2:8, 3:9], B), rtol=0, atol=1e-5)
  flipped = reference.flow_view(tf.constant(q), box, tf.constant(True), 6, B, 'none').numpy()
  ref = record_schema.dequantise_flow(q[2:8, 3:9][:, ::-1], B)
  ref[..., 0::2] *= -1
  np.testing.assert_allclose(flipped, ref, rtol=0, atol=1e-5)


def test_resize_scales_flow_by_the_factor_of_its_axis():
  flow = np.zeros((8, 10, 4), np.float32)
  flow[..., 0::2], flow[..., 1::2] = 1.5, -2.0  # constant x and y: resizing keeps them constant
  out = flow_reference.resize_flow(flow, (12, 25))
  assert out.shape == (12, 25, 4)
  np.testing.assert_allclose(out[..., 0::2], 1.5 * 25 / 10, rtol=1e-6)
  np.testing.assert_allclose(out[..., 1::2], -2.0 * 12 / 8, rtol=1e-6)
  # flow_view: a 12 (h) x 16 (w) box resized to 24 x 24 scales x by 1.5 and y by 2.
  q = np.stack([np.full((20, 20), 140, np.uint8), np.full((20, 20), 100, np.uint8)], -1)
  out = reference.flow_view(tf.constant(q), tf.constant([1, 2, 12, 16]), tf.constant(False), 24, B,
                            'none').numpy()
  np.testing.assert_allclose(out[..., 0], record_schema.dequantise_flow(np.float32(140), B) * 1.5, rtol=1e-5)
  np.testing.assert_allclose(out[..., 1], record_schema.dequantise_flow(np.float32(100), B) * 2.0, rtol=1e-5)


def test_mean_subtraction_zeroes_each_field_mean():
  rng = np.random.default_rng(1)
  flow = rng.normal(3.0, 2.0, size=(9, 7, 10)).astype(np.float32)
  out = flow_reference.subtract_mean_flow(flow)
  np.testing.assert_allclose(out.mean(axis=(0, 1)), 0.0, atol=1e-5)
  np.testing.assert_allclose(out - flow, np.broadcast_to(-flow.mean((0, 1)), flow.shape), atol=1e-5)
  q = rng.integers(0, 256, size=(16, 16, 10)).astype(np.uint8)
  view = reference.flow_view(tf.constant(q), tf.constant([0, 0, 12, 12]), tf.constant(True), 12, B,
                             'per_field').numpy()
  np.testing.assert_allclose(view.mean(axis=(0, 1)), 0.0, atol=1e-4)


def test_multiscale_boxes_follow_tsn_scales_and_positions():
  h, w = 60, 80  # short side 60: sides floor(60 * s) = 60, 52, 45, 39
  sides = [60, 52, 45, 39]
  seen_pairs, seen_positions = set(), set()
  boxes = tf.data.Dataset.range(300).map(lambda i: video_ops.multiscale_crop_box(
      random_draws.uniforms(tf.stack([tf.constant(7, tf.int64), i]), 2), h, w))
  for y0, x0, bh, bw in boxes.as_numpy_iterator():
    i_h, i_w = sides.index(bh), sides.index(bw)
    assert abs(i_h - i_w) <= 1
    corners = {(0, 0): 'tl', (0, w - bw): 'tr', (h - bh, 0): 'bl', (h - bh, w - bw): 'br',
               ((h - bh) // 2, (w - bw) // 2): 'c'}
    assert (y0, x0) in corners
    seen_pairs.add((i_h, i_w))
    seen_positions.add(corners[(y0, x0)])
  assert len(seen_pairs) == 10 and len(seen_positions) == 5  # all 10 pairs with |i - j| <= 1


def test_random_crop_box_stays_inside_and_reaches_both_ends():
  y, x = [], []
  boxes = tf.data.Dataset.range(200).map(lambda i: video_ops.random_crop_box(
      random_draws.uniforms(tf.stack([tf.constant(7, tf.int64), i]), 2), 30, 40, 24))
  for y0, x0, bh, bw in boxes.as_numpy_iterator():
    assert (bh, bw) == (24, 24) and 0 <= y0 <= 6 and 0 <= x0 <= 16
    y.append(y0)
    x.append(x0)
  assert {min(y), max(y), min(x), max(x)} == {0, 6, 16}
  assert list(video_ops.random_crop_box(_uniforms(0, 2), 20, 40, 24).numpy()[2:]) == [20, 20]
  # The extremes of u reach the extreme positions and never leave the frame.
  np.testing.assert_array_equal(video_ops.random_crop_box(tf.constant([0.0, 0.9999999]), 30, 40, 24),
                                [0, 16, 24, 24])


def test_boxes_of_a_group_equal_one_box_per_example():
  """Training draws the crop boxes of a group at once: each row is the box of its own numbers."""
  u = tf.random.stateless_uniform([40, 2], [5, 6])
  heights = tf.constant(np.random.default_rng(1).integers(20, 60, 40), tf.int32)
  widths = tf.constant(np.random.default_rng(2).integers(20, 60, 40), tf.int32)
  np.testing.assert_array_equal(
      video_ops.random_crop_box(u, heights, widths, 24),
      [video_ops.random_crop_box(u[i], heights[i], widths[i], 24) for i in range(40)])
  np.testing.assert_array_equal(
      video_ops.multiscale_crop_box(u, heights, widths),
      [video_ops.multiscale_crop_box(u[i], heights[i], widths[i]) for i in range(40)])


def test_color_jitter_on_gray_is_brightness_only():
  # On a uniform gray image contrast and saturation change nothing: out = 0.5 * b, b in [0.8, 1.2].
  gray = tf.fill([4, 4, 3], 0.5)
  values = [reference.color_jitter(gray, _uniforms(i, 3), 0.2).numpy() for i in range(50)]
  for v in values:
    assert np.ptp(v) < 1e-6 and 0.4 - 1e-6 <= v[0, 0, 0] <= 0.6 + 1e-6
  assert np.ptp([v[0, 0, 0] for v in values]) > 0.05


def test_normalization():
  mean_colour = tf.constant(np.array(protocol_views.IMAGENET_MEAN, np.float32))[None, None]
  np.testing.assert_allclose(flow_reference.normalize_rgb(mean_colour.numpy(), 'imagenet'), 0.0, atol=1e-6)
  np.testing.assert_allclose(flow_reference.normalize_rgb(mean_colour.numpy(), 'unit'), mean_colour.numpy())
  frame = np.full((8, 8, 3), 255, np.uint8)
  out = reference.rgb_view(tf.constant(frame), tf.constant([0, 0, 8, 8]), tf.constant(False), 8,
                           'imagenet').numpy()
  np.testing.assert_allclose(out[0, 0], (1 - np.array(protocol_views.IMAGENET_MEAN)) /
                             np.array(protocol_views.IMAGENET_STD), rtol=1e-5)


def test_ops_agree_eagerly_and_inside_tf_data():
  rng = np.random.default_rng(2)
  frame = tf.constant(rng.integers(0, 256, size=(30, 36, 3)).astype(np.uint8))
  stack = tf.constant(rng.integers(0, 256, size=(30, 36, 6)).astype(np.uint8))

  def views(i):
    u = random_draws.uniforms(tf.stack([tf.constant(7, tf.int64), tf.cast(i, tf.int64)]), 6)
    box = video_ops.multiscale_crop_box(u[:2], 30, 36)
    flip = u[2] < 0.5
    return (reference.rgb_view(frame, box, flip, 16, 'imagenet', u[3:], 0.3),
            reference.flow_view(stack, box, flip, 16, B, 'per_field'))

  in_data = list(tf.data.Dataset.range(3).map(views).as_numpy_iterator())
  for i, (rgb, flow) in enumerate(in_data):
    eager_rgb, eager_flow = views(tf.constant(i, tf.int64))
    np.testing.assert_allclose(rgb, eager_rgb.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(flow, eager_flow.numpy(), rtol=0, atol=1e-6)


def test_decoders_match_record_format():
  rng = np.random.default_rng(4)
  jpeg = jpeg_codec.encode_jpeg(rng.integers(0, 256, (12, 16, 3)).astype(np.uint8))
  np.testing.assert_array_equal(video_ops.decode_frame(tf.constant(jpeg)).numpy(),
                                jpeg_codec.decode_jpeg(jpeg))
  # Quantised flow fields: dequantised, they equal record_schema's float flow stack.
  xs = [jpeg_codec.encode_jpeg(rng.integers(0, 256, (12, 16)).astype(np.uint8)) for _ in range(3)]
  ys = [jpeg_codec.encode_jpeg(rng.integers(0, 256, (12, 16)).astype(np.uint8)) for _ in range(3)]
  fields = video_ops.decode_flow_fields_quantised(tf.constant(xs), tf.constant(ys))
  ours = record_schema.dequantise_flow(tf.cast(reference.fields_to_stack(fields), tf.float32), B)
  theirs = flow_reference.decode_flow_stack(xs, ys, range(3), B)
  np.testing.assert_array_equal(ours.numpy(), theirs)


@pytest.mark.parametrize('window', [(0, 0, 40, 56), (9, 13, 17, 30), (23, 35, 17, 21), (8, 16, 1, 1)])
def test_flow_planes_decoded_in_a_window_equal_the_whole_planes_sliced(window):
  # Smooth fields (like real flow) and noise, 40 x 56: windows at the origin, inside, at the far
  # corner and of one pixel, not aligned to the 8 x 8 blocks.
  rng = np.random.default_rng(5)
  smooth = np.clip(128 + 40 * np.sin(np.arange(56) / 7)[None] * np.cos(np.arange(40) / 5)[:, None], 0, 255)
  planes = [smooth.astype(np.uint8), rng.integers(0, 256, (40, 56)).astype(np.uint8)] * 2
  xs = tf.constant([jpeg_codec.encode_jpeg(p) for p in planes[:2]])
  ys = tf.constant([jpeg_codec.encode_jpeg(p) for p in planes[2:]])
  whole = video_ops.decode_flow_fields_quantised(xs, ys).numpy()
  y0, x0, h, w = window
  cut = video_ops.decode_flow_fields_quantised(xs, ys, crop_window=tf.constant(window)).numpy()
  assert cut.shape == (4, h, w)
  np.testing.assert_array_equal(cut, whole[:, y0:y0 + h, x0:x0 + w])
