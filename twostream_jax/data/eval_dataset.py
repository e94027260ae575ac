"""The test protocol's stream: K positions x C crops per video, each JPEG decoded and sent once.

Per video, K equally spaced frames or flow stacks (`sampling`), each giving C crops (centre and
corners, and their flips for C = 10). An element is one video: its bank (each frame, or each flow
field's x and y planes, that its K positions use, decoded once, padded to the split's largest bank
and frame), the rows of the bank each position uses, and the C boxes and flips; the device stacks
the positions and cuts the K x C views (`train.device_views`). Video v of the split goes to process
v mod P; every process pads to the same number of batches with masked videos.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from twostream_jax.data import batch_keys
from twostream_jax.data import data_spec
from twostream_jax.data import dataset_metadata
from twostream_jax.data import pipeline_ops
from twostream_jax.data import protocol_positions
from twostream_jax.data import protocol_views
from twostream_jax.data import record_index
from twostream_jax.data import record_reader
from twostream_jax.data import sampling
from twostream_jax.data import trajectory_stacking
from twostream_jax.data import video_ops

def _num_video_batches(num_videos: int, batch: int, process_count: int) -> int:
  most_videos = -(-num_videos // process_count)
  return -(-most_videos // batch)


def _eval_videos(metadata: dataset_metadata.DatasetMetadata, split: str, max_videos: int) -> int:
  if max_videos < 0:
    raise data_spec.InputConfigError(f'max_videos must be >= 0, got {max_videos}')
  n = metadata.num_videos(split)
  return min(n, max_videos) if max_videos else n


def _remaining_videos(num_videos: int, skip_videos: Sequence[int]) -> np.ndarray:
  """The split's video indices [0, num_videos) not in `skip_videos`, ascending (int64)."""
  skip = np.asarray(skip_videos, np.int64).reshape(-1)
  if skip.size and (skip.min() < 0 or skip.max() >= num_videos):
    raise data_spec.InputConfigError(f'skip_videos must lie in [0, {num_videos}), got '
                                     f'{skip.min()}..{skip.max()}')
  return np.setdiff1d(np.arange(num_videos, dtype=np.int64), skip)


def num_eval_batches(spec: data_spec.DataSpec, *, split: str, global_batch_size: int,
                     process_count: int = 1, max_videos: int = 0, dataset_index: int = 0,
                     skip_videos: Sequence[int] = ()) -> int:
  """Batches `create_eval_dataset` yields on every process (from the metadata, no reading).

  `global_batch_size` counts videos, as in `create_eval_dataset`.
  """
  batch = pipeline_ops.local_batch_size(global_batch_size, 0, process_count)
  num_videos = _eval_videos(spec.metadatas[dataset_index], split, max_videos)
  return _num_video_batches(len(_remaining_videos(num_videos, skip_videos)), batch, process_count)


def _bank_size(s: data_spec.DataSettings, num_frames: Sequence[int], k: int) -> int:
  """F: the planes (flow) or frames (RGB) of the largest bank among videos of these frame counts.

  A video's bank holds each item its K positions use once (`create_eval_dataset`).
  """
  if s.trajectory:
    return k * 2 * s.num_fields  # trajectories are made per stack on the host: no sharing
  most = 1
  for n in sorted(set(int(x) for x in num_frames)):
    if s.modality == 'rgb':
      used = np.unique(protocol_positions.frame_indices(n, k)).size
    else:
      used = np.unique(protocol_positions.flow_indices(n, k, s.num_fields)).size
    most = max(most, used)
  if s.modality == 'rgb':
    return most
  return (4 if s.direction == 'bidirectional' else 2) * most


def _records_by_video(index: record_index.RecordIndex, video_ids: Sequence[str], data_dir: str,
                      split: str) -> np.ndarray:
  position = {}
  for r, v in enumerate(index.video_ids):
    if v in position:
      raise record_index.RecordIndexError(f'{data_dir}: video {v!r} is stored twice in split {split!r} '
                                f'({index.describe(position[v])} and {index.describe(r)}); rebuild')
    position[v] = r
  missing = [v for v in video_ids if v not in position]
  if missing or len(position) != len(video_ids):
    raise record_index.RecordIndexError(
        f'{data_dir}: the shards of split {split!r} hold {len(position)} videos, the metadata '
        f'lists {len(video_ids)}' + (f' (e.g. {missing[0]!r} is missing)' if missing else '') +
        ': the folder is incomplete or was modified; rebuild it with tools/make_tfrecords.py')
  return np.array([position[v] for v in video_ids], np.int64)


def _decode_slots(decode, slots: tf.Tensor, item_shape: Sequence[int]) -> tf.Tensor:
  """Decodes the non-empty JPEGs of `slots` (tf.string [n]; b'': none) in one loop.

  Returns:
    uint8 [n, *item_shape]: `decode(jpeg)` at each non-empty slot, zeros at the empty ones
    (padding videos, banks smaller than the largest). The loop writes each decoded item at its
    slot of a TensorArray, whose stack is zeros where nothing was written: no branch per slot (a
    `tf.cond` per slot slowed the eval pipeline measurably).
  """
  real = tf.cast(tf.where(tf.strings.length(slots) > 0)[:, 0], tf.int32)
  num_real = tf.size(real)
  items = tf.TensorArray(tf.uint8, size=tf.size(slots), element_shape=item_shape)

  def body(j, items):
    slot = real[j]
    return j + 1, items.write(slot, decode(tf.gather(slots, slot)))

  _, items = tf.while_loop(lambda j, _: j < num_real, body, (0, items))
  return items.stack()


def _eval_videos_table(s: data_spec.DataSettings, index: record_index.RecordIndex, records: np.ndarray, video_indices: np.ndarray,
                       k: int, num_crops: int, total: int, no_resize: bool) -> dict:
  """The host's table of the test videos of a process, padded to `total` with masked videos.

  Per video: 'record' int64 (-1: padding); 'items' int64 [U]: the frames (RGB) or fields (flow)
  its K positions use, each once, ascending (-1: none; U the largest count); 'rows' int32 [K] or
  [K, 2L]: each position's frame, or its stack's planes, in the bank the pipeline decodes from
  the items (flow: x_u, y_u at 2u, 2u + 1; bi-directional: the backward fields' planes from 2U);
  trajectory stacks also 'field_rows' int32 [K, 2L] (the stacks' planes in that decoded layout;
  the bank is then the K stacks, 'rows' 0 .. K 2L - 1) and 'size' int32 [2] (the frame);
  'boxes' int32 [C, 4] (or [C, 2]: corners), 'flips' bool [C], 'label' int32, 'video_index' int32
  (-1: padding), 'mask' float32.
  """
  n = len(records)
  per_video = []
  for r in records:
    if s.modality == 'rgb':
      used = protocol_positions.frame_indices(int(index.num_frames[r]), k)  # [K]
    else:
      used = protocol_positions.flow_indices(int(index.num_frames[r]), k, s.num_fields)  # [K, L]
    per_video.append((np.unique(used), used))
  width = max([len(u) for u, _ in per_video], default=1)
  trajectory = s.trajectory
  rows_shape = [k] if s.modality == 'rgb' else [k, 2 * s.num_fields]
  table = {'record': np.full(total, -1, np.int64), 'items': np.full((total, width), -1, np.int64),
           'rows': np.zeros([total] + rows_shape, np.int32),
           'label': np.zeros(total, np.int32), 'video_index': np.full(total, -1, np.int32),
           'mask': np.zeros(total, np.float32)}
  if trajectory:
    table['field_rows'] = np.zeros([total] + rows_shape, np.int32)
    table['size'] = np.tile(np.array([[int(np.max(index.heights[records], initial=1)),
                                       int(np.max(index.widths[records], initial=1))]], np.int32),
                            [total, 1])
  for i, (r, (unique, used)) in enumerate(zip(records, per_video)):
    table['record'][i], table['items'][i, :len(unique)] = r, unique
    table['label'][i], table['video_index'][i], table['mask'][i] = index.labels[r], video_indices[i], 1
    place = np.searchsorted(unique, used)
    if s.modality == 'rgb':
      table['rows'][i] = place
      continue
    first = 2 * place  # [K, L]: the plane of each field's x
    if s.direction == 'bidirectional':  # the first L/2 fields of each stack are backward ones
      first[:, :s.num_fields // 2] += 2 * width
    planes = np.stack([first, first + 1], -1).reshape(rows_shape)
    if trajectory:
      table['field_rows'][i] = planes
      table['rows'][i] = np.arange(k * 2 * s.num_fields).reshape(rows_shape)
      table['size'][i] = index.heights[r], index.widths[r]
    else:
      table['rows'][i] = planes
  # Crops: per frame size, once.
  table['boxes'] = np.zeros((total, num_crops, 2 if no_resize else 4), np.int32)
  if not no_resize:
    table['boxes'][:] = [0, 0, 1, 1]  # padding videos: any valid box
  for size in {(int(index.heights[r]), int(index.widths[r])) for r in records}:
    boxes = protocol_views.crop_boxes(*size, s.crop_size, num_crops)[0]
    mine = (index.heights[records] == size[0]) & (index.widths[records] == size[1])
    table['boxes'][:n][mine] = boxes[:, :table['boxes'].shape[2]]
  flips = protocol_views.crop_boxes(1, 1, s.crop_size, num_crops)[1]  # any size: the same
  table['flips'] = np.tile(flips[None], [total, 1])
  table['flips'][n:] = False
  return table


def _trajectory_bank(fields: tf.Tensor, field_rows: tf.Tensor, size: tf.Tensor, bound_px: float,
                     bank_shape: Sequence[int]) -> tf.Tensor:
  """A video's trajectory stacks as its bank.

  Args:
    fields: uint8 [2U, Hc, Wc]: the planes of the fields its stacks use, on the canvas.
    field_rows: int32 [K, 2L]: each stack's planes in `fields`.
    size: int32 [2]: the video's frame (h, w) in the canvas.

  Returns:
    uint8 `bank_shape` = [K 2L, Hc, Wc]: the K stacks' planes (`trajectory_stacking`), padded.
  """
  stacks = tf.gather(fields, field_rows)[:, :, :size[0], :size[1]]  # [K, 2L, h, w]
  channels = field_rows.shape[1]
  stacks = tf.map_fn(lambda q: trajectory_stacking.trajectory_stack_quantised(q, bound_px),
                     tf.ensure_shape(stacks, [None, channels, None, None]),
                     fn_output_signature=tf.TensorSpec([channels, None, None], tf.uint8))
  planes = tf.reshape(stacks, tf.concat([[-1], tf.shape(stacks)[2:]], 0))
  return tf.ensure_shape(pipeline_ops.pad_to(planes, bank_shape[1], bank_shape[2], planes=True), bank_shape)


def create_eval_dataset(spec: data_spec.DataSpec, *, split: str, num_frames: int, num_crops: int,
                        global_batch_size: int, process_index: int = 0, process_count: int = 1,
                        max_videos: int = 0, dataset_index: int = 0,
                        skip_videos: Sequence[int] = ()) -> tf.data.Dataset:
  """The test protocol's videos of this process, padded (module docstring).

  One element per video: the frames or flow planes its K test positions use, each decoded once
  and sent once (its bank), which positions use which (rows), and the boxes and flips of the C
  crops; the device stacks and cuts the K x C views (`train.device_views`).

  Args:
    spec: the run's data.
    split: e.g. 'test1'.
    num_frames: K, frames or flow stacks per video (the paper: 25).
    num_crops: C, crops per frame: 1 (centre), 2 (centre and its flip), 5 (centre + corners) or
      10 (centre + corners and their flips; the paper).
    global_batch_size: videos per batch over all processes (a batch makes global_batch_size x K x
      C views, derived from a view budget by the caller).
    process_index, process_count: this process and the number of processes.
    max_videos: evaluate the first this many videos of the split (0: all).
    dataset_index: which of data.data_dirs to evaluate (default the first).
    skip_videos: indices of the split's videos to leave out (scored by an interrupted run); the
      others keep their `video_index`, and the bank and canvas stay the split's.

  Returns:
    `num_eval_batches(...)` batches of v = global_batch_size / process_count videos:
    'images' uint8 [v, F, Hc, Wc, 3] (rgb: the distinct test frames) or [v, F, Hc, Wc] (flow: the
    distinct quantised planes, x and y of each field the stacks use; bi-directional: the forward
    fields' planes, then the backward ones'), zero padded to the split's largest bank F and
    frame (Hc, Wc); 'rows' int32 [v, K] (rgb: position k's frame in the bank) or [v, K, 2L] (flow:
    the planes of stack k in channel order x_0, y_0, x_1, ...); 'boxes' int32 [v, C, 4] (or [v, C,
    2] corners when every frame's short side is >= S: no resize); 'flips' bool [v, C];
    'flow_step' float32 [v] (flow); 'label' int32 [v]; 'video_index' int32 [v] (-1: padding);
    'mask' float32 [v]; 'dataset_index' int32 [v]. The views of a video follow in position, then
    crop order on the device.
  """
  s = spec.settings
  if num_crops not in protocol_views.TEST_NUM_CROPS or num_frames < 1:
    raise data_spec.InputConfigError(f'the test protocol needs num_frames >= 1 and num_crops in '
                           f'{protocol_views.TEST_NUM_CROPS}, got {num_frames} and {num_crops}')
  batch = pipeline_ops.local_batch_size(global_batch_size, process_index, process_count)
  if not 0 <= dataset_index < len(spec.data_dirs):
    raise data_spec.InputConfigError(
        f'dataset_index {dataset_index} is not one of the {len(spec.data_dirs)} data dirs')
  data_dir, metadata = spec.data_dirs[dataset_index], spec.metadatas[dataset_index]
  num_videos = _eval_videos(metadata, split, max_videos)
  index = record_index.index_records(metadata.shard_files(data_dir, split))
  pipeline_ops.check_records(index, metadata)
  records = _records_by_video(index, metadata.stored_video_ids(split), data_dir,
                              split)[metadata.video_positions(split)][:num_videos]
  remaining = _remaining_videos(num_videos, skip_videos)
  mine = remaining[sampling.process_videos(len(remaining), process_index, process_count)]
  num_batches = _num_video_batches(len(remaining), batch, process_count)
  # Every process pads to the same bank and canvas (the split's largest), so that batches agree.
  bank = _bank_size(s, index.num_frames[records], num_frames)
  canvas_h = int(np.max(index.heights[records], initial=1))
  canvas_w = int(np.max(index.widths[records], initial=1))
  no_resize = bool(np.all(np.minimum(index.heights[records], index.widths[records]) >= s.crop_size))
  bank_shape = [bank, canvas_h, canvas_w] + ([3] if s.modality == 'rgb' else [])
  # Per video (this process's, then padding videos to fill the last batch), on the host: the
  # frames or fields its bank reads, the rows of its positions, its crops.
  videos = _eval_videos_table(s, index, records[mine], mine, num_frames, num_crops,
                              num_batches * batch, no_resize)
  reader = record_reader.RecordReader(index, pipeline_ops.record_lists(s))
  lists = len(pipeline_ops.record_lists(s))
  shared_fields = videos['items'].shape[1]
  item_shape = bank_shape[1:]
  needs_pad = not (np.all(index.heights[records] == canvas_h) and np.all(index.widths[records] == canvas_w))
  trajectory = s.trajectory
  # JPEG slots per video: its bank's items in bank order (trajectory: the fields its stacks use,
  # made into the bank after decoding).
  num_slots = lists * shared_fields if trajectory else bank

  def read(records_, items):
    """int64 [v], [v, U] (-1: none) -> the JPEGs of each video's bank, tf.string [v x slots]
    (b'': none), in bank order: frames; or per direction (forward, then backward) the planes
    x_0, y_0, x_1, ... of its fields. One Python call per batch, and no reordering in TF."""
    out = np.full((len(records_), num_slots), b'', dtype=object)
    for i, (r, row) in enumerate(zip(records_, items)):
      n = int(np.sum(row >= 0))  # the used items come first (`_eval_videos_table`)
      if r < 0 or n == 0:
        continue
      jpegs = reader.read(int(r), row[:n])
      if s.modality == 'rgb':
        out[i, :n] = jpegs[0]
        continue
      for d in range(0, lists, 2):  # planes of direction d // 2 start at slot d x U
        out[i, d * shared_fields:d * shared_fields + 2 * n:2] = jpegs[d]
        out[i, d * shared_fields + 1:d * shared_fields + 2 * n:2] = jpegs[d + 1]
    return out.reshape(-1)

  channels = 3 if s.modality == 'rgb' else 1
  decoded_shape = [canvas_h, canvas_w, channels]  # a flow plane keeps its channel until stacked

  def decode(jpeg):
    """One JPEG -> uint8 `decoded_shape`: a frame or flow plane on the canvas (the loop's
    TensorArray checks the shape: no further op per JPEG)."""
    image = video_ops.decode_jpeg(jpeg, channels)
    return pipeline_ops.pad_to(image, canvas_h, canvas_w, planes=False) if needs_pad else image

  def read_batch(videos_):
    """A batch of v videos' host table -> the same with 'jpegs' (`read`), in one Python call."""
    jpegs = tf.numpy_function(read, [videos_['record'], videos_['items']], tf.string,
                              stateful=False)
    return {**videos_, 'jpegs': tf.ensure_shape(jpegs, [None])}

  def load(videos_):
    """A batch's table and JPEGs -> the batch: each bank decoded once, in one loop (the loop's
    stack is the batch: no copy by a batch op)."""
    v = tf.shape(videos_['record'])[0]
    items = tf.reshape(_decode_slots(decode, videos_['jpegs'], decoded_shape),
                       tf.concat([[v, -1], item_shape], 0))
    out = {k: x for k, x in videos_.items()
           if k not in ('record', 'items', 'field_rows', 'size', 'jpegs')}
    if trajectory:  # the bank: each stack made along trajectories, on the host
      items = tf.map_fn(
          lambda a: _trajectory_bank(a[0], a[1], a[2], metadata.flow_bound_px, bank_shape),
          (items, videos_['field_rows'], videos_['size']),
          fn_output_signature=tf.TensorSpec(bank_shape, tf.uint8))
    out[batch_keys.IMAGES] = tf.ensure_shape(items, [None] + bank_shape)
    out['dataset_index'] = tf.fill([v], dataset_index)
    if s.modality == 'flow':
      out[batch_keys.FLOW_STEP] = tf.fill([v], pipeline_ops.flow_step(metadata.flow_bound_px))
    return out

  ds = tf.data.Dataset.from_tensor_slices(videos).batch(batch, drop_remainder=True)
  # Reading is a stage ahead of decoding, so that a decoding call never waits for Python's lock.
  ds = ds.map(read_batch, num_parallel_calls=pipeline_ops.parallelism(s), deterministic=True)
  ds = ds.map(load, num_parallel_calls=pipeline_ops.parallelism(s), deterministic=True)
  ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches)).prefetch(2)
  return ds.with_options(pipeline_ops.deterministic_options())
