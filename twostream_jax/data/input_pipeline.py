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


def _read_op(reader: ri.RecordReader, record, indices, num_outputs: int):
  out = tf.numpy_function(reader.read, [record, indices], [tf.string] * num_outputs,
                          stateful=False)
  return [tf.ensure_shape(o, indices.shape) for o in out]


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


# Uniform numbers drawn per training example (one stateless call), by use.
_U_FRAME, _U_BOX, _U_FLIP, _U_JITTER, _U_BALANCED = 0, slice(1, 3), 3, slice(4, 7), slice(7, 9)
_NUM_UNIFORMS = 9
# Examples whose JPEGs one Python call reads: amortises the numpy_function round trip.
_READ_GROUP = 8


def _train_examples(s: _Settings, index: ri.RecordIndex, bound_px: float, dataset_index: int,
                    positions: tf.data.Dataset, pick, canvas: int, exact: bool) -> tf.data.Dataset:
  """Stream positions -> training examples (module docstring): sample, read, decode, crop.

  `pick(position)` gives the example's {'record': int64, 'u': float32 [_NUM_UNIFORMS]}. The crop is
  cut here in uint8 and padded to `canvas` x `canvas` (unless `exact`: every box is S x S = the
  canvas); the device resizes, flips and normalises it (`train.device_views`).
  """
  reader = ri.RecordReader(index, _lists(s), skip_corrupt=s.skip_corrupt)
  num_frames = tf.constant(index.num_frames, tf.int32)
  labels = tf.constant(index.labels, tf.int32)
  num_values = 1 if s.modality == 'rgb' else s.num_fields
  num_lists = len(_lists(s))
  channels = 3 if s.modality == 'rgb' else 2 * s.num_fields

  def sample(position):
    sample = pick(position)
    n, u = tf.gather(num_frames, sample['record']), sample['u']
    if s.modality == 'rgb':
      sample['values'] = tf.reshape(sampling.train_frame_index(u[_U_FRAME], n), [1])
    else:
      sample['values'] = sampling.train_flow_indices(u[_U_FRAME], n, s.num_fields)
    return sample

  def read(group):
    out = tf.numpy_function(reader.read_batch, [group['record'], group['values']],
                            [tf.string] * num_lists + [tf.bool], stateful=False)
    group['jpegs'] = tuple(tf.ensure_shape(o, [None, num_values]) for o in out[:-1])
    group['ok'] = tf.ensure_shape(out[-1], [None])
    return group

  def example(sample):
    record, u = sample['record'], sample['u']
    if s.modality == 'rgb':
      image = video_ops.decode_frame(sample['jpegs'][0][0])
      height, width = tf.shape(image)[0], tf.shape(image)[1]
    else:
      image = video_ops.decode_flow_fields_quantised(*_stack_jpegs(s, sample['jpegs']))  # [2L, H, W]
      if s.stacking == 'trajectory':
        # On the whole field, before the crop: trajectories may leave the crop.
        image = trajectory_stacking.trajectory_stack_quantised(
            tf.ensure_shape(image, [channels, None, None]), bound_px)
      height, width = tf.shape(image)[1], tf.shape(image)[2]
    if s.multiscale_crop:
      box = video_ops.multiscale_crop_box(u[_U_BOX], height, width)
    else:
      box = video_ops.random_crop_box(u[_U_BOX], height, width, s.crop_size)
    if s.modality == 'flow':  # planes as decoded: the device makes them channel-last
      crop = tf.slice(image, tf.stack([0, box[0], box[1]]), tf.stack([-1, box[2], box[3]]))
      crop = tf.ensure_shape(crop, [channels, None, None])
    else:
      crop = video_ops.crop(image, box)
    if exact:
      crop = tf.ensure_shape(crop, [channels, canvas, canvas] if s.modality == 'flow'
                             else [canvas, canvas, channels])
    else:
      crop = _pad_to(crop, canvas, canvas, planes=s.modality == 'flow')
    flip = u[_U_FLIP] < 0.5 if s.random_flip else tf.constant(False)
    # (y0, x0) only when every box is S x S: the device then slices instead of resizing.
    corner = tf.zeros([1, 2], tf.int32) if exact else tf.reshape(tf.stack([0, 0, box[2], box[3]]), [1, 4])
    out = {bk.IMAGES: crop, bk.BOXES: corner,
           bk.FLIPS: tf.reshape(flip, [1]), 'label': tf.gather(labels, record),
           'dataset_index': tf.constant(dataset_index, tf.int32)}
    if s.modality == 'flow':
      out[bk.FLOW_STEP] = _flow_step(bound_px)
    elif s.color_jitter > 0:
      out[bk.JITTER] = 1.0 - s.color_jitter + 2.0 * s.color_jitter * u[_U_JITTER]
    return out

  samples = positions.map(sample, num_parallel_calls=_AUTOTUNE, deterministic=True)
  samples = samples.batch(_READ_GROUP).map(read, num_parallel_calls=s.parallelism, deterministic=True)
  samples = samples.unbatch()
  if s.skip_corrupt:
    samples = samples.filter(lambda sample: sample['ok'])
  return samples.map(example, num_parallel_calls=s.parallelism, deterministic=True)


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
  """The unbatched example stream of one data set on one process, from step `start_step` on."""
  epoch_key, uniform_key = (sampling.stream_key(seed, purpose, dataset_index, process_index)
                            for purpose in range(2))
  mine_t, mine_labels = tf.constant(mine), index.labels[mine]

  def at_position(position):
    u = random_draws.uniforms(tf.stack([tf.constant(uniform_key, tf.int64), position]), _NUM_UNIFORMS)
    if s.class_balanced:
      j = sampling.balanced_video(u[_U_BALANCED], mine_labels)
    else:
      j = sampling.epoch_video(position, len(mine), s.frames_per_video, epoch_key)
    return {'record': tf.gather(mine_t, j), 'u': u}

  positions = tf.data.Dataset.counter(start_step * examples_per_batch, dtype=tf.int64)
  return _train_examples(s, index, metadata.flow_bound_px, dataset_index, positions, at_position,
                         canvas, exact)


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
  if len(streams) == 1:
    ds = streams[0]
  else:
    pattern = np.repeat(np.arange(len(parts), dtype=np.int64), parts)
    ds = tf.data.Dataset.choose_from_datasets(
        streams, tf.data.Dataset.from_tensor_slices(pattern).repeat())
  ds = ds.batch(batch, drop_remainder=True).prefetch(2)
  return ds.with_options(_options())


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
  if s.modality == 'flow' and s.stacking == 'trajectory':
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
  n = index.num_frames[records[mine]]
  if s.modality == 'rgb':
    indices = np.zeros((len(mine), num_frames), np.int64)
    for i, k in enumerate(n):
      indices[i] = sampling.test_frame_indices(int(k), num_frames)
  else:
    indices = np.zeros((len(mine), num_frames, s.num_fields), np.int64)
    for i, k in enumerate(n):
      indices[i] = sampling.test_flow_indices(int(k), num_frames, s.num_fields)
  reader = ri.RecordReader(index, _lists(s))
  labels = tf.constant(index.labels, tf.int32)
  channels = input_channels(data_config)
  # Every process pads to the same bank and canvas (the split's largest), so that batches agree.
  bank = _bank_size(s, index.num_frames[records], num_frames)
  canvas_h = int(np.max(index.heights[records], initial=1))
  canvas_w = int(np.max(index.widths[records], initial=1))
  no_resize = bool(np.all(np.minimum(index.heights[records], index.widths[records]) >= s.crop_size))
  bank_shape = [bank, canvas_h, canvas_w] + ([3] if s.modality == 'rgb' else [])
  rows_shape = [num_frames] if s.modality == 'rgb' else [num_frames, channels]

  def load_video(record, video_index, view_indices):
    """Decodes each frame or flow field the video's K positions use once: its bank and rows."""
    unique, position = tf.unique(tf.reshape(view_indices, [-1]))
    if s.modality == 'rgb':
      (jpegs,) = _read_op(reader, record, unique, 1)
      items = video_ops.decode_frames(jpegs, tf.range(tf.size(unique)))  # [U, H, W, 3]
      rows = position
    else:
      jpegs = _read_op(reader, record, unique, len(_lists(s)))
      items = video_ops.decode_flow_fields_quantised(jpegs[0], jpegs[1])  # [2U, H, W]
      first = 2 * position  # [K * L], plane of each field's x in `items`
      if s.direction == 'bidirectional':
        # Backward fields after the forward ones; the first L/2 of each stack read them.
        items = tf.concat([items, video_ops.decode_flow_fields_quantised(jpegs[2], jpegs[3])], 0)
        backward = tf.tile(tf.range(s.num_fields) < s.num_fields // 2, [num_frames])
        first = first + tf.where(backward, 2 * tf.size(unique), 0)
      rows = tf.reshape(tf.stack([first, first + 1], axis=1), rows_shape)
      if s.stacking == 'trajectory':
        stacks = tf.map_fn(
            lambda q: trajectory_stacking.trajectory_stack_quantised(q, metadata.flow_bound_px),
            tf.gather(items, rows), fn_output_signature=tf.TensorSpec([channels, None, None], tf.uint8))
        items = tf.reshape(stacks, tf.concat([[-1], tf.shape(stacks)[2:]], 0))  # [K * 2L, H, W]
        rows = tf.reshape(tf.range(num_frames * channels), rows_shape)
    shape = tf.shape(items)
    boxes, flips = video_ops.test_crop_boxes(shape[1], shape[2], s.crop_size, num_crops)
    if no_resize:
      boxes = boxes[:, :2]  # every crop is S x S: its corner is enough (a slice on the device)
    pads = [[0, bank - shape[0]], [0, canvas_h - shape[1]], [0, canvas_w - shape[2]]]
    items = tf.ensure_shape(tf.pad(items, pads + [[0, 0]] * (len(bank_shape) - 3)), bank_shape)
    out = {bk.IMAGES: items, bk.ROWS: tf.ensure_shape(tf.cast(rows, tf.int32), rows_shape),
           bk.BOXES: boxes, bk.FLIPS: flips, 'label': tf.gather(labels, record),
           'video_index': tf.cast(video_index, tf.int32), 'mask': tf.constant(1.0),
           'dataset_index': tf.constant(dataset_index, tf.int32)}
    if s.modality == 'flow':
      out[bk.FLOW_STEP] = _flow_step(metadata.flow_bound_px)
    return out

  videos = tf.data.Dataset.from_tensor_slices((records[mine], mine, indices))
  videos = videos.map(load_video, num_parallel_calls=s.parallelism, deterministic=True)
  num_batches = _num_video_batches(num_videos, batch, process_count)
  padding = {bk.IMAGES: tf.zeros(bank_shape, tf.uint8), bk.ROWS: tf.zeros(rows_shape, tf.int32),
             bk.BOXES: tf.tile(tf.constant([[0, 0]] if no_resize else [[0, 0, 1, 1]], tf.int32),
                               [num_crops, 1]),
             bk.FLIPS: tf.zeros([num_crops], tf.bool), 'label': tf.constant(0),
             'video_index': tf.constant(-1), 'mask': tf.constant(0.0),
             'dataset_index': tf.constant(dataset_index, tf.int32)}
  if s.modality == 'flow':
    padding[bk.FLOW_STEP] = _flow_step(metadata.flow_bound_px)
  videos = videos.concatenate(tf.data.Dataset.from_tensors(padding).repeat(
      num_batches * batch - len(mine)))
  ds = videos.batch(batch, drop_remainder=True)
  ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches)).prefetch(2)
  return ds.with_options(_options())
