"""Trajectory stacking against a numpy transliteration of the paper's formula."""

import numpy as np
import pytest
import tensorflow as tf

from twostream_jax.data import record_schema
from twostream_jax.data import trajectory_stacking


def _bilinear_np(field, x, y):
  """field [H, W, 2] at one real point (x, y) inside it, by the textbook formula."""
  h, w = field.shape[:2]
  x0, y0 = int(np.floor(x)), int(np.floor(y))
  x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
  ax, ay = x - x0, y - y0
  return ((1 - ax) * (1 - ay) * field[y0, x0] + ax * (1 - ay) * field[y0, x1]
          + (1 - ax) * ay * field[y1, x0] + ax * ay * field[y1, x1])


def _trajectory_np(fields):
  """fields [L, H, W, 2] -> [L, H, W, 2]; p_1 = (u, v), p_k = p_{k-1} + d_{k-1}(p_{k-1}), clipped."""
  num, h, w, _ = fields.shape
  out = np.zeros_like(fields)
  for v in range(h):
    for u in range(w):
      p = np.array([u, v], np.float64)
      for k in range(num):
        d = _bilinear_np(fields[k], p[0], p[1])
        out[k, v, u] = d
        p = np.clip(p + d, [0, 0], [w - 1, h - 1])
  return out


def _translating_and_rotating(num_fields=4, h=12, w=16):
  """Even fields translate by a per-field vector, odd fields rotate about the centre."""
  y, x = np.mgrid[0:h, 0:w].astype(np.float64)
  cx, cy = (w - 1) / 2, (h - 1) / 2
  fields = []
  for k in range(num_fields):
    if k % 2 == 0:
      fields.append(np.stack([np.full_like(x, 1.3 + 0.4 * k), np.full_like(y, -0.7 + 0.2 * k)], -1))
    else:
      a = 0.15 * k
      rx = np.cos(a) * (x - cx) - np.sin(a) * (y - cy) + cx
      ry = np.sin(a) * (x - cx) + np.cos(a) * (y - cy) + cy
      fields.append(np.stack([rx - x, ry - y], -1))
  return np.stack(fields).astype(np.float32)


def test_matches_numpy_transliteration_on_translating_and_rotating_flow():
  fields = _translating_and_rotating()
  got = trajectory_stacking.trajectory_fields(tf.constant(fields)).numpy()
  want = _trajectory_np(fields.astype(np.float64))
  np.testing.assert_allclose(got, want, atol=1e-4)
  # Trajectories leave the pixel grid, so this is not optical flow stacking.
  assert np.abs(got[1:] - fields[1:]).max() > 0.5
  # The first field is always sampled at the pixel itself.
  np.testing.assert_allclose(got[0], fields[0], atol=1e-6)


def test_known_trajectory_after_a_translation():
  # Field 0 moves every point by (+1, 0); field 1 has y flow x / 10: sampled at u + 1, clipped.
  h, w = 5, 8
  y, x = np.mgrid[0:h, 0:w].astype(np.float32)
  fields = np.stack([np.stack([np.ones_like(x), np.zeros_like(y)], -1),
                     np.stack([np.zeros_like(x), x / 10], -1)])
  got = trajectory_stacking.trajectory_fields(tf.constant(fields)).numpy()
  np.testing.assert_allclose(got[1, ..., 1], np.minimum(x + 1, w - 1) / 10, atol=1e-6)


def test_quantised_stack_within_half_a_level():
  fields = _translating_and_rotating(num_fields=3)
  bound = 4.0
  q = record_schema.quantise_flow(fields, bound)  # [L, H, W, 2]
  q_cf = np.transpose(q, (0, 3, 1, 2)).reshape(6, *q.shape[1:3])  # [2L, H, W] interleaved
  out = trajectory_stacking.trajectory_stack_quantised(tf.constant(q_cf), bound).numpy()
  assert out.dtype == np.uint8 and out.shape == q_cf.shape
  want = _trajectory_np(record_schema.dequantise_flow(q, bound).astype(np.float64))
  want_cf = np.transpose(want, (0, 3, 1, 2)).reshape(out.shape)
  step = record_schema.flow_quantisation_step(bound)
  assert np.abs(record_schema.dequantise_flow(out, bound) - want_cf).max() <= step / 2 + 1e-4


def test_rejects_odd_channel_count():
  with pytest.raises(ValueError, match='even'):
    trajectory_stacking.trajectory_stack_quantised(tf.zeros([3, 4, 4], tf.uint8), 20.0)


def test_pipeline_stacks_along_trajectories_in_training_and_evaluation(tmp_path):
  from tests import record_fixtures  # pylint: disable=g-import-not-at-top
  from tests.config_fixtures import tiny_train_config  # pylint: disable=g-import-not-at-top
  from tests.data.test_pipelines import _positions  # pylint: disable=g-import-not-at-top
  from tests.data import pipelines  # pylint: disable=g-import-not-at-top
  record_fixtures.write_tiny_dataset(str(tmp_path), num_classes=2, train_per_class=1,
                                     test_per_class=1, num_frames=5, height=12, width=16)
  plain, trajectory = tiny_train_config(str(tmp_path)), tiny_train_config(str(tmp_path))
  trajectory.data.stacking = 'trajectory'
  evals = [next(pipelines.numpy_batches(pipelines.create_eval_dataset(
      c.data, split='test1', num_frames=2, num_crops=1, global_batch_size=2)))
           for c in (plain, trajectory)]
  evals = [_positions(e) for e in evals]
  # The test positions hold whole stacks: the trajectory stack is the plain one resampled.
  # Flow goes to the device as planes [n, 2L, H, W]; channel-last here, as the device makes it.
  planes = [np.moveaxis(e['images'], 1, -1) for e in evals]
  q = planes[0][evals[0]['mask'] > 0]  # [n, H, W, 2L]
  bound = record_fixtures.FLOW_BOUND_PX
  fields = record_schema.dequantise_flow(q, bound).reshape(*q.shape[:3], -1, 2)
  for i in range(len(q)):
    want = _trajectory_np(np.moveaxis(fields[i], 2, 0).astype(np.float64))  # [L, H, W, 2]
    got = record_schema.dequantise_flow(planes[1][i], bound).reshape(fields[i].shape)
    np.testing.assert_allclose(np.moveaxis(got, 2, 0), want,
                               atol=record_schema.flow_quantisation_step(bound) / 2 + 1e-4)
  train = next(pipelines.numpy_batches(pipelines.create_train_dataset(trajectory.data, global_batch_size=4,
                                                        seed=0)))
  assert train['images'].shape == (4, 4, 24, 24) and train['images'].dtype == np.uint8
  with pytest.raises(pipelines.InputConfigError, match='data.stacking'):
    trajectory.data.stacking = 'trajectories'
    pipelines.create_train_dataset(trajectory.data, global_batch_size=4, seed=0)


def test_training_stacks_equal_the_reference_along_trajectories(tmp_path):
  """The training path by value: with frames the crop's size, a training example holds the whole
  stack, and the trajectory run draws the same videos, fields and boxes as the plain one (same
  seed), so each of its stacks must be `_trajectory_np` of the plain stack."""
  from tests import record_fixtures  # pylint: disable=g-import-not-at-top
  from tests.config_fixtures import tiny_train_config  # pylint: disable=g-import-not-at-top
  from tests.data import pipelines  # pylint: disable=g-import-not-at-top
  size, num_fields, bound = 24, 3, record_fixtures.FLOW_BOUND_PX
  # Flow that differs per field and varies across the frame (x a ramp), so trajectories matter.
  record_fixtures.write_tiny_dataset(str(tmp_path), num_classes=2, train_per_class=2,
                                     test_per_class=1, num_frames=6, height=size, width=size,
                                     distinct_flow=True)
  plain, trajectory = tiny_train_config(str(tmp_path)), tiny_train_config(str(tmp_path))
  for c in (plain, trajectory):
    c.data.crop_size, c.data.num_flow_fields = size, num_fields
  trajectory.data.stacking = 'trajectory'
  batches = [next(pipelines.numpy_batches(pipelines.create_train_dataset(
      c.data, global_batch_size=8, seed=3))) for c in (plain, trajectory)]
  np.testing.assert_array_equal(batches[0]['label'], batches[1]['label'])
  q_plain, q_trajectory = (b['images'] for b in batches)  # uint8 [B, 2L, H, W] planes
  assert q_plain.shape == q_trajectory.shape == (8, 2 * num_fields, size, size)
  step = record_schema.flow_quantisation_step(bound)
  moved = 0.0
  for plain_stack, got_stack in zip(q_plain, q_trajectory):
    fields = np.moveaxis(record_schema.dequantise_flow(plain_stack, bound).reshape(
        num_fields, 2, size, size), 1, -1)  # [L, H, W, 2]
    want = _trajectory_np(fields.astype(np.float64))
    got = np.moveaxis(record_schema.dequantise_flow(got_stack, bound).reshape(
        num_fields, 2, size, size), 1, -1)
    np.testing.assert_allclose(got, want, atol=step / 2 + 1e-4)
    moved = max(moved, float(np.abs(got - fields).max()))
  # Not optical flow stacking under another name: the trajectories sample other pixels.
  assert moved > 4 * step, moved
