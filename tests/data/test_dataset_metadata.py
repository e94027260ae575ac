"""Tests of the dataset metadata: split resolution, errors, version check."""

import pytest

from twostream_jax.data import dataset_metadata
from twostream_jax.data import record_schema


def _meta():
  return dataset_metadata.DatasetMetadata(
      name='toy', class_names=['A', 'B'],
      partitions={'test1_train2': ['A/a1'], 'train1_test2': ['A/a2', 'B/b1'], 'train1_train2': ['B/b2']},
      num_shards={'test1_train2': 1, 'train1_test2': 2, 'train1_train2': 1},
      splits={'train1': ['train1_test2', 'train1_train2'], 'test1': ['test1_train2'],
              'train2': ['test1_train2', 'train1_train2'], 'test2': ['train1_test2']},
      flow_algorithm='farneback', flow_bound_px=20.0, short_side=64, jpeg_quality=95,
      command_line='make_tfrecords')


def test_split_resolution():
  m = _meta()
  assert dataset_metadata.partition_name([('train', 1), ('test', 2)]) == 'train1_test2'
  assert m.tfds_split('train1') == 'train1_test2+train1_train2'
  assert m.video_ids('train1') == ['A/a2', 'B/b1', 'B/b2']
  assert m.num_videos('test2') == 2
  assert m.shard_files('/d', 'test2') == ['/d/toy-train1_test2.tfrecord-00000-of-00002',
                                         '/d/toy-train1_test2.tfrecord-00001-of-00002']
  # Every video of a split number is in exactly one of its train/test.
  for k in (1, 2):
    assert set(m.video_ids(f'train{k}')).isdisjoint(m.video_ids(f'test{k}'))


def test_empty_partition_and_empty_split_are_errors():
  with pytest.raises(dataset_metadata.DatasetError):
    dataset_metadata.partition_name([])
  m = _meta()
  m.splits['test3'] = []
  with pytest.raises(dataset_metadata.DatasetError, match='no videos'):
    m.tfds_split('test3')


def test_unknown_split_names_the_available_ones():
  with pytest.raises(dataset_metadata.DatasetError, match='test1, test2, train1, train2'):
    _meta().tfds_split('test3')


def test_save_load_round_trip_and_errors(tmp_path):
  with pytest.raises(dataset_metadata.DatasetError, match='does not exist'):
    dataset_metadata.load_metadata(str(tmp_path / 'nope'))
  with pytest.raises(dataset_metadata.DatasetError, match='no twostream_metadata.json'):
    dataset_metadata.load_metadata(str(tmp_path))
  m = _meta()
  dataset_metadata.save_metadata(m, str(tmp_path))
  assert dataset_metadata.load_metadata(str(tmp_path)) == m
  m.format_version = record_schema.FORMAT_VERSION + 1
  dataset_metadata.save_metadata(m, str(tmp_path))
  with pytest.raises(dataset_metadata.DatasetError, match='format version'):
    dataset_metadata.load_metadata(str(tmp_path))
