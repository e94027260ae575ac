"""Which video, which frames: the sampling rules of training and of the test protocol.

Training: example p of a stream is a pure function of (seed, p), so a stream restarted at p yields
what the uninterrupted stream yields from p on. Videos are drawn uniformly (epochs of n * F
examples, a stateless permutation per epoch) or class-balanced (the paper); frames and augmentation
come from stateless draws seeded by (key, p) (`stream_key`). One frame t ~ U{0..N-1} for RGB; a
stack of L flow fields starting at t ~ U{0..max(M - L, 0)} of the M = N - 1 fields, indices
clamped to M - 1 for short videos.

Test protocol (paper: "25 frames with equal temporal spacing"): K views of s items (s = 1 for RGB,
L for flow) over T items start at round-half-up of linspace(0, T - s, K), computed in integers.

Processes: see `process_records` and `process_videos`. Rules and formulas: docs/design_notes.md.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from twostream_jax.data.random_draws import uniform_int


def stream_key(seed: int, *parts: int) -> int:
  """A 31-bit key for one purpose of one stream, from the run seed and identifying integers."""
  state = np.random.SeedSequence([int(seed) % 2**32] + [int(p) for p in parts]).generate_state(1)
  return int(state[0] & 0x7FFFFFFF)


def train_frame_index(u: tf.Tensor, num_frames: tf.Tensor) -> tf.Tensor:
  """Uniform frame indices in [0, N) (int32, the shape of u) from uniforms u in [0, 1)."""
  return uniform_int(u, num_frames)


def train_flow_indices(u: tf.Tensor, num_frames: tf.Tensor, num_fields: int) -> tf.Tensor:
  """L consecutive field indices from a uniform start (u in [0, 1)), clamped to the M = N - 1 fields.

  Args:
    u, num_frames: scalars, or `[G]` (one stack per entry).

  Returns:
    int32 `[L]`, or `[G, L]`.
  """
  num_flow = tf.cast(num_frames, tf.int32) - 1
  start = uniform_int(u, tf.maximum(num_flow - num_fields, 0) + 1)
  return tf.minimum(start[..., None] + tf.range(num_fields), num_flow[..., None] - 1)


# The first seed word `tf.random.experimental.index_shuffle` adds to a [2] seed (its raw op takes 3).
_INDEX_SHUFFLE_SEED_PAD = 498247692


def epoch_video(position: tf.Tensor, num_videos: int, frames_per_video: int, key: int) -> tf.Tensor:
  """Video (in [0, n)) shown at stream positions in uniform mode; int64, the shape of `position`
  (a scalar, or `[G]`: a group may span two epochs, each entry is shuffled with its own epoch).

  Equals `tf.random.experimental.index_shuffle(position % nF, (key, epoch), nF - 1) % n` per entry,
  whose wrapper takes a single [2] seed only.
  """
  position = tf.convert_to_tensor(position, tf.int64)
  epoch_size = num_videos * frames_per_video
  epoch = position // epoch_size
  seed = tf.stack([tf.fill(tf.shape(epoch), tf.constant(_INDEX_SHUFFLE_SEED_PAD, tf.int64)),
                   tf.fill(tf.shape(epoch), tf.constant(key, tf.int64)), epoch], axis=-1)
  slot = tf.raw_ops.RandomIndexShuffle(
      index=position % epoch_size, seed=seed,
      max_index=tf.fill(tf.shape(position), tf.constant(epoch_size - 1, tf.int64)), rounds=4)
  return slot % num_videos


def balanced_video(u: tf.Tensor, labels: np.ndarray) -> tf.Tensor:
  """Class-balanced draw: a class uniformly among those in `labels`, then one of its videos.

  Args:
    u: float32 `[..., 2]` uniform numbers in [0, 1) of each position.
    labels: int `[n]`, label of each video of the stream.

  Returns:
    int64 `[...]` in [0, n).
  """
  classes, counts = np.unique(labels, return_counts=True)
  members = np.argsort(labels, kind='stable')
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  c = uniform_int(u[..., 0], len(classes))
  m = uniform_int(u[..., 1], tf.gather(tf.constant(counts, tf.int32), c))
  return tf.gather(tf.constant(members, tf.int64), tf.gather(tf.constant(starts, tf.int32), c) + m)


def apportion(total: int, weights: Sequence[float]) -> list[int]:
  """Splits `total` into integer parts proportional to `weights` (largest remainder, ties to the first)."""
  w = np.asarray(weights, np.float64)
  if len(w) == 0 or np.any(w < 0) or w.sum() <= 0:
    raise ValueError(f'mixing weights must be non-negative with a positive sum, got {list(weights)}')
  exact = total * w / w.sum()
  parts = np.floor(exact).astype(int)
  order = np.argsort(-(exact - parts), kind='stable')
  parts[order[:total - parts.sum()]] += 1
  return [int(p) for p in parts]


def process_train_share(files: Sequence[str], process_index: int,
                        process_count: int) -> tuple[list[str], int, int]:
  """The training records of one process: whole shards when there are enough, else every P-th record.

  Returns:
    (shards to index, first, stride): the process's records are records first, first + stride, ...
    of the index of those shards.
  """
  files = list(files)
  if len(files) >= process_count:
    return files[process_index::process_count], 0, 1
  return files, process_index, process_count


def process_videos(num_videos: int, process_index: int, process_count: int) -> np.ndarray:
  """Test videos of one process: video v goes to process v mod P (counts differ by at most one)."""
  return np.arange(process_index, num_videos, process_count, dtype=np.int64)
