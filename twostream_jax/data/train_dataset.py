"""The training stream: per process, infinite, batched, prefetched uint8 examples.

Batches (b examples of this process):
  'images'        uint8   [b, P, P, 3] (rgb) or [b, 2L, P, P] (flow planes x_0, y_0, x_1, ...):
                          the crop, cut on the host (P = S, or the largest short side with
                          multi-scale crops: the crop then lies top-left, zero padded)
  'boxes'         int32   [b, 1, 4] (0, 0, h, w): the crop's extent, resized to S on the device;
                          [b, 1, 2] = (0, 0) when every crop is S x S (no resize)
  'flips'         bool    [b, 1]
  'flow_step'     float32 [b]      flow: B / 127.5 of the example's data set
  'jitter'        float32 [b, 3]   rgb with data.color_jitter > 0
  'label', 'dataset_index'  int32 [b]
Example p of a stream is a function of (seed, p) only, so `start_step` resumes exactly.
docs/ARCHITECTURE.md explains sampling, multi-task batches and the per-group reading.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from twostream_jax.data import batch_keys
from twostream_jax.data import data_spec
from twostream_jax.data import dataset_metadata
from twostream_jax.data import pipeline_ops
from twostream_jax.data import random_draws
from twostream_jax.data import record_index
from twostream_jax.data import record_reader
from twostream_jax.data import sampling
from twostream_jax.data import trajectory_stacking
from twostream_jax.data import video_ops

# Uniform numbers drawn per training example, by use; one stateless call draws them for a group.
_U_FRAME, _U_BOX, _U_FLIP, _U_JITTER, _U_BALANCED = 0, slice(1, 3), 3, slice(4, 7), slice(7, 9)
_NUM_UNIFORMS = 9
# Examples sampled and read together: one stateless draw, one vectorised sampling step and one
# Python call of the reader per group (each per-example TF op or Python round trip costs about as
# much as a tenth of a JPEG decode here). Groups start at multiples of it, so the example at a
# stream position is the same whatever position the stream starts from.
_GROUP = 32


def _train_examples(s: data_spec.DataSettings, index: record_index.RecordIndex, bound_px: float, dataset_index: int,
                    start: int, pick, canvas: int, exact: bool) -> tf.data.Dataset:
  """The training examples (module docstring) from stream position `start` on, in groups.

  Positions come in groups of `_GROUP` (group g: positions g G .. g G + G - 1). Per group, one
  step draws the group's numbers (`pick(positions int64 [G], group int64)` gives {'record': int64
  [G], 'u': float32 [G, _NUM_UNIFORMS]}), the frames or fields, crop boxes (from the index's
  frame sizes) and flips, and reads the JPEGs; a second step decodes them and cuts the crops in
  uint8, padded to `canvas` x `canvas` unless `exact` (every box is S x S = the canvas). The device
  resizes, flips and normalises them (`train.device_views`).

  Returns:
    Groups of the batch's keys (`create_train_dataset`), G examples each, except the first group
    (only positions >= `start`) and groups with a damaged record skipped (`skip_corrupt`).
  """
  reader = record_reader.RecordReader(index, pipeline_ops.record_lists(s), skip_corrupt=s.skip_corrupt)
  num_frames = tf.constant(index.num_frames, tf.int32)
  heights, widths = tf.constant(index.heights, tf.int32), tf.constant(index.widths, tf.int32)
  labels = tf.constant(index.labels, tf.int32)
  num_values = 1 if s.modality == 'rgb' else s.num_fields
  num_lists = len(pipeline_ops.record_lists(s))
  channels = 3 if s.modality == 'rgb' else 2 * s.num_fields
  planes = s.modality == 'flow'  # flow: planes as decoded, the device makes them channel-last
  crop_shape = [channels, canvas, canvas] if planes else [canvas, canvas, channels]

  def read(positions):
    sample = pick(positions, positions[0] // _GROUP)
    record, u = sample['record'], sample['u']
    n = tf.gather(num_frames, record)
    if s.modality == 'rgb':
      values = sampling.train_frame_index(u[:, _U_FRAME], n)[:, None]  # [G, 1]
    else:
      values = sampling.train_flow_indices(u[:, _U_FRAME], n, s.num_fields)  # [G, L]
    height, width = tf.gather(heights, record), tf.gather(widths, record)
    if s.multiscale_crop:
      box = video_ops.multiscale_crop_box(u[:, _U_BOX], height, width)
    else:
      box = video_ops.random_crop_box(u[:, _U_BOX], height, width, s.crop_size)
    out = tf.numpy_function(reader.read_batch, [record, values],
                            [tf.string] * num_lists + [tf.bool], stateful=False)
    flip = u[:, _U_FLIP] < 0.5 if s.random_flip else tf.zeros([_GROUP], tf.bool)
    # The crop as tf.slice arguments: begin, size (-1: every channel or plane).
    y0, x0, h, w = tf.unstack(box, axis=1)
    every, zeros = tf.fill([_GROUP], -1), tf.zeros_like(y0)
    if planes:
      begin, size = tf.stack([zeros, y0, x0], 1), tf.stack([every, h, w], 1)
    else:
      begin, size = tf.stack([y0, x0, zeros], 1), tf.stack([h, w, every], 1)
    group = {'jpegs': tuple(tf.ensure_shape(o, [_GROUP, num_values]) for o in out[:-1]),
             'begin': begin, 'size': size,
             # Kept: real positions (the first group may start before `start`), undamaged records.
             'keep': tf.logical_and(positions >= start, tf.ensure_shape(out[-1], [_GROUP])),
             # (y0, x0) only when every box is S x S: the device then slices instead of resizing.
             batch_keys.BOXES: (tf.zeros([_GROUP, 1, 2], tf.int32) if exact
                        else tf.stack([zeros, zeros, h, w], 1)[:, None]),
             batch_keys.FLIPS: flip[:, None], 'label': tf.gather(labels, record),
             'dataset_index': tf.fill([_GROUP], dataset_index)}
    if s.modality == 'flow':
      group[batch_keys.FLOW_STEP] = tf.fill([_GROUP], pipeline_ops.flow_step(bound_px))
    elif s.color_jitter > 0:
      group[batch_keys.JITTER] = 1.0 - s.color_jitter + 2.0 * s.color_jitter * u[:, _U_JITTER]
    return group

  def crop(jpegs, begin, size):
    """One example's JPEGs -> its uint8 crop `crop_shape`."""
    if s.modality == 'rgb':
      out = tf.slice(video_ops.decode_frame(jpegs[0][0]), begin, size)
    elif s.trajectory:
      # On the whole field, before the crop: trajectories may leave the crop.
      fields = video_ops.decode_flow_fields_quantised(*pipeline_ops.stack_jpegs(s, jpegs))  # [2L, H, W]
      out = tf.slice(trajectory_stacking.trajectory_stack_quantised(
          tf.ensure_shape(fields, [channels, None, None]), bound_px), begin, size)
    else:  # only the crop's window of each plane is decoded (less CPU per example)
      window = tf.concat([begin[1:], size[1:]], 0)
      out = video_ops.decode_flow_fields_quantised(*pipeline_ops.stack_jpegs(s, jpegs), crop_window=window)
    if exact:
      return tf.ensure_shape(out, crop_shape)
    return pipeline_ops.pad_to(tf.ensure_shape(out, [channels, None, None] if planes else [None, None, channels]),
                   canvas, canvas, planes=planes)

  def decode(group):
    jpegs, begin, size, keep = (group.pop(k) for k in ('jpegs', 'begin', 'size', 'keep'))
    if s.skip_corrupt:  # a skipped record's JPEGs are empty: not decoded
      body = lambda a: tf.cond(a[3], lambda: crop(*a[:3]), lambda: tf.zeros(crop_shape, tf.uint8))
      args = (jpegs, begin, size, keep)
    else:
      body, args = lambda a: crop(*a), (jpegs, begin, size)
    group[batch_keys.IMAGES] = tf.map_fn(body, args, fn_output_signature=tf.TensorSpec(crop_shape, tf.uint8))
    return tf.cond(tf.reduce_all(keep), lambda: group,
                   lambda: {k: tf.boolean_mask(v, keep) for k, v in group.items()})

  first = start // _GROUP * _GROUP
  groups = tf.data.Dataset.counter(first, dtype=tf.int64).batch(_GROUP)
  groups = groups.map(read, num_parallel_calls=pipeline_ops.parallelism(s), deterministic=True)
  return groups.map(decode, num_parallel_calls=pipeline_ops.parallelism(s), deterministic=True)


def _train_index(data_dir: str, metadata: dataset_metadata.DatasetMetadata, split: str, process_index: int,
                 process_count: int) -> tuple[record_index.RecordIndex, np.ndarray]:
  """The index of the shards one process reads, and the records it trains on."""
  files, first, stride = sampling.process_train_share(metadata.shard_files(data_dir, split),
                                                      process_index, process_count)
  index = record_index.index_records(files)
  pipeline_ops.check_records(index, metadata)
  mine = np.arange(first, len(index), stride, dtype=np.int64)
  # Held-out validation videos (data.val_split='heldout') never enter the training stream.
  excluded = metadata.excluded_from_training(split)
  mine = mine[np.array([index.video_ids[r] not in excluded for r in mine], bool)] if excluded else mine
  if mine.size == 0:
    raise dataset_metadata.DatasetError(f'{data_dir}: split {split!r} has no videos for process {process_index} '
                          f'of {process_count}')
  return index, mine


def _train_stream(s: data_spec.DataSettings, index: record_index.RecordIndex, mine: np.ndarray, metadata: dataset_metadata.DatasetMetadata,
                  *, dataset_index: int, examples_per_batch: int, seed: int, start_step: int,
                  process_index: int, canvas: int, exact: bool) -> tf.data.Dataset:
  """The example stream of one data set on one process from step `start_step` on, in groups
  (`_train_examples`)."""
  epoch_key, uniform_key = (sampling.stream_key(seed, purpose, dataset_index, process_index)
                            for purpose in range(2))
  mine_t, mine_labels = tf.constant(mine), index.labels[mine]

  def at_positions(positions, group):
    """Positions int64 [G] of group `group` -> their records and uniform numbers."""
    u = tf.reshape(random_draws.uniforms(tf.stack([tf.constant(uniform_key, tf.int64), group]),
                                         _GROUP * _NUM_UNIFORMS), [_GROUP, _NUM_UNIFORMS])
    if s.class_balanced:
      j = sampling.balanced_video(u[:, _U_BALANCED], mine_labels)
    else:
      j = sampling.epoch_video(positions, len(mine), s.frames_per_video, epoch_key)
    return {'record': tf.gather(mine_t, j), 'u': u}

  return _train_examples(s, index, metadata.flow_bound_px, dataset_index,
                         start_step * examples_per_batch, at_positions, canvas, exact)


def create_train_dataset(spec: data_spec.DataSpec, *, global_batch_size: int, seed: int,
                         start_step: int = 0, process_index: int = 0,
                         process_count: int = 1) -> tf.data.Dataset:
  """The infinite training stream of this process (module docstring).

  Args:
    spec: the run's data.
    global_batch_size: examples per step over all processes.
    seed: the run seed; the same seed gives the same batches.
    start_step: first step to yield (resumption: equals skipping that many batches).
    process_index, process_count: this process and the number of processes.

  Returns:
    Batches of b = global_batch_size / process_count examples (module docstring).
  """
  s = spec.settings
  batch = pipeline_ops.local_batch_size(global_batch_size, process_index, process_count)
  if start_step < 0:
    raise data_spec.InputConfigError(f'start_step must be >= 0, got {start_step}')
  parts = sampling.apportion(batch, spec.training_mix())
  if min(parts) == 0:
    raise data_spec.InputConfigError(
        f'a per-process batch of {batch} gives data sets {parts} examples per batch: raise the '
        'batch size or change data.mix_weights so that each data set gets at least one')
  indices = [_train_index(d, m, spec.train_split, process_index, process_count)
             for d, m in zip(spec.data_dirs, spec.metadatas)]
  canvas, exact = _train_canvas(s, [index for index, _ in indices])
  streams = [_train_stream(s, index, mine, m, dataset_index=i, examples_per_batch=parts[i],
                           seed=seed, start_step=start_step, process_index=process_index,
                           canvas=canvas, exact=exact)
             for i, ((index, mine), m) in enumerate(zip(indices, spec.metadatas))]
  # Each stream's groups rebatched to its share; a batch holds the data sets' shares in order.
  streams = [x.rebatch(part, drop_remainder=True) for x, part in zip(streams, parts)]
  if len(streams) == 1:
    ds = streams[0]
  else:
    ds = tf.data.Dataset.zip(tuple(streams)).map(
        lambda *shares: {k: tf.concat([x[k] for x in shares], 0) for k in shares[0]},
        num_parallel_calls=pipeline_ops.AUTOTUNE, deterministic=True)
  return ds.prefetch(2).with_options(pipeline_ops.deterministic_options())


def _train_canvas(s: data_spec.DataSettings, indices: Sequence[record_index.RecordIndex]) -> tuple[int, bool]:
  """(P, exact): the side of the uint8 crops of training batches, and whether every box is P x P.

  P = S for the paper's crop (its side is min(S, H, W) <= S), or the largest box a multi-scale crop
  cuts (the largest short side).
  """
  smallest = min(int(np.min(np.minimum(ix.heights, ix.widths))) for ix in indices)
  if not s.multiscale_crop:
    return s.crop_size, smallest >= s.crop_size
  largest = max(int(np.max(np.minimum(ix.heights, ix.widths))) for ix in indices)
  return max(s.crop_size, largest), False


