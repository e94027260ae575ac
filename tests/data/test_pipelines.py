"""Tests of the input pipeline on tiny real records (tests/record_fixtures.py)."""

import importlib.util
import os
import shutil

import functools

import jax
import numpy as np
import pytest
import tensorflow as tf

from twostream_jax.data import dataset_metadata
from twostream_jax.data import protocol_positions
from twostream_jax.data import record_index
from twostream_jax.data import record_reader
from twostream_jax.data import record_schema
from twostream_jax.train import device_views
from tests import record_fixtures
from tests.data import pipelines

S = 24  # crop size on 32 x 40 frames
FRAME_COUNTS = [12, 5, 9]  # 5 frames = 4 flow fields: shorter than the L = 5 stacks used below


def _default_config():
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'configs', 'default.py')
  spec = importlib.util.spec_from_file_location('default_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _config(data_dirs, modality='rgb', **data):
  c = _default_config()
  c.data.data_dirs = data_dirs
  c.data.modality = modality
  c.data.num_flow_fields = 5
  c.data.crop_size = S
  c.data.val_split = ''  # exact epochs: every training video in the stream (no held-out part)
  c.data.normalization = 'unit'
  for k, v in data.items():
    setattr(c.data, k, v)
  return c.data


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('tiny'))
  record_fixtures.write_tiny_dataset(out, num_frames=FRAME_COUNTS)
  return out


def _take(ds, n):
  return [b for _, b in zip(range(n), pipelines.numpy_batches(ds))]


@functools.lru_cache(maxsize=None)
def _view_fn(spec):
  return jax.jit(functools.partial(device_views.make_views, spec))


def _views(config, batch):
  """The network inputs the jitted steps make of a batch: float32 [n * V, S, S, C]."""
  keys = (device_views.IMAGES, device_views.ROWS, device_views.BOXES, device_views.FLIPS, device_views.FLOW_STEP, device_views.JITTER)
  return np.asarray(_view_fn(device_views.ViewSpec.from_data_config(config))(
      {k: v for k, v in batch.items() if k in keys}))


def _positions(batch):
  """An evaluation batch (per video: bank and rows) as its test positions, on the host."""
  return {k: np.asarray(v) for k, v in device_views.video_positions(batch).items()}


def _assert_same_batches(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def _label_from_flow_y(inputs):
  """The fixture's y flow is -(label + 1) / 2 everywhere (no mean subtraction, no resize)."""
  return np.round(-2 * inputs[..., 1::2].mean(axis=(1, 2, 3)) - 1).astype(int)


def test_flow_training_batches_follow_the_flow_rules(tiny):
  config = _config(tiny, 'flow', flow_mean_subtraction='none')
  batches = _take(pipelines.create_train_dataset(config, global_batch_size=6, seed=0), 4)
  signs = []
  for b in batches:
    assert b['images'].shape == (6, 10, S, S) and b['images'].dtype == np.uint8  # flow planes
    assert b['label'].dtype == np.int32 and b['dataset_index'].dtype == np.int32
    np.testing.assert_array_equal(b['dataset_index'], 0)
    inputs = _views(config, b)
    x, y = inputs[..., 0::2], inputs[..., 1::2]
    # Every field of a fixture video is the same: one crop and one flip for all channels keeps the
    # L x channels (and the L y channels) identical, also for short videos whose fields repeat.
    np.testing.assert_array_equal(x, np.repeat(x[..., :1], 5, axis=-1))
    np.testing.assert_array_equal(y, np.repeat(y[..., :1], 5, axis=-1))
    np.testing.assert_array_equal(_label_from_flow_y(inputs), b['label'])
    # x = (label + 1) * (1 + ramp), |ramp| < 0.5 over the frame: a flip makes it negative.
    mean_x = x.mean(axis=(1, 2, 3))
    ratio = np.abs(mean_x) / (b['label'] + 1)
    assert np.all((ratio > 0.7) & (ratio < 1.3)), ratio
    signs.extend(np.sign(mean_x))
  assert set(signs) == {-1.0, 1.0}  # both flipped and unflipped examples
  multiscale = _config(tiny, 'flow', multiscale_crop=True)
  per_field = _take(pipelines.create_train_dataset(multiscale, global_batch_size=6, seed=0), 1)[0]
  np.testing.assert_allclose(_views(multiscale, per_field).mean(axis=(1, 2)), 0.0, atol=1e-4)


def test_same_seed_same_batches_and_exact_resume(tiny):
  configs = [
      _config(tiny, 'rgb', multiscale_crop=True, color_jitter=0.3, frames_per_video=2,
              normalization='imagenet'),
      _config(tiny, 'flow', class_balanced=True),
  ]
  for config in configs:
    make = lambda **kw: pipelines.create_train_dataset(config, global_batch_size=4, **kw)
    # 12 videos x 2 frames = 6 steps per rgb epoch: 8 steps cross an epoch boundary.
    full = _take(make(seed=3), 8)
    _assert_same_batches(full, _take(make(seed=3), 8))
    _assert_same_batches(full[5:], _take(make(seed=3, start_step=5), 3))
    other = _take(make(seed=4), 1)[0]
    assert not np.array_equal(other['images'], full[0]['images'])


def test_an_epoch_shows_every_video_once(tiny):
  batches = _take(pipelines.create_train_dataset(_config(tiny), global_batch_size=4, seed=0), 3)
  labels = np.concatenate([b['label'] for b in batches])
  np.testing.assert_array_equal(np.bincount(labels), [4, 4, 4])  # 12 videos, 4 per class


def test_processes_read_their_own_shards(tiny):
  # Two shards of 6 videos (class order: 0,0,0,0,1,1 | 1,1,2,2,2,2), one per process.
  for p, expected in [(0, [4, 2, 0]), (1, [0, 2, 4])]:
    ds = pipelines.create_train_dataset(_config(tiny), global_batch_size=4, seed=0, process_index=p,
                                 process_count=2)
    batches = _take(ds, 3)  # one epoch of this process: 3 steps of 2
    assert batches[0]['images'].shape[0] == 2
    labels = np.concatenate([b['label'] for b in batches])
    np.testing.assert_array_equal(np.bincount(labels, minlength=3), expected)


def test_class_balanced_sampling_is_uniform_over_classes(tmp_path):
  out = str(tmp_path / 'imbalanced')
  record_fixtures.write_tiny_dataset(out, train_per_class=[12, 3, 1], shards_per_partition=1)
  ds = pipelines.create_train_dataset(_config(out, crop_size=8, class_balanced=True),
                               global_batch_size=100, seed=0)
  labels = np.concatenate([b['label'] for b in _take(ds, 12)])
  # n = 1200 draws, class counts ~ Binomial(n, 1/3): sd = sqrt(1200 / 3 * 2 / 3) = 16.3; allow 5 sd.
  # Uniform over videos would give class 0 a share of 12 / 16 (900 of 1200).
  counts = np.bincount(labels, minlength=3)
  assert np.all(np.abs(counts - 400) < 5 * 16.3), counts


def test_mixing_tags_each_example_with_its_data_set(tiny, tmp_path):
  other = str(tmp_path / 'other')
  # A second data set with 5 classes whose training videos are all of classes 3 and 4.
  record_fixtures.write_tiny_dataset(other, num_classes=5, train_per_class=[0, 0, 0, 2, 2],
                                     name='other')
  config = _config(f'{tiny},{other}', 'flow', flow_mean_subtraction='none', mix_weights='3,2')
  assert pipelines.num_classes(config) == (3, 5)
  batches = _take(pipelines.create_train_dataset(config, global_batch_size=5, seed=0), 4)
  for b in batches:
    np.testing.assert_array_equal(b['dataset_index'], [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(b['label'] >= 3, b['dataset_index'] == 1)
    np.testing.assert_array_equal(_label_from_flow_y(_views(config, b)), b['label'])
  # Default weights: the training split sizes, 12 and 4 videos -> 6 + 2 of a batch of 8.
  config.mix_weights = ''
  b = _take(pipelines.create_train_dataset(config, global_batch_size=8, seed=0), 1)[0]
  np.testing.assert_array_equal(b['dataset_index'], [0] * 6 + [1] * 2)


def _eval(config, **kw):
  args = dict(split='test1', num_frames=3, num_crops=2, global_batch_size=8)
  args.update(kw)
  ds = pipelines.create_eval_dataset(config, **args)
  batches = list(pipelines.numpy_batches(ds))
  count_args = {k: v for k, v in args.items() if k != 'process_index'}
  assert len(batches) == len(ds) == pipelines.num_eval_batches(config, **count_args)
  return batches


@pytest.mark.parametrize('modality', ['rgb', 'flow'])
def test_eval_sees_every_video_exactly_once_over_processes(tiny, modality):
  config = _config(tiny, modality)
  video_ids = dataset_metadata.load_metadata(tiny).video_ids('test1')
  labels = [int(v.split('/')[0][len('Class'):]) for v in video_ids]
  for count, max_videos in [(1, 0), (2, 0), (2, 5), (3, 1)]:  # (3, 1): two processes get none
    per_process = [[_positions(b) for b in _eval(
        config, process_index=p, process_count=count, max_videos=max_videos,
        global_batch_size=2 * count)] for p in range(count)]
    assert len({len(b) for b in per_process}) == 1  # the same number of batches everywhere
    seen = np.concatenate([b['video_index'] for bs in per_process for b in bs])
    mask = np.concatenate([b['mask'] for bs in per_process for b in bs])
    label = np.concatenate([b['label'] for bs in per_process for b in bs])
    images = np.concatenate([b['images'] for bs in per_process for b in bs])
    expected = max_videos or len(video_ids)
    np.testing.assert_array_equal(mask, seen >= 0)
    # 3 test positions per video, each with its 2 crops' boxes and flips.
    np.testing.assert_array_equal(np.bincount(seen[seen >= 0], minlength=expected), [3] * expected)
    np.testing.assert_array_equal(label[seen >= 0], np.array(labels)[seen[seen >= 0]])
    assert not images[seen < 0].any()  # padding is zeros
    assert images.shape[1:] == ((32, 40, 3) if modality == 'rgb' else (10, 32, 40))  # as stored
    flips = np.concatenate([b['flips'] for bs in per_process for b in bs])
    np.testing.assert_array_equal(flips[seen >= 0], [[False, True]] * int(np.sum(seen >= 0)))


def test_the_25x10_protocol_visits_the_documented_frames_and_crops(tiny, monkeypatch):
  requested = []
  original = record_reader.RecordReader.read
  monkeypatch.setattr(record_reader.RecordReader, 'read',
                      lambda self, r, i: requested.append((int(r), tuple(i))) or original(self, r, i))
  config = _config(tiny, 'rgb')
  batches = _eval(config, num_frames=25, num_crops=10, global_batch_size=1)
  inputs = np.concatenate([_views(config, b) for b in batches])
  video_index = np.concatenate([device_views.per_view(b['video_index'], device_views.num_views(b)) for b in batches])
  metadata = dataset_metadata.load_metadata(tiny)
  records = {r.video_id: r for r in (record_schema.parse_video_record_numpy(x.numpy()) for x in
                                     tf.data.TFRecordDataset(metadata.shard_files(tiny, 'test1')))}
  # 32 x 40 frames, 24 x 24 crops: centre (4, 8), then corners (0, 0), (0, 16), (8, 0), (8, 16).
  corners = [(4, 8), (0, 0), (0, 16), (8, 0), (8, 16)]
  for v, video_id in enumerate(metadata.video_ids('test1')):
    record = records[video_id]
    n = record.num_frames
    frame_index = np.floor(np.arange(25) * (n - 1) / 24 + 0.5).astype(int)  # rounded linspace
    views = inputs[video_index == v].reshape(25, 10, S, S, 3)
    for k, t in enumerate(frame_index):
      frame = tf.io.decode_jpeg(record.frames[t], dct_method='INTEGER_ACCURATE').numpy() / 255.0
      for c in range(10):
        y0, x0 = corners[c % 5]
        crop = frame[y0:y0 + S, x0:x0 + S]
        np.testing.assert_allclose(views[k, c], crop[:, ::-1] if c >= 5 else crop, atol=1e-6)
  # Only the sampled frames were read (and decoded), each once per video.
  index = record_index.index_records(metadata.shard_files(tiny, 'test1'))
  for r, indices in requested:
    n = int(index.num_frames[r])
    assert indices == tuple(np.unique(np.floor(np.arange(25) * (n - 1) / 24 + 0.5).astype(int)))
  assert len(requested) == len(records)

  requested.clear()
  _eval(_config(tiny, 'flow'), num_frames=25, num_crops=10, global_batch_size=1)
  for r, indices in requested:  # L = 5 fields from start floor(k * (M - 5) / 24 + 1/2), M = N - 1
    m = int(index.num_frames[r]) - 1
    starts = np.floor(np.arange(25) * max(m - 5, 0) / 24 + 0.5).astype(int)
    assert indices == tuple(np.unique(np.minimum(starts[:, None] + np.arange(5), m - 1)))


@pytest.mark.parametrize('modality', ['rgb', 'flow'])
def test_eval_sends_each_frame_or_flow_field_of_a_video_once(tiny, modality):
  """A video's bank holds each frame (RGB) or each field's x and y planes (flow) that its 25 test
  positions use exactly once (overlapping flow stacks share them), padded with zeros to the split's
  largest bank; the rows name, for each position, its frame or its stack's planes in order."""
  config = _config(tiny, modality)
  index = record_index.index_records(dataset_metadata.load_metadata(tiny).shard_files(tiny, 'test1'))
  records = {v: r for r, v in enumerate(index.video_ids)}
  video_ids = dataset_metadata.load_metadata(tiny).video_ids('test1')
  banks = []
  for b in _eval(config, num_frames=25, num_crops=10, global_batch_size=1):
    images, rows = b[device_views.IMAGES][0], b[device_views.ROWS][0]
    n = int(index.num_frames[records[video_ids[int(b['video_index'][0])]]])
    if modality == 'rgb':
      used = np.unique(protocol_positions.frame_indices(n, 25))
      assert rows.shape == (25,)
    else:
      fields = protocol_positions.flow_indices(n, 25, 5)  # [25, L]
      used = np.unique(fields)
      # Stack k: planes x, y of its fields in time order, each field at its place in `used`.
      place = np.searchsorted(used, fields)
      np.testing.assert_array_equal(rows, np.stack([2 * place, 2 * place + 1], -1).reshape(25, 10))
    sent = len(used) * (1 if modality == 'rgb' else 2)
    assert sorted(set(rows.ravel().tolist())) == list(range(sent))  # each sent item used, once
    assert images[:sent].reshape(sent, -1).any(axis=1).all() and not images[sent:].any()
    banks.append((images.shape[0], sent))
  assert {f for f, _ in banks} == {max(s for _, s in banks)}  # one bank size: the largest


def test_rgb_ignores_the_flow_stacking(tiny):
  # data.stacking=trajectory in a config shared by both streams: the spatial stream's batches
  # are those of the default stacking, in training and in the test protocol.
  plain, shared = _config(tiny, 'rgb'), _config(tiny, 'rgb', stacking='trajectory')
  _assert_same_batches(_eval(plain), _eval(shared))
  train = [pipelines.create_train_dataset(c, global_batch_size=4, seed=3) for c in (plain, shared)]
  _assert_same_batches(_take(train[0], 2), _take(train[1], 2))


def test_clear_errors(tiny, tmp_path):
  with pytest.raises(dataset_metadata.DatasetError, match='does not exist'):
    pipelines.create_train_dataset(_config(str(tmp_path / 'nope')), global_batch_size=2, seed=0)
  with pytest.raises(dataset_metadata.DatasetError, match="'train7' is not in this data set"):
    pipelines.create_train_dataset(_config(tiny, train_split='train7'), global_batch_size=2, seed=0)
  with pytest.raises(pipelines.InputConfigError, match='data_dirs is empty'):
    pipelines.create_train_dataset(_config(''), global_batch_size=2, seed=0)
  with pytest.raises(pipelines.InputConfigError, match='multiple of the number of processes'):
    pipelines.create_train_dataset(_config(tiny), global_batch_size=3, seed=0, process_count=2)
  with pytest.raises(pipelines.InputConfigError, match='modality'):
    pipelines.input_channels(_config(tiny, 'depth'))
  old = str(tmp_path / 'old')
  shutil.copytree(tiny, old)
  metadata = dataset_metadata.load_metadata(old)
  metadata.format_version = record_schema.FORMAT_VERSION + 1
  dataset_metadata.save_metadata(metadata, old)
  with pytest.raises(dataset_metadata.DatasetError, match='format version'):
    pipelines.create_eval_dataset(_config(old), split='test1', num_frames=1, num_crops=1,
                           global_batch_size=2)


def _damage(tiny, tmp_path, records, split='train1'):
  """A copy of `tiny` whose given records of `split` have the SOI marker of every frame broken."""
  damaged = str(tmp_path / 'damaged')
  shutil.copytree(tiny, damaged)
  files = dataset_metadata.load_metadata(damaged).shard_files(damaged, split)
  index = record_index.index_records(files)
  reader = record_reader.RecordReader(index, [record_schema.FRAMES])
  for r in records:
    reader.read(r, np.arange(1))
    starts, _ = reader._values[r][0]  # pylint: disable=protected-access
    with open(files[index.file_ids[r]], 'r+b') as f:
      for start in starts:
        f.seek(int(start) + 1)  # 0xD8 of the SOI marker
        f.write(bytes([0xD8 ^ 0xFF]))
  return damaged, index


def test_a_damaged_record_stops_training_naming_file_record_video_and_frame(tiny, tmp_path):
  damaged, index = _damage(tiny, tmp_path, range(12))
  ds = pipelines.create_train_dataset(_config(damaged), global_batch_size=2, seed=0)
  with pytest.raises(record_index.CorruptRecordError) as e:
    _take(ds, 1)
  message = str(e.value)
  assert '\n' not in message and 'Traceback' not in message
  assert 'damaged' in message and '.tfrecord' in message  # the file
  assert 'record ' in message and 'frame ' in message and 'Class' in message  # record, video, frame
  assert 'skip_corrupt_records' in message


def test_a_damaged_test_record_stops_evaluation_naming_file_video_and_frame(tiny, tmp_path):
  damaged, index = _damage(tiny, tmp_path, range(len(record_index.index_records(
      dataset_metadata.load_metadata(tiny).shard_files(tiny, 'test1')))), split='test1')
  ds = pipelines.create_eval_dataset(_config(damaged), split='test1', num_frames=3, num_crops=1,
                              global_batch_size=2)
  with pytest.raises(record_index.CorruptRecordError) as e:
    next(pipelines.numpy_batches(ds))
  message = str(e.value)
  assert '\n' not in message and 'Traceback' not in message
  assert 'damaged' in message and 'test1' in message and '.tfrecord' in message  # the file
  assert 'frame ' in message and any(repr(v) in message for v in index.video_ids)  # frame, video


def test_skip_corrupt_records_logs_once_and_trains_on(tiny, tmp_path, caplog):
  damaged, index = _damage(tiny, tmp_path, [5])  # one video of class 1
  config = _config(damaged, skip_corrupt_records=True)
  with caplog.at_level('WARNING'):
    batches = _take(pipelines.create_train_dataset(config, global_batch_size=4, seed=0), 9)  # 3 epochs
  assert all(b['images'].shape[0] == 4 for b in batches)
  labels = np.concatenate([b['label'] for b in batches])
  # 36 examples of the 11 good videos: 3 epochs of 12 draws minus the 3 of the damaged one, + 3 more.
  assert np.bincount(labels, minlength=3)[1] < np.bincount(labels, minlength=3)[0]
  skipped = [r for r in caplog.records if 'skipping' in r.getMessage()]
  assert len(skipped) == 1 and index.video_ids[5] in skipped[0].getMessage()
