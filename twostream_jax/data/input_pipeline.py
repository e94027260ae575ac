"""tf.data input pipeline: spatial and temporal training streams and the paper's test protocol.

Configuration: the `data` section of the config (configs/default.py documents every key); the
caller passes `config.data`. TensorFlow only: no JAX here (the caller passes
`jax.process_index()` / `jax.process_count()`).

What the device gets. Batches hold uint8 pixels and a few numbers per example; the float network
inputs are made inside the jitted steps (`train.device_views`, which documents the keys of
`data.batch_keys`), so a temporal example moves 224 x 224 x 20 bytes, not 4x that in float32.

Training (`create_train_dataset`), per process, infinite, batched, prefetched. Elements:
  'images'        uint8   [b, P, P, 3] (rgb) or [b, 2L, P, P] (flow planes x_0, y_0, x_1, ...):
                          the crop, cut on the host; P = S unless multi-scale crops (then the
                          largest short side: the crop lies at the top-left, zero padded)
  'boxes'         int32   [b, 1, 4]      (0, 0, h, w): the crop's extent, resized to S on the device;
                          [b, 1, 2] = (0, 0) when every crop is S x S (the paper's crop of frames
                          with a short side >= S): no resize
  'flips'         bool    [b, 1]
  'flow_step'     float32 [b]            flow: B / 127.5 of the example's data set
  'jitter'        float32 [b, 3]         rgb with data.color_jitter > 0: the three factors
  'label'         int32   [b]            class index in the example's own data set
  'dataset_index' int32   [b]            which of data.data_dirs the example comes from
  * RGB (spatial): one random frame per example; the paper's random S x S crop of the whole frame
    (or TSN multi-scale corner cropping, `data.multiscale_crop`), horizontal flip, colour jitter,
    normalisation ('imagenet' mean/std for torchvision weights, or 'unit' = [0, 1]): the crop here,
    the rest on the device.
  * Flow (temporal): L consecutive flow fields from a random start, stacked as 2L planes (the
    device makes them [S, S, 2L]); one crop and one flip for all channels (x negated on flip), flow
    scaled by any resize, mean flow subtraction per field ('per_field') or none. Videos with fewer
    than L + 1 frames repeat their last field (`sampling`).
  * Sampling (`sampling`): epochs of stateless permutations of the process's videos (each video
    `data.frames_per_video` times per epoch, each time with its own random frame), or
    class-balanced draws with replacement (`data.class_balanced`: a class uniformly, then one of
    its videos; no epochs, so `frames_per_video` has no effect). No shuffle buffer: random access
    to records makes a shuffle buffer unnecessary.
  * Several data sets (`data.data_dirs` = 'a,b'): every batch holds a fixed number of examples of
    each, proportional to `data.mix_weights` (default: the sizes of their training splits), in a
    fixed order within the batch (largest-remainder apportionment; each data set needs at least
    one example per batch). Labels stay per data set; 'dataset_index' tells which head.
  * Exact resumption: example p of a stream is a function of (seed, p) only (video, frames, crop,
    flip, jitter), so `start_step=s` starts each stream at position s * (its examples per batch)
    and yields exactly the batches an uninterrupted stream yields from step s, reading nothing
    before it.
  * Processes: with at least as many shards as processes, process i reads shards i, i + P, ...;
    otherwise every process indexes all shards and reads every P-th record. The global batch is
    split evenly (global % P must be 0).

  * Held-out validation (`data.val_split='heldout'`): the videos of `dataset_metadata`'s 'heldout'
    split are left out of the training stream.

Test protocol (`create_eval_dataset`), finite. Per video, K equally spaced frames or flow stacks
(`sampling.test_view_starts`: start_k = round-half-up(k (T - s) / (K - 1))), each giving C crops
(`video_ops.test_crop_boxes`: centre, top-left, top-right, bottom-left, bottom-right, then the same
flipped for C = 10; centre (and its flip) for C = 1 (2)); crops are S x S boxes of the stored
frame, not resized. An element is one video: its bank (each frame, or each flow field's x and y
planes, that its K positions use, decoded once, uint8, as stored, padded to the split's largest
bank and frame), the rows of the bank each position uses, and the C boxes and flips. The device
stacks the positions and cuts the K x C views (`train.device_views`), so each JPEG of a video is
decoded once and sent once: a 40-frame video's 25 overlapping stacks of L = 10 use 39 distinct
fields (78 planes), not 25 x 20 = 500. Views are ordered by video, then position k, then crop c.
Video v of the split (index in `metadata.video_ids(split)`, first `max_videos` if > 0) goes to
process v mod P; each process pads its videos with masked copies to `num_eval_batches(...)`
batches, the same count on every process. Elements add 'video_index' int32 (-1 for padding) and
'mask' float32 (1 real, 0 padding).

Reading (`record_index`): shards are indexed once per dataset creation (a cheap pass over record
headers), and only the sampled frames / flow fields of a video are read and decoded; a record is
never read whole. Decoding runs `data.decode_parallelism` calls in parallel (0: AUTOTUNE).
Per-example work is batched, because each tf.data stage or Python round trip per example costs
about a tenth of a JPEG decode: training draws, samples, cuts boxes and reads the JPEGs of 32
stream positions at a time and decodes them in one loop; evaluation reads a batch's JPEGs in one
Python call, already in the order of its banks (a stage ahead of decoding), and decodes them in one
loop straight into the batch.

Errors: a missing folder, an unknown split, records of another format version
(`dataset_metadata.DatasetError`), damaged or foreign shards (`record_index.RecordIndexError`,
naming the file), a damaged JPEG found while iterating (`record_index.CorruptRecordError` from
`numpy_batches`, one line naming file, record, video and frame; training skips such records with
`data.skip_corrupt_records`), and bad configuration values (`InputConfigError`).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf

from twostream_jax.data import batch_keys as bk
from twostream_jax.data import dataset_metadata as dm
from twostream_jax.data import random_draws
from twostream_jax.data import record_index as ri
from twostream_jax.data import record_schema as rf
from twostream_jax.data import sampling
from twostream_jax.data import trajectory_stacking
from twostream_jax.data import video_ops

MODALITIES = ('rgb', 'flow')
FLOW_DIRECTIONS = ('forward', 'bidirectional')
# The metadata `extra` key that says a records folder also holds backward flow.
BACKWARD_FLOW_KEY = rf.BACKWARD_FLOW_METADATA_KEY
_AUTOTUNE = tf.data.AUTOTUNE


class InputConfigError(ValueError):
  """A `config.data` value the pipeline cannot use."""


@dataclasses.dataclass(frozen=True)
class _Settings:
  """The validated `config.data` keys that shape examples."""
  modality: str
  num_fields: int
  mean_subtraction: str
  crop_size: int
  multiscale_crop: bool
  random_flip: bool
  color_jitter: float
  normalization: str
  frames_per_video: int
  class_balanced: bool
  parallelism: int
  skip_corrupt: bool
  stacking: str = 'optical_flow'
  direction: str = 'forward'

  @property
  def trajectory(self) -> bool:
    """Flow stacked along trajectories (`data.stacking` has no effect on RGB)."""
    return self.modality == 'flow' and self.stacking == 'trajectory'


def _settings(data_config) -> _Settings:
  c = data_config
  s = _Settings(modality=c.modality, num_fields=int(c.num_flow_fields),
                mean_subtraction=c.flow_mean_subtraction, crop_size=int(c.crop_size),
                multiscale_crop=bool(c.multiscale_crop), random_flip=bool(c.random_flip),
                color_jitter=float(c.color_jitter), normalization=c.normalization,
                frames_per_video=int(c.frames_per_video), class_balanced=bool(c.class_balanced),
                parallelism=int(c.decode_parallelism) or _AUTOTUNE,
                skip_corrupt=bool(c.skip_corrupt_records), stacking=c.stacking,
                direction=c.flow_direction)
  checks = [
      (s.direction in FLOW_DIRECTIONS,
       f'data.flow_direction must be one of {FLOW_DIRECTIONS}, got {s.direction!r}'),
      (s.direction == 'forward' or s.modality == 'rgb' or s.num_fields % 2 == 0,
       f'data.flow_direction=bidirectional needs an even data.num_flow_fields (L/2 backward and '
       f'L/2 forward fields), got {s.num_fields}'),
      (s.direction == 'forward' or s.stacking == 'optical_flow',
       'data.stacking=trajectory follows forward flow only: use data.flow_direction=forward'),
      (s.stacking in trajectory_stacking.STACKINGS,
       f'data.stacking must be one of {trajectory_stacking.STACKINGS}, got {s.stacking!r}'),
      (s.modality in MODALITIES, f'data.modality must be one of {MODALITIES}, got {s.modality!r}'),
      (s.num_fields >= 1, f'data.num_flow_fields must be >= 1, got {s.num_fields}'),
      (s.mean_subtraction in video_ops.MEAN_SUBTRACTIONS,
       f'data.flow_mean_subtraction must be one of {video_ops.MEAN_SUBTRACTIONS}, got {s.mean_subtraction!r}'),
      (s.crop_size >= 1, f'data.crop_size must be >= 1, got {s.crop_size}'),
      (0.0 <= s.color_jitter < 1.0, f'data.color_jitter must be in [0, 1), got {s.color_jitter}'),
      (s.normalization in video_ops.NORMALIZATIONS,
       f'data.normalization must be one of {video_ops.NORMALIZATIONS}, got {s.normalization!r}'),
      (s.frames_per_video >= 1, f'data.frames_per_video must be >= 1, got {s.frames_per_video}'),
      (int(c.decode_parallelism) >= 0,
       f'data.decode_parallelism must be >= 0 (0: AUTOTUNE), got {c.decode_parallelism}'),
  ]
  for ok, message in checks:
    if not ok:
      raise InputConfigError(message)
  return s


def data_dirs(data_config) -> list[str]:
  """The records folders of `data.data_dirs` (comma-separated)."""
  dirs = [d.strip() for d in str(data_config.data_dirs).split(',') if d.strip()]
  if not dirs:
    raise InputConfigError('data.data_dirs is empty: set --config.data.data_dirs=<records folder> '
                           '(a folder written by tools/make_tfrecords.py; comma-separate several '
                           'for multi-task training)')
  return dirs


def load_dataset_metadata(data_config) -> list[dm.DatasetMetadata]:
  """Metadata of each folder of `data.data_dirs`, in order (raises DatasetError for a bad folder),
  with split 'heldout' when `data.val_split` is 'heldout' (`dm.with_val_split`).

  Also refuses, naming the folder, a data set without backward flow when the config asks for
  bi-directional flow stacks.
  """
  metadatas = [dm.with_val_split(dm.load_metadata(d), data_config.train_split, data_config.val_split,
                                 float(data_config.heldout_fraction)) for d in data_dirs(data_config)]
  if data_config.modality == 'flow' and data_config.flow_direction == 'bidirectional':
    for d, m in zip(data_dirs(data_config), metadatas):
      if not m.extra.get(BACKWARD_FLOW_KEY):
        raise dm.DatasetError(
            f'data set {m.name!r} ({d}) holds no backward flow, which '
            'data.flow_direction=bidirectional needs: rebuild it with tools/make_tfrecords.py '
            '--backward_flow, or use data.flow_direction=forward')
  return metadatas


def input_channels(data_config) -> int:
  """C of the network input: 3 for 'rgb', 2L for 'flow'."""
  s = _settings(data_config)
  return 3 if s.modality == 'rgb' else 2 * s.num_fields


def num_classes(data_config) -> int | tuple[int, ...]:
  """Classes of the data set, or a tuple with one count per data set when there are several."""
  counts = tuple(m.num_classes for m in load_dataset_metadata(data_config))
  return counts[0] if len(counts) == 1 else counts


def _local_batch_size(global_batch_size: int, process_index: int, process_count: int) -> int:
  if not 0 <= process_index < process_count:
    raise InputConfigError(f'process_index {process_index} is not in [0, {process_count})')
  if global_batch_size < 1 or global_batch_size % process_count:
    raise InputConfigError(f'the global batch size {global_batch_size} must be a positive multiple '
                           f'of the number of processes ({process_count})')
  return global_batch_size // process_count


def _mix_weights(data_config, metadatas: Sequence[dm.DatasetMetadata]) -> list[float]:
  text = str(data_config.mix_weights).strip()
  if not text:
    return [float(m.num_videos(data_config.train_split)) for m in metadatas]
  try:
    weights = [float(w) for w in text.split(',')]
  except ValueError as e:
    raise InputConfigError(f'data.mix_weights must be comma-separated numbers, got {text!r}') from e
  if len(weights) != len(metadatas) or min(weights) <= 0:
    raise InputConfigError(f'data.mix_weights needs one positive weight per data dir '
                           f'({len(metadatas)}), got {text!r}')
  return weights


def _check_records(index: ri.RecordIndex, metadata: dm.DatasetMetadata) -> None:
  bad = np.flatnonzero((index.labels < 0) | (index.labels >= metadata.num_classes) |
                       (index.num_frames < 2))
  if bad.size:
    raise ri.RecordIndexError(
        f'{index.describe(int(bad[0]))}: label {index.labels[bad[0]]} (of {metadata.num_classes} '
        f'classes) or {index.num_frames[bad[0]]} frames (>= 2 needed) do not fit the metadata; '
        'rebuild the records with tools/make_tfrecords.py')


def _flow_step(bound_px: float) -> tf.Tensor:
  return tf.constant(rf.flow_quantisation_step(bound_px), tf.float32)


def _pad_to(image, height: int, width: int, planes: bool):
  """Zero-pads uint8 `[..., h, w, c]` (or `[..., c, h, w]`: planes) at the bottom and right to a
  canvas of height x width."""
  rank = len(image.shape)
  h_axis = rank - 2 if planes else rank - 3
  shape = tf.shape(image)
  pads = [[0, 0]] * rank
  pads[h_axis], pads[h_axis + 1] = [0, height - shape[h_axis]], [0, width - shape[h_axis + 1]]
  out = tf.pad(image, pads)
  static = list(image.shape)
  static[h_axis], static[h_axis + 1] = height, width
  return tf.ensure_shape(out, static)


def _lists(s: _Settings) -> list[str]:
  """The record lists an example reads: frames; forward flow; or forward and backward flow."""
  if s.modality == 'rgb':
    return [rf.FRAMES]
  if s.direction == 'bidirectional':
    return [rf.FLOW_X, rf.FLOW_Y, rf.FLOW_X_BACKWARD, rf.FLOW_Y_BACKWARD]
  return [rf.FLOW_X, rf.FLOW_Y]


def _stack_jpegs(s: _Settings, jpegs):
  """The (x, y) JPEGs `[L]` of a stack over fields t .. t+L-1 read from `_lists(s)`.

  Bi-directional (the paper, section 3.1, with tau = t + L/2): the backward fields of pairs
  t .. tau-1 (flow(i+1 -> i), ending at tau), then the forward fields tau .. tau+L/2-1: the same
  window of pairs as a forward stack, so the sampling rules (`sampling`) serve both.
  """
  if s.direction != 'bidirectional':
    return jpegs[0], jpegs[1]
  half = s.num_fields // 2
  return (tf.concat([jpegs[2][:half], jpegs[0][half:]], 0),
          tf.concat([jpegs[3][:half], jpegs[1][half:]], 0))


# Uniform numbers drawn per training example, by use; one stateless call draws them for a group.
_U_FRAME, _U_BOX, _U_FLIP, _U_JITTER, _U_BALANCED = 0, slice(1, 3), 3, slice(4, 7), slice(7, 9)
_NUM_UNIFORMS = 9
# Examples sampled and read together: one stateless draw, one vectorised sampling step and one
# Python call of the reader per group (each per-example TF op or Python round trip costs about as
# much as a tenth of a JPEG decode here). Groups start at multiples of it, so the example at a
# stream position is the same whatever position the stream starts from.
_GROUP = 32


def _train_examples(s: _Settings, index: ri.RecordIndex, bound_px: float, dataset_index: int,
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
  reader = ri.RecordReader(index, _lists(s), skip_corrupt=s.skip_corrupt)
  num_frames = tf.constant(index.num_frames, tf.int32)
  heights, widths = tf.constant(index.heights, tf.int32), tf.constant(index.widths, tf.int32)
  labels = tf.constant(index.labels, tf.int32)
  num_values = 1 if s.modality == 'rgb' else s.num_fields
  num_lists = len(_lists(s))
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
             bk.BOXES: (tf.zeros([_GROUP, 1, 2], tf.int32) if exact
                        else tf.stack([zeros, zeros, h, w], 1)[:, None]),
             bk.FLIPS: flip[:, None], 'label': tf.gather(labels, record),
             'dataset_index': tf.fill([_GROUP], dataset_index)}
    if s.modality == 'flow':
      group[bk.FLOW_STEP] = tf.fill([_GROUP], _flow_step(bound_px))
    elif s.color_jitter > 0:
      group[bk.JITTER] = 1.0 - s.color_jitter + 2.0 * s.color_jitter * u[:, _U_JITTER]
    return group

  def crop(jpegs, begin, size):
    """One example's JPEGs -> its uint8 crop `crop_shape`."""
    if s.modality == 'rgb':
      out = tf.slice(video_ops.decode_frame(jpegs[0][0]), begin, size)
    elif s.trajectory:
      # On the whole field, before the crop: trajectories may leave the crop.
      fields = video_ops.decode_flow_fields_quantised(*_stack_jpegs(s, jpegs))  # [2L, H, W]
      out = tf.slice(trajectory_stacking.trajectory_stack_quantised(
          tf.ensure_shape(fields, [channels, None, None]), bound_px), begin, size)
    else:  # only the crop's window of each plane is decoded: about 15% less CPU per example
      window = tf.concat([begin[1:], size[1:]], 0)
      out = video_ops.decode_flow_fields_quantised(*_stack_jpegs(s, jpegs), crop_window=window)
    if exact:
      return tf.ensure_shape(out, crop_shape)
    return _pad_to(tf.ensure_shape(out, [channels, None, None] if planes else [None, None, channels]),
                   canvas, canvas, planes=planes)

  def decode(group):
    jpegs, begin, size, keep = (group.pop(k) for k in ('jpegs', 'begin', 'size', 'keep'))
    if s.skip_corrupt:  # a skipped record's JPEGs are empty: not decoded
      body = lambda a: tf.cond(a[3], lambda: crop(*a[:3]), lambda: tf.zeros(crop_shape, tf.uint8))
      args = (jpegs, begin, size, keep)
    else:
      body, args = lambda a: crop(*a), (jpegs, begin, size)
    group[bk.IMAGES] = tf.map_fn(body, args, fn_output_signature=tf.TensorSpec(crop_shape, tf.uint8))
    return tf.cond(tf.reduce_all(keep), lambda: group,
                   lambda: {k: tf.boolean_mask(v, keep) for k, v in group.items()})

  first = start // _GROUP * _GROUP
  groups = tf.data.Dataset.counter(first, dtype=tf.int64).batch(_GROUP)
  groups = groups.map(read, num_parallel_calls=s.parallelism, deterministic=True)
  return groups.map(decode, num_parallel_calls=s.parallelism, deterministic=True)


def _train_index(data_dir: str, metadata: dm.DatasetMetadata, split: str, process_index: int,
                 process_count: int) -> tuple[ri.RecordIndex, np.ndarray]:
  """The index of the shards one process reads, and the records it trains on."""
  files, first, stride = sampling.process_train_share(metadata.shard_files(data_dir, split),
                                                      process_index, process_count)
  index = ri.index_records(files)
  _check_records(index, metadata)
  mine = np.arange(first, len(index), stride, dtype=np.int64)
  # Held-out validation videos (data.val_split='heldout') never enter the training stream.
  excluded = metadata.excluded_from_training(split)
  mine = mine[np.array([index.video_ids[r] not in excluded for r in mine], bool)] if excluded else mine
  if mine.size == 0:
    raise dm.DatasetError(f'{data_dir}: split {split!r} has no videos for process {process_index} '
                          f'of {process_count}')
  return index, mine


def _train_stream(s: _Settings, index: ri.RecordIndex, mine: np.ndarray, metadata: dm.DatasetMetadata,
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


def numpy_batches(dataset: tf.data.Dataset) -> Iterator[dict[str, np.ndarray]]:
  """`dataset.as_numpy_iterator()`, with a damaged record raised as one clear `CorruptRecordError`.

  tf.data reports an exception of the reader (run through `tf.numpy_function`) as a TF error
  whose message holds a Python traceback; this gives the reader's one-line message instead.
  """
  iterator = dataset.as_numpy_iterator()
  while True:
    try:
      batch = next(iterator)
    except StopIteration:
      return
    except tf.errors.OpError as e:
      message = str(e.message)
      start = message.find(ri.CorruptRecordError.MARKER)
      if start < 0:
        raise
      line = message[start + len(ri.CorruptRecordError.MARKER):].split('\n')[0].strip()
      raise ri.CorruptRecordError(line) from e
    yield batch


def _options() -> tf.data.Options:
  options = tf.data.Options()
  options.deterministic = True
  return options


def create_train_dataset(data_config, *, global_batch_size: int, seed: int, start_step: int = 0,
                         process_index: int = 0, process_count: int = 1) -> tf.data.Dataset:
  """The infinite training stream of this process (module docstring).

  Args:
    data_config: `config.data`.
    global_batch_size: examples per step over all processes.
    seed: the run seed; the same seed gives the same batches.
    start_step: first step to yield (resumption: equals skipping that many batches).
    process_index, process_count: this process and the number of processes.

  Returns:
    Batches of b = global_batch_size / process_count examples (module docstring): 'images' uint8
    [b, P, P, 3] (rgb) or [b, 2L, P, P] (flow planes), 'boxes' int32 [b, 1, 4] (or [b, 1, 2]), 'flips' bool [b, 1], 'flow_step' float32 [b] (flow) or
    'jitter' float32 [b, 3] (rgb with color_jitter), 'label' int32 [b], 'dataset_index' int32 [b].
  """
  s = _settings(data_config)
  batch = _local_batch_size(global_batch_size, process_index, process_count)
  if start_step < 0:
    raise InputConfigError(f'start_step must be >= 0, got {start_step}')
  dirs, metadatas = data_dirs(data_config), load_dataset_metadata(data_config)
  parts = sampling.apportion(batch, _mix_weights(data_config, metadatas))
  if min(parts) == 0:
    raise InputConfigError(f'a per-process batch of {batch} gives data sets {parts} examples per '
                           'batch: raise the batch size or change data.mix_weights so that each '
                           'data set gets at least one')
  indices = [_train_index(d, m, data_config.train_split, process_index, process_count)
             for d, m in zip(dirs, metadatas)]
  canvas, exact = _train_canvas(s, [index for index, _ in indices])
  streams = [_train_stream(s, index, mine, m, dataset_index=i, examples_per_batch=parts[i],
                           seed=seed, start_step=start_step, process_index=process_index,
                           canvas=canvas, exact=exact)
             for i, ((index, mine), m) in enumerate(zip(indices, metadatas))]
  # Each stream's groups rebatched to its share; a batch holds the data sets' shares in order.
  streams = [x.rebatch(part, drop_remainder=True) for x, part in zip(streams, parts)]
  if len(streams) == 1:
    ds = streams[0]
  else:
    ds = tf.data.Dataset.zip(tuple(streams)).map(
        lambda *shares: {k: tf.concat([x[k] for x in shares], 0) for k in shares[0]},
        num_parallel_calls=_AUTOTUNE, deterministic=True)
  return ds.prefetch(2).with_options(_options())


def _train_canvas(s: _Settings, indices: Sequence[ri.RecordIndex]) -> tuple[int, bool]:
  """(P, exact): the side of the uint8 crops of training batches, and whether every box is P x P.

  P = S for the paper's crop (its side is min(S, H, W) <= S), or the largest box a multi-scale crop
  cuts (the largest short side).
  """
  smallest = min(int(np.min(np.minimum(ix.heights, ix.widths))) for ix in indices)
  if not s.multiscale_crop:
    return s.crop_size, smallest >= s.crop_size
  largest = max(int(np.max(np.minimum(ix.heights, ix.widths))) for ix in indices)
  return max(s.crop_size, largest), False


def _num_video_batches(num_videos: int, batch: int, process_count: int) -> int:
  most_videos = -(-num_videos // process_count)
  return -(-most_videos // batch)


def _eval_videos(metadata: dm.DatasetMetadata, split: str, max_videos: int) -> int:
  if max_videos < 0:
    raise InputConfigError(f'max_videos must be >= 0, got {max_videos}')
  n = metadata.num_videos(split)
  return min(n, max_videos) if max_videos else n


def num_eval_batches(data_config, *, split: str, num_frames: int, num_crops: int,
                     global_batch_size: int, process_count: int = 1, max_videos: int = 0,
                     dataset_index: int = 0) -> int:
  """Batches `create_eval_dataset` yields on every process (from the metadata, no reading).

  `global_batch_size` counts videos, as in `create_eval_dataset`; K (`num_frames`) and C
  (`num_crops`) do not change the count (a video's views are made on the device).
  """
  del num_frames, num_crops
  metadata = load_dataset_metadata(data_config)[dataset_index]
  batch = _local_batch_size(global_batch_size, 0, process_count)
  return _num_video_batches(_eval_videos(metadata, split, max_videos), batch, process_count)


def _bank_size(s: _Settings, num_frames: Sequence[int], k: int) -> int:
  """F: the planes (flow) or frames (RGB) of the largest bank among videos of these frame counts.

  A video's bank holds each item its K positions use once (`create_eval_dataset`).
  """
  if s.trajectory:
    return k * 2 * s.num_fields  # trajectories are made per stack on the host: no sharing
  most = 1
  for n in sorted(set(int(x) for x in num_frames)):
    if s.modality == 'rgb':
      used = np.unique(sampling.test_frame_indices(n, k)).size
    else:
      used = np.unique(sampling.test_flow_indices(n, k, s.num_fields)).size
    most = max(most, used)
  if s.modality == 'rgb':
    return most
  return (4 if s.direction == 'bidirectional' else 2) * most


def _records_by_video(index: ri.RecordIndex, video_ids: Sequence[str], data_dir: str,
                      split: str) -> np.ndarray:
  position = {}
  for r, v in enumerate(index.video_ids):
    if v in position:
      raise ri.RecordIndexError(f'{data_dir}: video {v!r} is stored twice in split {split!r} '
                                f'({index.describe(position[v])} and {index.describe(r)}); rebuild')
    position[v] = r
  missing = [v for v in video_ids if v not in position]
  if missing or len(position) != len(video_ids):
    raise ri.RecordIndexError(
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
    `tf.cond` per slot cost about 8% of the eval pipeline's rate).
  """
  real = tf.cast(tf.where(tf.strings.length(slots) > 0)[:, 0], tf.int32)
  num_real = tf.size(real)
  items = tf.TensorArray(tf.uint8, size=tf.size(slots), element_shape=item_shape)

  def body(j, items):
    slot = real[j]
    return j + 1, items.write(slot, decode(tf.gather(slots, slot)))

  _, items = tf.while_loop(lambda j, _: j < num_real, body, (0, items))
  return items.stack()


def _eval_videos_table(s: _Settings, index: ri.RecordIndex, records: np.ndarray, video_indices: np.ndarray,
                       k: int, num_crops: int, bank: int, total: int, no_resize: bool) -> dict:
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
      used = sampling.test_frame_indices(int(index.num_frames[r]), k)  # [K]
    else:
      used = sampling.test_flow_indices(int(index.num_frames[r]), k, s.num_fields)  # [K, L]
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
    boxes = video_ops.test_crop_boxes(*size, s.crop_size, num_crops)[0].numpy()
    mine = (index.heights[records] == size[0]) & (index.widths[records] == size[1])
    table['boxes'][:n][mine] = boxes[:, :table['boxes'].shape[2]]
  flips = video_ops.test_crop_boxes(1, 1, s.crop_size, num_crops)[1].numpy()  # any size: the same
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
  return tf.ensure_shape(_pad_to(planes, bank_shape[1], bank_shape[2], planes=True), bank_shape)


def create_eval_dataset(data_config, *, split: str, num_frames: int, num_crops: int,
                        global_batch_size: int, process_index: int = 0, process_count: int = 1,
                        max_videos: int = 0, dataset_index: int = 0) -> tf.data.Dataset:
  """The test protocol's videos of this process, padded (module docstring).

  One element per video: the frames or flow planes its K test positions use, each decoded once
  and sent once (its bank), which positions use which (rows), and the boxes and flips of the C
  crops; the device stacks and cuts the K x C views (`train.device_views`).

  Args:
    data_config: `config.data`.
    split: e.g. 'test1'.
    num_frames: K, frames or flow stacks per video (the paper: 25).
    num_crops: C, crops per frame: 1 (centre), 2 (centre and its flip), 5 (centre + corners) or
      10 (centre + corners and their flips; the paper).
    global_batch_size: videos per batch over all processes (a batch makes global_batch_size x K x
      C views; `train.eval_batches.videos_per_batch` derives it from a view budget).
    process_index, process_count: this process and the number of processes.
    max_videos: evaluate the first this many videos of the split (0: all).
    dataset_index: which of data.data_dirs to evaluate (default the first).

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
  s = _settings(data_config)
  if num_crops not in video_ops.TEST_NUM_CROPS or num_frames < 1:
    raise InputConfigError(f'the test protocol needs num_frames >= 1 and num_crops in '
                           f'{video_ops.TEST_NUM_CROPS}, got {num_frames} and {num_crops}')
  batch = _local_batch_size(global_batch_size, process_index, process_count)
  dirs = data_dirs(data_config)
  if not 0 <= dataset_index < len(dirs):
    raise InputConfigError(f'dataset_index {dataset_index} is not one of the {len(dirs)} data dirs')
  data_dir = dirs[dataset_index]
  metadata = load_dataset_metadata(data_config)[dataset_index]
  num_videos = _eval_videos(metadata, split, max_videos)
  index = ri.index_records(metadata.shard_files(data_dir, split))
  _check_records(index, metadata)
  records = _records_by_video(index, metadata.stored_video_ids(split), data_dir,
                              split)[metadata.video_positions(split)][:num_videos]
  mine = sampling.process_videos(num_videos, process_index, process_count)
  num_batches = _num_video_batches(num_videos, batch, process_count)
  # Every process pads to the same bank and canvas (the split's largest), so that batches agree.
  bank = _bank_size(s, index.num_frames[records], num_frames)
  canvas_h = int(np.max(index.heights[records], initial=1))
  canvas_w = int(np.max(index.widths[records], initial=1))
  no_resize = bool(np.all(np.minimum(index.heights[records], index.widths[records]) >= s.crop_size))
  bank_shape = [bank, canvas_h, canvas_w] + ([3] if s.modality == 'rgb' else [])
  # Per video (this process's, then padding videos to fill the last batch), on the host: the
  # frames or fields its bank reads, the rows of its positions, its crops.
  videos = _eval_videos_table(s, index, records[mine], mine, num_frames, num_crops, bank,
                              num_batches * batch, no_resize)
  reader = ri.RecordReader(index, _lists(s))
  lists = len(_lists(s))
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
    return _pad_to(image, canvas_h, canvas_w, planes=False) if needs_pad else image

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
    out[bk.IMAGES] = tf.ensure_shape(items, [None] + bank_shape)
    out['dataset_index'] = tf.fill([v], dataset_index)
    if s.modality == 'flow':
      out[bk.FLOW_STEP] = tf.fill([v], _flow_step(metadata.flow_bound_px))
    return out

  ds = tf.data.Dataset.from_tensor_slices(videos).batch(batch, drop_remainder=True)
  # Reading is a stage ahead of decoding, so that a decoding call never waits for Python's lock.
  ds = ds.map(read_batch, num_parallel_calls=s.parallelism, deterministic=True)
  ds = ds.map(load, num_parallel_calls=s.parallelism, deterministic=True)
  ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches)).prefetch(2)
  return ds.with_options(_options())
