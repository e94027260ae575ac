"""The device view transform (train.device_views) against its TF reference (tests.data.tf_view_reference)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf

from twostream_jax.train import device_views
from tests.data import tf_view_reference as reference

S = 16


def _cases(rng, height, width, n=6):
  """Boxes that need no resize, that shrink (multi-scale) and that grow (small frames), with flips."""
  boxes = []
  for k in range(n):
    if k % 3 == 0:
      side = min(S, height, width)
      h = w = side
    elif k % 3 == 1:
      h, w = int(rng.integers(S + 1, height + 1)), int(rng.integers(S + 1, width + 1))
    else:
      h, w = int(rng.integers(3, S)), int(rng.integers(3, S))
    boxes.append((int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w))
  return np.array(boxes, np.int32), np.array([k % 2 == 1 for k in range(n)])


def _device(spec, image, boxes, flips, **extra):
  batch = {device_views.IMAGES: image[None], device_views.BOXES: boxes[None], device_views.FLIPS: flips[None]}
  batch.update({k: np.asarray(v)[None] for k, v in extra.items()})
  return np.asarray(jax.jit(lambda b: device_views.make_views(spec, b))(batch))


@pytest.mark.parametrize('normalization', ['imagenet', 'unit'])
@pytest.mark.parametrize('jitter', [0.0, 0.4])
def test_rgb_views_equal_the_host_path(normalization, jitter):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (27, 35, 3), dtype=np.uint8)
  boxes, flips = _cases(rng, 27, 35)
  u = rng.uniform(size=3).astype(np.float32)
  spec = device_views.ViewSpec('rgb', S, normalization=normalization)
  extra = {device_views.JITTER: 1.0 - jitter + 2.0 * jitter * u} if jitter else {}
  got = _device(spec, image, boxes, flips, **extra)
  for v, (box, flip) in enumerate(zip(boxes, flips)):
    want = reference.rgb_view(tf.constant(image), box, tf.constant(flip), S, normalization,
                              tf.constant(u), jitter).numpy()
    np.testing.assert_allclose(got[v], want, rtol=1e-5, atol=2e-5, err_msg=f'box {box} flip {flip}')


@pytest.mark.parametrize('mean_subtraction', ['per_field', 'none'])
def test_flow_views_equal_the_host_path(mean_subtraction):
  rng = np.random.default_rng(1)
  # Fields that differ per field and per pixel, and a canvas larger than the stack (zero padded).
  stack = rng.integers(0, 256, (25, 30, 6), dtype=np.uint8)
  canvas = np.zeros((29, 33, 6), np.uint8)
  canvas[:25, :30] = stack
  boxes, flips = _cases(rng, 25, 30)
  spec = device_views.ViewSpec('flow', S, mean_subtraction=mean_subtraction)
  bound = 17.0
  planes = np.moveaxis(canvas, -1, 0)  # as the pipeline yields flow
  got = _device(spec, planes, boxes, flips, **{device_views.FLOW_STEP: np.float32(bound / 127.5)})
  for v, (box, flip) in enumerate(zip(boxes, flips)):
    want = reference.flow_view(tf.constant(stack), box, tf.constant(flip), S, bound,
                               mean_subtraction).numpy()
    np.testing.assert_allclose(got[v], want, rtol=1e-5, atol=1e-4, err_msg=f'box {box} flip {flip}')


def test_flip_negates_x_and_mirrors_with_mean_subtraction_on():
  rng = np.random.default_rng(2)
  stack = rng.integers(0, 256, (S, S, 4), dtype=np.uint8)
  spec = device_views.ViewSpec('flow', S, mean_subtraction='per_field')
  box = np.array([[0, 0, S, S]] * 2, np.int32)
  out = _device(spec, np.moveaxis(stack, -1, 0), box, np.array([False, True]),
                **{device_views.FLOW_STEP: np.float32(0.1)})
  plain, flipped = out
  assert np.abs(plain).max() > 1.0
  np.testing.assert_allclose(flipped[..., 0::2], -plain[:, ::-1, 0::2], atol=1e-5)
  np.testing.assert_allclose(flipped[..., 1::2], plain[:, ::-1, 1::2], atol=1e-5)
  # Per-field mean subtraction: each channel of each view has zero mean.
  np.testing.assert_allclose(out.mean(axis=(1, 2)), 0.0, atol=1e-5)


def test_views_of_a_batch_are_ordered_by_example_then_view():
  rng = np.random.default_rng(3)
  images = rng.integers(0, 256, (3, 2, S, S), dtype=np.uint8)  # flow planes
  boxes = np.tile(np.array([0, 0, S, S], np.int32), (3, 2, 1))
  flips = np.tile(np.array([False, True]), (3, 1))
  spec = device_views.ViewSpec('flow', S, mean_subtraction='none')
  steps = np.array([0.1, 0.2, 0.3], np.float32)
  batch = {device_views.IMAGES: images, device_views.BOXES: boxes, device_views.FLIPS: flips, device_views.FLOW_STEP: steps}
  out = np.asarray(jax.jit(lambda b: device_views.make_views(spec, b, dtype=jnp.bfloat16))(batch).astype(jnp.float32))
  assert out.shape == (6, S, S, 2) and device_views.num_views(batch) == 2
  for i in range(3):
    want = (np.moveaxis(images[i], 0, -1).astype(np.float32) - 127.5) * steps[i]
    np.testing.assert_allclose(out[2 * i], want, rtol=1e-2, atol=1e-2)
  np.testing.assert_array_equal(device_views.per_view(np.arange(3), 2), [0, 0, 1, 1, 2, 2])


@pytest.mark.parametrize('modality', ['rgb', 'flow'])
def test_s_by_s_boxes_given_as_corners_are_the_same_views(modality):
  rng = np.random.default_rng(4)
  c = 3 if modality == 'rgb' else 4
  image = rng.integers(0, 256, (S + 5, S + 9, c), dtype=np.uint8)
  if modality == 'flow':
    image = np.moveaxis(image, -1, 0)
  corners = np.array([[0, 0], [5, 9], [2, 3], [5, 0]], np.int32)
  full = np.concatenate([corners, np.full((4, 2), S, np.int32)], axis=1)
  flips = np.array([False, True, True, False])
  spec = device_views.ViewSpec(modality, S, mean_subtraction='per_field')
  extra = {device_views.FLOW_STEP: np.float32(0.2)} if modality == 'flow' else {}
  np.testing.assert_allclose(_device(spec, image, corners, flips, **extra),
                             _device(spec, image, full, flips, **extra), rtol=1e-6, atol=1e-5)


def test_videos_banks_and_rows_make_the_same_views_as_their_positions():
  """An evaluation batch of videos (each plane sent once, `rows` naming each stack's planes) gives
  exactly the views of the same stacks sent one position at a time, position-major."""
  rng = np.random.default_rng(4)
  v, bank, k, planes, c = 2, 7, 3, 4, 2
  images = rng.integers(0, 256, (v, bank, 20, 22), dtype=np.uint8)
  rows = rng.integers(0, bank, (v, k, planes)).astype(np.int32)  # overlapping, repeated planes
  boxes = np.array([[[0, 0, S, S], [2, 3, 9, 11]]] * v, np.int32)
  flips = np.array([[False, True], [True, False]])
  steps = np.array([0.5, 0.25], np.float32)
  spec = device_views.ViewSpec('flow', S, mean_subtraction='per_field')
  videos = {device_views.IMAGES: images, device_views.ROWS: rows, device_views.BOXES: boxes, device_views.FLIPS: flips,
            device_views.FLOW_STEP: steps, 'label': np.array([3, 5], np.int32)}
  positions = {device_views.IMAGES: images[np.arange(v)[:, None, None], rows].reshape(v * k, planes, 20, 22),
               device_views.BOXES: boxes.repeat(k, 0), device_views.FLIPS: flips.repeat(k, 0),
               device_views.FLOW_STEP: steps.repeat(k, 0)}
  fn = jax.jit(lambda b: device_views.make_views(spec, b))
  np.testing.assert_array_equal(np.asarray(fn(videos)), np.asarray(fn(positions)))
  assert device_views.num_views(videos) == k * c and device_views.num_views(positions) == c
  host = device_views.video_positions(videos)
  np.testing.assert_array_equal(np.asarray(host[device_views.IMAGES]), positions[device_views.IMAGES])
  np.testing.assert_array_equal(np.asarray(host['label']), [3, 3, 3, 5, 5, 5])
  assert device_views.ROWS not in host
