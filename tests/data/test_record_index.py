"""Tests of record_index: the header-only index and the random-access reader, and their errors."""

import os
import shutil
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from twostream_jax.data import dataset_metadata
from twostream_jax.data import jpeg_structure
from twostream_jax.data import record_index
from twostream_jax.data import record_reader
from twostream_jax.data import record_schema
from twostream_jax.data import tfrecord_framing
from tests import record_fixtures


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('tiny'))
  metadata = record_fixtures.write_tiny_dataset(out, num_frames=[12, 5, 9])
  return out, metadata


def _parsed(files):
  return [record_schema.parse_video_record_numpy(r.numpy()) for r in tf.data.TFRecordDataset(files)]


def test_crc32c_known_value():
  # CRC-32C check value of '123456789' (RFC 3720) is 0xE3069283; masked as TFRecord does.
  crc = 0xE3069283
  assert tfrecord_framing.masked_crc32c(b'123456789') == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_index_and_reader_match_a_full_parse(tiny):
  out, metadata = tiny
  files = metadata.shard_files(out, 'train1')
  index = record_index.index_records(files)
  records = _parsed(files)
  assert index.video_ids == [r.video_id for r in records] == metadata.video_ids('train1')
  np.testing.assert_array_equal(index.labels, [r.label for r in records])
  np.testing.assert_array_equal(index.num_frames, [r.num_frames for r in records])
  reader = record_reader.RecordReader(index, [record_schema.FRAMES, record_schema.FLOW_X, record_schema.FLOW_Y])
  for r in (1, 4, 1):  # record 1 twice: the second read uses the cached JPEG offsets
    n = records[r].num_frames
    # Out of order, repeated, and a run of neighbours (one read for 1, 2; 1 again: its own read).
    chosen = (0, n - 2, 1, 1, 2)
    frames, fx, fy = reader.read(r, np.array(chosen))
    assert list(frames) == [records[r].frames[i] for i in chosen]
    assert list(fx) == [records[r].flow_x[i] for i in chosen]
    assert list(fy) == [records[r].flow_y[i] for i in chosen]


def test_the_header_memory_gives_the_walks_verdict(tiny):
  """`JpegCheck` (remembers sound headers) and `jpeg_problem` (walks every header) agree on sound
  JPEGs and on damaged ones whose header starts like a remembered one."""
  out, metadata = tiny
  records = _parsed(metadata.shard_files(out, 'train1'))
  jpegs = [j for r in records for j in r.frames[:3] + r.flow_x[:3]]
  damaged = []
  for j in jpegs[:4]:
    damaged += [j[:-1], j[:len(j) // 2], j[:-2] + b'\xff\xd9', b'\xff\xd8\xff\xd9', j + b'\x00']
    for where in (2, 4, 20, len(j) - 2):
      damaged.append(j[:where] + bytes([j[where] ^ 0xFF]) + j[where + 1:])
  check = jpeg_structure.JpegCheck()
  for data in jpegs + damaged + jpegs:
    assert check(data) == jpeg_structure.jpeg_problem(data)
  assert all(check(j) is None for j in jpegs) and any(check(d) for d in damaged)


def _copy(tiny, tmp_path):
  out, metadata = tiny
  dst = str(tmp_path / 'copy')
  shutil.copytree(out, dst)
  return dst, metadata.shard_files(dst, 'train1')


def test_truncated_or_garbled_shard_is_named(tiny, tmp_path):
  _, files = _copy(tiny, tmp_path)
  size = os.path.getsize(files[1])
  with open(files[1], 'r+b') as f:
    f.truncate(size - 100)
  with pytest.raises(record_index.RecordIndexError, match=f'{files[1]}.*truncated'):
    record_index.index_records(files)
  with open(files[0], 'r+b') as f:
    f.write(b'\x07')  # first byte of the first record's length: header checksum mismatch
  with pytest.raises(record_index.RecordIndexError, match=f'{files[0]}: record 0 at byte 0.*checksum'):
    record_index.index_records(files[:1])
  with open(files[0], 'wb') as f:
    f.write(b'not a tfrecord file at all')
  with pytest.raises(record_index.RecordIndexError, match=files[0]):
    record_index.index_records(files[:1])
  os.remove(files[0])
  with pytest.raises(record_index.RecordIndexError, match=f'{files[0]} is missing'):
    record_index.index_records(files[:1])


@pytest.mark.parametrize('where, problem', [(0, 'SOI'), (-1, 'EOI'), (4, 'segment'), (20, 'marker')])
def test_a_damaged_jpeg_is_named_with_its_file_video_and_frame(tiny, tmp_path, where, problem):
  _, files = _copy(tiny, tmp_path)
  index = record_index.index_records(files)
  reader = record_reader.RecordReader(index, [record_schema.FRAMES])
  (starts, lengths), = reader._locate(0)  # pylint: disable=protected-access
  first = int(starts[2] if where != -1 else starts[2] + lengths[2] - 1)
  with open(files[index.file_ids[0]], 'r+b') as f:  # frame 2 of record 0
    f.seek(first + max(where, 0))
    byte = f.read(1)
    f.seek(first + max(where, 0))
    f.write(bytes([byte[0] ^ 0xFF]))
  reader = record_reader.RecordReader(index, [record_schema.FRAMES])
  reader.read(0, np.array([0, 1]))  # other frames of the record stay readable
  with pytest.raises(record_index.CorruptRecordError, match=problem) as e:
    reader.read(0, np.array([2]))
  assert files[index.file_ids[0]] in str(e.value) and index.video_ids[0] in str(e.value)
  assert 'frame 2 ' in str(e.value)


def test_first_read_reads_the_chosen_jpegs_and_their_framing_only(tiny):
  out, metadata = tiny
  index = record_index.index_records(metadata.shard_files(out, 'train1'))
  reader = record_reader.RecordReader(index, [record_schema.FLOW_X, record_schema.FLOW_Y])
  fx, fy = reader.read(0, np.array([3, 4]))
  fields = 2 * (int(index.num_frames[0]) - 1)  # the walked framing: at most 11 bytes per value
  assert reader.jpeg_bytes == sum(len(x) for x in list(fx) + list(fy))
  # + the framing between two values read in one span (fields 3 and 4 follow each other).
  assert reader.jpeg_bytes < reader.bytes_read <= reader.jpeg_bytes + 11 * (fields + 2)
  record_bytes = int(index.value_ranges[0].max() - index.value_ranges[0].min())
  assert reader.bytes_read < record_bytes / 3


def test_foreign_records_are_rejected(tmp_path):
  path = str(tmp_path / 'x.tfrecord')
  with tf.io.TFRecordWriter(path) as w:
    w.write(tf.train.Example().SerializeToString())  # an Example without our features
  with pytest.raises(record_index.RecordIndexError, match='not a twostream_jax video record'):
    record_index.index_records([path])
  assert isinstance(record_index.RecordIndexError('x'), dataset_metadata.DatasetError)


def test_exit_guard_refuses_calls_and_waits_for_running_ones():
  guard = record_reader._ExitGuard(register=False)  # pylint: disable=protected-access
  with guard:
    pass
  finished = []

  def slow_call():
    with guard:
      time.sleep(0.3)
      finished.append(True)

  thread = threading.Thread(target=slow_call)
  thread.start()
  time.sleep(0.05)
  guard.wait_until_idle()  # returns only once the running call is over (and quiet for a moment)
  assert finished == [True]
  with pytest.raises(record_index.RecordIndexError, match='exiting'):
    with guard:
      pass
  thread.join()
