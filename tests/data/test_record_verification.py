"""tools/verify_records.py and data/record_verification.py on tiny folders with damage put in."""

import os
import subprocess
import sys

import pytest

from tests import record_fixtures
from twostream_jax.data import dataset_metadata
from twostream_jax.data import record_schema
from twostream_jax.data import record_verification

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO_ROOT, 'tools', 'verify_records.py')


def _folder(tmp_path):
  out = str(tmp_path / 'records')
  meta = record_fixtures.write_tiny_dataset(out, num_classes=2, train_per_class=2,
                                            test_per_class=1, num_frames=4, height=16, width=20,
                                            shards_per_partition=1)
  return out, meta


def _records_of(path):
  """(video_id, record) of each record of a shard, read without the code under test."""
  import tensorflow as tf
  return [record_schema.parse_video_record_numpy(s)
          for s in tf.data.TFRecordDataset(path).as_numpy_iterator()]


def _record_spans(data):
  """[start, end) of each record's data in a shard's bytes (uint64 length | uint32 CRC | data |
  uint32 CRC)."""
  spans, offset = [], 0
  while offset < len(data):
    length = int.from_bytes(data[offset:offset + 8], 'little')
    spans.append((offset + 12, offset + 12 + length))
    offset += 12 + length + 4
  return spans


def _find_in_record(data, record_number, needle):
  start, end = _record_spans(data)[record_number]
  return data.index(needle, start, end)  # the fixture repeats flow JPEGs across records


def _patch(path, offset, new_bytes):
  with open(path, 'r+b') as f:
    f.seek(offset)
    f.write(new_bytes)


def test_sound_folder_has_no_problems(tmp_path):
  out, meta = _folder(tmp_path)
  report = record_verification.verify_folder(out, num_threads=2, progress=False)
  assert report.ok, record_verification.format_report(report)
  assert report.files == 2 and report.records == 6
  assert report.jpegs == 6 * (4 + 2 * 3)  # N frames and N-1 flow fields of each component


def test_flipped_bytes_are_found_and_name_the_video(tmp_path):
  out, meta = _folder(tmp_path)
  shard = os.path.join(out, dataset_metadata.shard_filename(
      meta.name, record_fixtures.TRAIN_PARTITION, 0, 1))
  records = _records_of(shard)
  with open(shard, 'rb') as f:
    data = f.read()
  # A flipped byte inside frame 2 of record 1: the JPEG may still decode, the CRC does not match.
  pixels_hit = records[1]
  start = _find_in_record(data, 1, pixels_hit.frames[2])
  _patch(shard, start + len(pixels_hit.frames[2]) // 2,
         bytes([data[start + len(pixels_hit.frames[2]) // 2] ^ 0x55]))
  # A destroyed JPEG start marker in frames[1] of record 3: that JPEG no longer decodes. (Frames,
  # not flow: the fixture's flow JPEGs repeat, so their bytes do not point at one field.)
  header_hit = records[3]
  start = _find_in_record(data, 3, header_hit.frames[1])
  _patch(shard, start, b'\x00\x00')
  report = record_verification.verify_folder(out, num_threads=2, progress=False)
  assert report.bad_videos() == sorted([pixels_hit.video_id, header_hit.video_id])
  by_video = {}
  for p in report.problems:
    by_video.setdefault(p.video_id, []).append(p)
  assert all(p.file == shard for p in report.problems)
  assert [(p.record, 'checksum mismatch' in p.message) for p in by_video[pixels_hit.video_id]][0] \
      == (1, True)
  decode = [p for p in by_video[header_hit.video_id] if p.frame]
  assert [(p.record, p.frame) for p in decode] == [(3, 'frames[1]')]
  assert 'does not decode' in decode[0].message
  lines = record_verification.format_report(report).splitlines()
  assert any(header_hit.video_id in line and 'frames[1]' in line and 'record 3' in line
             for line in lines)

  # The command line: the same findings, exit status 1.
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  result = subprocess.run([sys.executable, TOOL, out, '--progress=false'], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stdout + result.stderr[-2000:]
  assert pixels_hit.video_id in result.stdout and header_hit.video_id in result.stdout
  assert '2 damaged videos' in result.stdout


def test_broken_framing_stops_the_file_and_the_metadata_check_names_the_rest(tmp_path):
  out, meta = _folder(tmp_path)
  shard = os.path.join(out, dataset_metadata.shard_filename(
      meta.name, record_fixtures.TRAIN_PARTITION, 0, 1))
  records = _records_of(shard)
  with open(shard, 'rb') as f:
    data = f.read()
  # A bit of the length field of record 2's header: walk the framing (uint64 length | uint32 CRC |
  # data | uint32 CRC) to it.
  offset = _record_spans(data)[2][0] - 12
  _patch(shard, offset, bytes([data[offset] ^ 0x01]))
  report = record_verification.verify_folder(out, num_threads=1, progress=False)
  framing = [p for p in report.problems if 'header checksum' in p.message]
  assert [(p.file, p.record, p.offset) for p in framing] == [(shard, 2, offset)]
  assert report.records == 4  # 2 read in the damaged shard, 2 in the other
  assert sorted(p.video_id for p in report.problems if 'not found' in p.message) == sorted(
      r.video_id for r in records[2:])
  missing = tmp_path / 'none'
  missing.mkdir()
  with pytest.raises(record_verification.VerificationError, match=r'no twostream_metadata.json and '
                     r'no \*.tfrecord\* files'):
    record_verification.verify_folder(str(missing), progress=False)
