"""tf.data input pipeline: spatial and temporal training streams and the paper's test protocol.

Configuration: the `data` section of the config (configs/default.py documents every key); the
caller passes `config.data`. TensorFlow only: no JAX here (the caller passes
`jax.process_index()` / `jax.process_count()`).

Training (`create_train_dataset`), per process, infinite, batched, prefetched. Elements:
  'inputs'        float32 [b, S, S, C]   C = 3 (rgb) or 2L (flow: x_0, y_0, x_1, y_1, ...)
  'label'         int32   [b]            class index in the example's own data set
  'dataset_index' int32   [b]            which of data.data_dirs the example comes from
  * RGB (spatial): one random frame per example; the paper's random S x S crop of the whole frame
    (or TSN multi-scale corner cropping, `data.multiscale_crop`), horizontal flip, colour jitter,
    normalisation ('imagenet' mean/std for torchvision weights, or 'unit' = [0, 1]).
  * Flow (temporal): L consecutive flow fields from a random start, stacked to [H, W, 2L]; one
    crop and one flip for all channels (x negated on flip), flow scaled by any resize, mean flow
    subtraction per field ('per_field') or none. Videos with fewer than L + 1 frames repeat their
    last field (`sampling`).
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
frame, not resized. Views are ordered by video, then frame k, then crop c; batches may split a
video. Video v of the split (index in
`metadata.video_ids(split)`, first `max_videos` if > 0) goes to process v mod P; each process pads
its views with masked copies to `num_eval_batches(...)` batches, the same count on every process.
Elements add 'video_index' int32 [b] (-1 for padding) and 'mask' float32 [b] (1 real, 0 padding).

Reading (`record_index`): shards are indexed once per dataset creation (a cheap pass over record
headers), and only the sampled frames / flow fields of a video are read and decoded.

Errors: a missing folder, an unknown split, records of another format version
(`dataset_metadata.DatasetError`), damaged or foreign shards (`record_index.RecordIndexError`,
naming the file; a damaged record found while iterating raises a tf.errors error whose message
names the file), and bad configuration values (`InputConfigError`).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import tensorflow as tf

from twostream_jax.data import dataset_metadata as dm
from twostream_jax.data import random_draws
from twostream_jax.data import record_index as ri
from twostream_jax.data import record_schema as rf
from twostream_jax.data import sampling
from twostream_jax.data import video_ops

MODALITIES = ('rgb', 'flow')
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


def _settings(data_config) -> _Settings:
  c = data_config
  s = _Settings(modality=c.modality, num_fields=int(c.num_flow_fields),
                mean_subtraction=c.flow_mean_subtraction, crop_size=int(c.crop_size),
                multiscale_crop=bool(c.multiscale_crop), random_flip=bool(c.random_flip),
                color_jitter=float(c.color_jitter), normalization=c.normalization,
                frames_per_video=int(c.frames_per_video), class_balanced=bool(c.class_balanced))
  checks = [
      (s.modality in MODALITIES, f'data.modality must be one of {MODALITIES}, got {s.modality!r}'),
      (s.num_fields >= 1, f'data.num_flow_fields must be >= 1, got {s.num_fields}'),
      (s.mean_subtraction in video_ops.MEAN_SUBTRACTIONS,
       f'data.flow_mean_subtraction must be one of {video_ops.MEAN_SUBTRACTIONS}, got {s.mean_subtraction!r}'),
      (s.crop_size >= 1, f'data.crop_size must be >= 1, got {s.crop_size}'),
      (0.0 <= s.color_jitter < 1.0, f'data.color_jitter must be in [0, 1), got {s.color_jitter}'),
      (s.normalization in video_ops.NORMALIZATIONS,
       f'data.normalization must be one of {video_ops.NORMALIZATIONS}, got {s.normalization!r}'),
      (s.frames_per_video >= 1, f'data.frames_per_video must be >= 1, got {s.frames_per_video}'),
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
  with split 'heldout' when `data.val_split` is 'heldout' (`dm.with_val_split`)."""
  return [dm.with_val_split(dm.load_metadata(d), data_config.train_split, data_config.val_split,
                            float(data_config.heldout_fraction)) for d in data_dirs(data_config)]


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


def _view(s: _Settings, image, box, flip, bound_px: float, jitter_uniforms=None,
          jitter: float = 0.0):
  if s.modality == 'rgb':
    out = video_ops.rgb_view(image, box, flip, s.crop_size, s.normalization, jitter_uniforms, jitter)
    return tf.ensure_shape(out, [s.crop_size, s.crop_size, 3])
  out = video_ops.flow_view(image, box, flip, s.crop_size, bound_px, s.mean_subtraction)
  return tf.ensure_shape(out, [s.crop_size, s.crop_size, 2 * s.num_fields])


# Uniform numbers drawn per training example (one stateless call), by use.
_U_FRAME, _U_BOX, _U_FLIP, _U_JITTER, _U_BALANCED = 0, slice(1, 3), 3, slice(4, 7), slice(7, 9)
_NUM_UNIFORMS = 9
# Examples whose JPEGs one Python call reads: amortises the numpy_function round trip.
_READ_GROUP = 8


def _train_examples(s: _Settings, index: ri.RecordIndex, bound_px: float, dataset_index: int,
                    positions: tf.data.Dataset, pick) -> tf.data.Dataset:
  """Stream positions -> training examples (module docstring): sample, read, decode, augment.

  `pick(position)` gives the example's {'record': int64, 'u': float32 [_NUM_UNIFORMS]}.
  """
  reader = ri.RecordReader(index, [rf.FRAMES] if s.modality == 'rgb' else [rf.FLOW_X, rf.FLOW_Y])
  num_frames = tf.constant(index.num_frames, tf.int32)
  labels = tf.constant(index.labels, tf.int32)
  num_values = 1 if s.modality == 'rgb' else s.num_fields

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
                            [tf.string] * (1 if s.modality == 'rgb' else 2), stateful=False)
    group['jpegs'] = tuple(tf.ensure_shape(o, [None, num_values]) for o in out)
    return group

  def example(sample):
    record, u = sample['record'], sample['u']
    if s.modality == 'rgb':
      image = video_ops.decode_frame(sample['jpegs'][0][0])
      height, width = tf.shape(image)[0], tf.shape(image)[1]
    else:
      image = video_ops.decode_flow_fields_quantised(*sample['jpegs'])  # [2L, H, W]
      height, width = tf.shape(image)[1], tf.shape(image)[2]
    if s.multiscale_crop:
      box = video_ops.multiscale_crop_box(u[_U_BOX], height, width)
    else:
      box = video_ops.random_crop_box(u[_U_BOX], height, width, s.crop_size)
    if s.modality == 'flow':
      # Crop, then go channel-last: transposing uint8 is slow, so transpose only the crop.
      image = video_ops.fields_to_stack(
          tf.slice(image, tf.stack([0, box[0], box[1]]), tf.stack([-1, box[2], box[3]])))
      box = tf.stack([0, 0, box[2], box[3]])
    flip = u[_U_FLIP] < 0.5 if s.random_flip else tf.constant(False)
    inputs = _view(s, image, box, flip, bound_px, u[_U_JITTER], s.color_jitter)
    return {'inputs': inputs, 'label': tf.gather(labels, record),
            'dataset_index': tf.constant(dataset_index, tf.int32)}

  samples = positions.map(sample, num_parallel_calls=_AUTOTUNE, deterministic=True)
  samples = samples.batch(_READ_GROUP).map(read, num_parallel_calls=_AUTOTUNE, deterministic=True)
  return samples.unbatch().map(example, num_parallel_calls=_AUTOTUNE, deterministic=True)


def _train_stream(s: _Settings, data_dir: str, metadata: dm.DatasetMetadata, split: str, *,
                  dataset_index: int, examples_per_batch: int, seed: int, start_step: int,
                  process_index: int, process_count: int) -> tf.data.Dataset:
  """The unbatched example stream of one data set on one process, from step `start_step` on."""
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
  return _train_examples(s, index, metadata.flow_bound_px, dataset_index, positions, at_position)


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
    Batches of {'inputs' float32 [b, S, S, C], 'label' int32 [b], 'dataset_index' int32 [b]},
    b = global_batch_size / process_count.
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
  streams = [_train_stream(s, d, m, data_config.train_split, dataset_index=i,
                           examples_per_batch=parts[i], seed=seed, start_step=start_step,
                           process_index=process_index, process_count=process_count)
             for i, (d, m) in enumerate(zip(dirs, metadatas))]
  if len(streams) == 1:
    ds = streams[0]
  else:
    pattern = np.repeat(np.arange(len(parts), dtype=np.int64), parts)
    ds = tf.data.Dataset.choose_from_datasets(
        streams, tf.data.Dataset.from_tensor_slices(pattern).repeat())
  ds = ds.batch(batch, drop_remainder=True).prefetch(2)
  return ds.with_options(_options())


def _num_views_batches(num_videos: int, num_views_per_video: int, batch: int,
                       process_count: int) -> int:
  most_videos = -(-num_videos // process_count)
  return -(-most_videos * num_views_per_video // batch)


def _eval_videos(metadata: dm.DatasetMetadata, split: str, max_videos: int) -> int:
  if max_videos < 0:
    raise InputConfigError(f'max_videos must be >= 0, got {max_videos}')
  n = metadata.num_videos(split)
  return min(n, max_videos) if max_videos else n


def num_eval_batches(data_config, *, split: str, num_frames: int, num_crops: int,
                     global_batch_size: int, process_count: int = 1, max_videos: int = 0,
                     dataset_index: int = 0) -> int:
  """Batches `create_eval_dataset` yields on every process (from the metadata, no reading)."""
  metadata = load_dataset_metadata(data_config)[dataset_index]
  batch = _local_batch_size(global_batch_size, 0, process_count)
  return _num_views_batches(_eval_videos(metadata, split, max_videos), num_frames * num_crops,
                            batch, process_count)


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
  """The test protocol's views of this process's videos, padded (module docstring).

  Args:
    data_config: `config.data`.
    split: e.g. 'test1'.
    num_frames: K, frames or flow stacks per video (the paper: 25).
    num_crops: C, crops per frame: 1 (centre), 2 (centre and its flip), 5 (centre + corners) or
      10 (centre + corners and their flips; the paper).
    global_batch_size: views per batch over all processes.
    process_index, process_count: this process and the number of processes.
    max_videos: evaluate the first this many videos of the split (0: all).
    dataset_index: which of data.data_dirs to evaluate (default the first).

  Returns:
    `num_eval_batches(...)` batches of {'inputs' float32 [b, S, S, C], 'label' int32 [b],
    'video_index' int32 [b] (-1: padding), 'mask' float32 [b], 'dataset_index' int32 [b]}.
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
                              split)[metadata.video_positions(split)]
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
  reader = ri.RecordReader(index, [rf.FRAMES] if s.modality == 'rgb' else [rf.FLOW_X, rf.FLOW_Y])
  labels = tf.constant(index.labels, tf.int32)
  views_per_video = num_frames * num_crops

  def load_video(record, video_index, view_indices):
    """Decodes the video's K frames or flow stacks once: uint8 [K, H, W, c]."""
    unique, position = tf.unique(tf.reshape(view_indices, [-1]))
    if s.modality == 'rgb':
      (jpegs,) = _read_op(reader, record, unique, 1)
      images = tf.gather(video_ops.decode_frames(jpegs, tf.range(tf.size(unique))), position)
    else:
      fields = video_ops.decode_flow_fields_quantised(*_read_op(reader, record, unique, 2))
      rows = tf.reshape(tf.stack([2 * position, 2 * position + 1], axis=1), [num_frames, -1])
      images = video_ops.fields_to_stack(tf.gather(fields, rows))  # [K, H, W, 2L]
    boxes, flips = video_ops.test_crop_boxes(tf.shape(images)[1], tf.shape(images)[2],
                                             s.crop_size, num_crops)
    return {'images': images, 'boxes': boxes, 'flips': flips, 'label': tf.gather(labels, record),
            'video_index': tf.cast(video_index, tf.int32)}

  def make_view(video, view):
    k, c = view // num_crops, view % num_crops
    inputs = _view(s, video['images'][k], video['boxes'][c], video['flips'][c], metadata.flow_bound_px)
    return {'inputs': inputs, 'label': video['label'], 'video_index': video['video_index'],
            'mask': tf.constant(1.0), 'dataset_index': tf.constant(dataset_index, tf.int32)}

  videos = tf.data.Dataset.from_tensor_slices((records[mine], mine, indices))
  videos = videos.map(load_video, num_parallel_calls=2, deterministic=True)
  views = videos.flat_map(lambda v: tf.data.Dataset.zip(
      tf.data.Dataset.from_tensors(v).repeat(views_per_video),
      tf.data.Dataset.range(views_per_video, output_type=tf.int32)))
  views = views.map(make_view, num_parallel_calls=_AUTOTUNE, deterministic=True)
  num_batches = _num_views_batches(num_videos, views_per_video, batch, process_count)
  channels = input_channels(data_config)
  padding = {'inputs': tf.zeros([s.crop_size, s.crop_size, channels]), 'label': tf.constant(0),
             'video_index': tf.constant(-1), 'mask': tf.constant(0.0),
             'dataset_index': tf.constant(dataset_index, tf.int32)}
  views = views.concatenate(tf.data.Dataset.from_tensors(padding).repeat(
      num_batches * batch - len(mine) * views_per_video))
  ds = views.batch(batch, drop_remainder=True)
  # One batch ahead: a 25 x 10 flow batch is about 1 GB of float32.
  ds = ds.apply(tf.data.experimental.assert_cardinality(num_batches)).prefetch(1)
  return ds.with_options(_options())
