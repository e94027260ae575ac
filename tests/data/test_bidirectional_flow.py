"""Bi-directional flow: backward fields written by the shard writer and stacked by the pipeline."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from twostream_jax.data import dataset_metadata
from twostream_jax.data import protocol_positions
from twostream_jax.data import record_schema
from twostream_jax.prep import jpeg_codec
from twostream_jax.prep import shard_writer
from tests import make_tfrecords_fixtures as fx
from tests import record_fixtures
from tests.config_fixtures import tiny_train_config
from tests.data import pipelines
from tests.data.test_pipelines import _positions

BOUND = 20.0
H, W, FRAMES = 12, 16, 9


def test_shard_writer_stores_backward_flow_of_each_pair(tmp_path):
  shifts = [1, 3, 0, 2]
  video = str(tmp_path / 'v' / 'shift.avi')
  fx.write_avi(video, fx.shifting_texture(shifts))
  settings = shard_writer.EncodeSettings('farneback', BOUND, fx.HEIGHT, 0, 1, 95, backward_flow=True)
  spec = shard_writer.ShardSpec(str(tmp_path / 'toy-train1.tfrecord-00000-of-00001'), (
      shard_writer.VideoTask('shift', 0, 'class0', video, 'videos'),), settings)
  shard_writer.write_shard(spec)
  (record,) = fx.read_records([spec.path])
  assert len(record.flow_x_backward) == len(record.flow_y_backward) == len(shifts)
  backward = fx.decode_flow(dataclasses.replace(record, flow_x=record.flow_x_backward,
                                                flow_y=record.flow_y_backward), BOUND)
  measured = np.median(backward[:, 8:-8, 8:-8].reshape(len(shifts), -1, 2), axis=1)
  # flow(i+1 -> i) of a texture moving right by s_i pixels is (-s_i, 0).
  np.testing.assert_allclose(measured[:, 0], -np.asarray(shifts), atol=0.3)


def _levels(pair: int) -> dict[str, int]:
  """Quantised values stored for pair i: each list and pair tells itself apart."""
  return {record_schema.FLOW_X: 100 + pair, record_schema.FLOW_Y: 50 + pair, record_schema.FLOW_X_BACKWARD: 200 - pair,
          record_schema.FLOW_Y_BACKWARD: 20 + pair}


def _write_records(out_dir: str, backward: bool) -> None:
  """Two classes, one train and one test video each; flow fields constant, valued by `_levels`."""
  os.makedirs(out_dir, exist_ok=True)
  frame = jpeg_codec.encode_jpeg(np.full((H, W, 3), 128, np.uint8), 95)
  field = lambda key, i: jpeg_codec.encode_jpeg(np.full((H, W), _levels(i)[key], np.uint8), 95)
  partitions = {}
  for partition in (record_fixtures.TRAIN_PARTITION, record_fixtures.TEST_PARTITION):
    path = os.path.join(out_dir, dataset_metadata.shard_filename('bidi', partition, 0, 1))
    ids = []
    with tf.io.TFRecordWriter(path) as writer:
      for label in range(2):
        video_id = f'Class{label}/v_{partition}_{label}'
        lists = {k: [field(k, i) for i in range(FRAMES - 1)] for k in _levels(0)}
        record = record_schema.VideoRecord(
            video_id, label, f'Class{label}', H, W, [frame] * FRAMES, lists[record_schema.FLOW_X],
            lists[record_schema.FLOW_Y], *((lists[record_schema.FLOW_X_BACKWARD], lists[record_schema.FLOW_Y_BACKWARD])
                                if backward else ()))
        writer.write(record_schema.serialize_video_record(record))
        ids.append(video_id)
    partitions[partition] = ids
  dataset_metadata.save_metadata(dataset_metadata.DatasetMetadata(
      name='bidi', class_names=['Class0', 'Class1'], partitions=partitions,
      num_shards={p: 1 for p in partitions}, splits=dict(record_fixtures.SPLITS),
      flow_algorithm='synthetic', flow_bound_px=BOUND, short_side=H, jpeg_quality=95,
      command_line='tests', extra={record_schema.BACKWARD_FLOW_METADATA_KEY: backward}), out_dir)


def _config(data_dir: str):
  c = tiny_train_config(data_dir)
  c.data.num_flow_fields = 4
  c.data.crop_size = 8
  c.data.random_flip = False
  c.data.flow_direction = 'bidirectional'
  return c


def _expected(start: int, num_fields: int) -> np.ndarray:
  """Channel values of a bi-directional stack over pairs start .. start+L-1: backward, then forward."""
  half, out = num_fields // 2, []
  for j in range(num_fields):
    levels = _levels(start + j)
    out += ([levels[record_schema.FLOW_X_BACKWARD], levels[record_schema.FLOW_Y_BACKWARD]] if j < half
            else [levels[record_schema.FLOW_X], levels[record_schema.FLOW_Y]])
  return np.asarray(out)


def test_pipeline_stacks_backward_then_forward_fields(tmp_path):
  _write_records(str(tmp_path), backward=True)
  config = _config(str(tmp_path))
  batch = next(pipelines.numpy_batches(pipelines.create_eval_dataset(
      config.data, split='test1', num_frames=3, num_crops=1, global_batch_size=2)))
  batch = _positions(batch)
  starts = protocol_positions.flow_indices(FRAMES, 3, 4)[:, 0]
  for p in range(6):  # 2 videos x 3 test positions
    # Flow reaches the device as planes [2L, H, W]: channel values at pixel (0, 0).
    np.testing.assert_array_equal(batch['images'][p, :, 0, 0], _expected(int(starts[p % 3]), 4))
  train = next(pipelines.numpy_batches(pipelines.create_train_dataset(config.data, global_batch_size=4, seed=0)))
  for image in train['images']:
    start = 200 - int(image[0, 0, 0])  # the first plane is backward x of the first pair
    np.testing.assert_array_equal(image[:, 0, 0], _expected(start, 4))


def test_records_without_backward_flow_fail_at_start_naming_the_data_set(tmp_path):
  _write_records(str(tmp_path), backward=False)
  config = _config(str(tmp_path))
  with pytest.raises(dataset_metadata.DatasetError, match=r"data set 'bidi' .* holds no backward flow"):
    pipelines.create_train_dataset(config.data, global_batch_size=4, seed=0)
  with pytest.raises(dataset_metadata.DatasetError, match='--backward_flow'):
    pipelines.create_eval_dataset(config.data, split='test1', num_frames=3, num_crops=1,
                           global_batch_size=6)
  config.data.num_flow_fields = 3
  with pytest.raises(pipelines.InputConfigError, match='even'):
    pipelines.input_channels(config.data)
