"""Tests of the sampling rules: test-protocol frame indices, flow clamping, epochs, apportioning."""

import numpy as np
import pytest
import tensorflow as tf

from twostream_jax.data import protocol_positions
from twostream_jax.data import sampling


def test_test_view_starts_are_rounded_linspace():
  # N = 12 frames, K = 4 views of 1 frame: linspace(0, 11, 4) = 0, 3.67, 7.33, 11 -> 0, 4, 7, 11.
  np.testing.assert_array_equal(protocol_positions.frame_indices(12, 4), [0, 4, 7, 11])
  # Halves round up: linspace(0, 5, 3) = 0, 2.5, 5 -> 0, 3, 5.
  np.testing.assert_array_equal(protocol_positions.view_starts(6, 1, 3), [0, 3, 5])
  np.testing.assert_array_equal(protocol_positions.frame_indices(12, 1), [5])  # the middle: 11 // 2
  # The paper's 25 views of a 186-frame video: 0, then steps of 185 / 24 = 7.71, ..., 185.
  starts = protocol_positions.frame_indices(186, 25)
  expected = np.floor(np.arange(25) * 185 / 24 + 0.5).astype(int)
  np.testing.assert_array_equal(starts, expected)
  assert starts[0] == 0 and starts[-1] == 185
  # More views than frames: indices repeat, never leave the video.
  np.testing.assert_array_equal(protocol_positions.frame_indices(3, 5), [0, 1, 1, 2, 2])


def test_test_flow_stacks_span_l_fields_and_clamp_short_videos():
  # N = 12 frames -> 11 fields; L = 5 -> starts linspace(0, 6, 4) = 0, 2, 4, 6.
  stacks = protocol_positions.flow_indices(12, 4, 5)
  np.testing.assert_array_equal(stacks[:, 0], [0, 2, 4, 6])
  np.testing.assert_array_equal(stacks[-1], [6, 7, 8, 9, 10])
  # N = 4 frames -> 3 fields, L = 5: one start (0), the last field repeats.
  np.testing.assert_array_equal(protocol_positions.flow_indices(4, 2, 5), [[0, 1, 2, 2, 2]] * 2)


def test_train_flow_indices_are_consecutive_or_clamped():
  starts = set()
  for u in np.linspace(0, 0.99, 60):
    idx = sampling.train_flow_indices(tf.constant(u, tf.float32), 12, 5).numpy()
    np.testing.assert_array_equal(np.diff(idx), 1)
    assert 0 <= idx[0] <= 6
    starts.add(int(idx[0]))
  assert starts == set(range(7))
  np.testing.assert_array_equal(
      sampling.train_flow_indices(tf.constant(0.7), 3, 4).numpy(), [0, 1, 1, 1])


def test_epochs_are_permutations_showing_each_video_f_times():
  n, f = 7, 2
  positions = tf.range(3 * n * f, dtype=tf.int64)
  videos = tf.map_fn(lambda p: sampling.epoch_video(p, n, f, key=5), positions).numpy()
  epochs = videos.reshape(3, n * f)
  for e in epochs:
    np.testing.assert_array_equal(np.bincount(e, minlength=n), [f] * n)
  assert not np.array_equal(epochs[0], epochs[1])  # reshuffled each epoch


def test_group_draws_equal_one_draw_per_position():
  """The training pipeline draws a group of positions at once: the same videos and stacks as one
  call per position (`index_shuffle`'s own wrapper, scalar seed), across an epoch boundary."""
  n, f, key = 7, 2, 5
  positions = tf.range(10, 40, dtype=tf.int64)  # epochs of 14: spans three
  one_by_one = [tf.random.experimental.index_shuffle(p % (n * f), tf.stack([tf.constant(key, tf.int64), p // (n * f)]),
                                                     tf.constant(n * f - 1, tf.int64)) % n for p in positions]
  np.testing.assert_array_equal(sampling.epoch_video(positions, n, f, key), one_by_one)
  u = tf.random.stateless_uniform([30], [1, 2])
  frames = tf.constant(np.random.default_rng(0).integers(2, 30, 30), tf.int32)
  np.testing.assert_array_equal(
      sampling.train_flow_indices(u, frames, 6),
      [sampling.train_flow_indices(u[i], frames[i], 6) for i in range(30)])
  labels = np.array([0, 0, 1, 2, 2, 2])
  draws = tf.random.stateless_uniform([30, 2], [3, 4])
  np.testing.assert_array_equal(sampling.balanced_video(draws, labels),
                                [sampling.balanced_video(draws[i], labels) for i in range(30)])


def test_apportion():
  assert sampling.apportion(10, [3, 2]) == [6, 4]
  assert sampling.apportion(7, [1, 1, 1]) == [3, 2, 2]
  assert sampling.apportion(256, [9537, 3570]) == [186, 70]  # UCF101 + HMDB51 train1 sizes
  assert sum(sampling.apportion(5, [0.1, 0.2, 0.7])) == 5
  with pytest.raises(ValueError, match='weights'):
    sampling.apportion(4, [0, 0])


def test_process_shares_partition_the_work():
  files = [f'f{i}' for i in range(5)]
  shares = [sampling.process_train_share(files, p, 2) for p in range(2)]
  assert shares == [(['f0', 'f2', 'f4'], 0, 1), (['f1', 'f3'], 0, 1)]
  assert sampling.process_train_share(files[:1], 1, 2) == (['f0'], 1, 2)  # fewer shards: strided
  videos = [sampling.process_videos(7, p, 3) for p in range(3)]
  np.testing.assert_array_equal(np.sort(np.concatenate(videos)), np.arange(7))
  assert [len(v) for v in videos] == [3, 2, 2]
