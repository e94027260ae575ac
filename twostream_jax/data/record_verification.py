"""Reads every byte of a records folder and names each damaged video (`tools/verify_records.py`).

Meant for after copying or downloading a data set, before training meets a damaged record. For
each shard it checks the TFRecord framing (headers and their CRCs), the data (TensorFlow's
CRC-checked reader, as training uses) and the content (the `tf.train.Example` parses, and every
JPEG decodes to the record's height and width). With `twostream_metadata.json` present, the folder
is also checked against it: every named shard exists, each partition holds exactly its listed
videos, labels match the class names. Records are checked by threads, with a progress bar in
bytes; a problem is reported with file, record number, byte offset, video and frame.

Each check in detail: docs/design_notes.md.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import glob
import os
import struct
import sys
import time
from typing import Optional

from twostream_jax.data import dataset_metadata
from twostream_jax.data import record_schema
from twostream_jax.data import tfrecord_framing

_HEADER_BYTES = 12
_FOOTER_BYTES = 4
_CHANNELS = {record_schema.FRAMES: 3, record_schema.FLOW_X: 1, record_schema.FLOW_Y: 1}


class VerificationError(ValueError):
  """The folder cannot be verified at all (missing, or holds no shards)."""


@dataclasses.dataclass(frozen=True)
class Problem:
  """One damaged thing: a file, a record, or one JPEG of a record.

  Attributes:
    file: the shard path.
    message: what is wrong.
    record: record number in the file (None: the file as a whole).
    offset: byte offset of the record's header (-1 when not known).
    video_id: the record's video ('' when it cannot be told).
    frame: e.g. 'frames[3]' or 'flow_x[2]' ('' for the record as a whole).
  """
  file: str
  message: str
  record: Optional[int] = None
  offset: int = -1
  video_id: str = ''
  frame: str = ''

  def describe(self) -> str:
    where = [os.path.basename(self.file)]
    if self.record is not None:
      at = f' at byte {self.offset}' if self.offset >= 0 else ''
      where.append(f'record {self.record}{at}')
    if self.video_id:
      where.append(f'video {self.video_id!r}')
    if self.frame:
      where.append(self.frame)
    return f'{", ".join(where)}: {self.message}'


@dataclasses.dataclass
class Report:
  """What `verify_folder` read and found."""
  data_dir: str
  files: int
  records: int
  jpegs: int
  bytes_read: int
  seconds: float
  problems: list[Problem]

  @property
  def ok(self) -> bool:
    return not self.problems

  def bad_videos(self) -> list[str]:
    return sorted({p.video_id for p in self.problems if p.video_id})


@dataclasses.dataclass(frozen=True)
class _RecordSpot:
  file: str
  number: int
  offset: int
  length: int


def _walk_framing(path: str) -> tuple[list[_RecordSpot], list[Problem]]:
  """The records of a shard from their headers (header CRCs checked), and framing problems."""
  spots, problems = [], []
  size = os.path.getsize(path)
  with open(path, 'rb') as f:
    pos = 0
    while pos < size:
      f.seek(pos)
      header = f.read(_HEADER_BYTES)
      where = dict(record=len(spots), offset=pos)
      if len(header) < _HEADER_BYTES:
        problems.append(Problem(path, 'the file ends inside a record header (truncated)', **where))
        break
      length, crc = struct.unpack('<QI', header)
      if tfrecord_framing.masked_crc32c(header[:8]) != crc:
        problems.append(Problem(path, 'record header checksum mismatch (corrupt): this and the '
                                f'remaining {size - pos} bytes of the file cannot be read',
                                **where))
        break
      end = pos + _HEADER_BYTES + length + _FOOTER_BYTES
      if end > size:
        problems.append(Problem(path, f'a record of {length} bytes runs past the end of the file '
                                f'({size} bytes): truncated', **where))
        break
      spots.append(_RecordSpot(path, len(spots), pos, length))
      pos = end
  return spots, problems


def _decode_problem(jpeg: bytes, channels: int, height: int, width: int) -> str:
  """'' when the JPEG decodes to [height, width, channels] as the input pipeline decodes it."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from twostream_jax.data import video_ops  # pylint: disable=g-import-not-at-top  (TensorFlow)
  try:
    image = video_ops.decode_jpeg(jpeg, channels)
  except (tf.errors.InvalidArgumentError, tf.errors.OpError) as e:
    return f'JPEG does not decode ({e.message.strip().splitlines()[0] if e.message else e})'
  if tuple(image.shape) != (height, width, channels):
    return f'JPEG is {tuple(image.shape)}, the record says {(height, width, channels)}'
  return ''


def _check_record(spot: _RecordSpot) -> tuple[Optional[record_schema.VideoRecord], int,
                                              list[Problem]]:
  """Reads, parses and decodes one record; returns (record or None, JPEGs decoded, problems)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.python.lib.io import tf_record  # pylint: disable=g-import-not-at-top
  where = dict(record=spot.number, offset=spot.offset)
  problems = []
  try:
    data, _ = tf_record.tf_record_random_reader(spot.file).read(spot.offset)
  except (tf.errors.OpError, IndexError, OSError) as e:
    problems.append(Problem(spot.file, 'record checksum mismatch: its bytes changed after they '
                            f'were written ({type(e).__name__})', **where))
    with open(spot.file, 'rb') as f:  # still parse the raw bytes, to name the video and frame
      f.seek(spot.offset + _HEADER_BYTES)
      data = f.read(spot.length)
  try:
    record = record_schema.parse_video_record_numpy(data)
    record.validate()
  except record_schema.RecordFormatError as e:
    problems.append(Problem(spot.file, f'not a readable video record: {e}', **where))
    return None, 0, problems
  where['video_id'] = record.video_id
  problems = [dataclasses.replace(p, video_id=record.video_id) for p in problems]
  decoded = 0
  for key, channels in _CHANNELS.items():
    for i, jpeg in enumerate(getattr(record, key)):
      message = _decode_problem(jpeg, channels, record.height, record.width)
      decoded += 1
      if message:
        problems.append(Problem(spot.file, message, frame=f'{key}[{i}]', **where))
  if problems and len(problems) == 1 and 'checksum' in problems[0].message:
    problems[0] = dataclasses.replace(
        problems[0], message=problems[0].message + '; every JPEG still decodes (pixels changed)')
  return record, decoded, problems


def _shard_files(data_dir: str) -> tuple[list[str], Optional[dataset_metadata.DatasetMetadata]]:
  """The shards to read: those the metadata names, else every `*.tfrecord*` file of the folder."""
  if not os.path.isdir(data_dir):
    raise VerificationError(f'{data_dir!r} is not a folder')
  metadata = None
  if os.path.exists(os.path.join(data_dir, dataset_metadata.METADATA_FILENAME)):
    metadata = dataset_metadata.load_metadata(data_dir)
    files = sorted(os.path.join(data_dir, dataset_metadata.shard_filename(metadata.name, p, i, n))
                   for p, n in metadata.num_shards.items() for i in range(n))
  else:
    files = sorted(p for p in glob.glob(os.path.join(data_dir, '*.tfrecord*')) if os.path.isfile(p))
  if not files:
    raise VerificationError(f'{data_dir!r} holds no {dataset_metadata.METADATA_FILENAME} and no '
                            '*.tfrecord* files: give the folder tools/make_tfrecords.py wrote')
  return files, metadata


def _check_against_metadata(metadata: dataset_metadata.DatasetMetadata, data_dir: str,
                            found: dict[str, list[tuple[str, int, str]]]) -> list[Problem]:
  """Partitions hold exactly their listed videos; labels match class names.

  Args:
    found: shard path -> (video_id, label, label_name) of each readable record, in file order.
  """
  problems = []
  for partition, n in metadata.num_shards.items():
    paths = [os.path.join(data_dir, dataset_metadata.shard_filename(metadata.name, partition, i, n))
             for i in range(n)]
    ids = [v for p in paths for v, _, _ in found.get(p, [])]
    expected = metadata.partitions.get(partition, [])
    missing = sorted(set(expected) - set(ids))
    extra = sorted(set(ids) - set(expected))
    for video in missing:
      problems.append(Problem(paths[0], f'video of partition {partition!r} (metadata) not found in '
                              'its shards (see the problems above, or the shard was replaced)',
                              video_id=video))
    for video in extra:
      problems.append(Problem(paths[0], f'record of a video that partition {partition!r} does not '
                              'list (the shards do not belong to this metadata)', video_id=video))
  for path, records in found.items():
    for number, (video, label, name) in enumerate(records):
      if not 0 <= label < metadata.num_classes or metadata.class_names[label] != name:
        problems.append(Problem(path, f'label {label} ({name!r}) does not match the metadata\'s '
                                'class names', record=number, video_id=video))
  return problems


def verify_folder(data_dir: str, num_threads: int = 0, progress: bool = True) -> Report:
  """Checks every record of a records folder; see the module docstring.

  Args:
    data_dir: the folder tools/make_tfrecords.py wrote (or any folder of `*.tfrecord*` shards).
    num_threads: records checked at once (0: one per CPU).
    progress: show a progress bar (bytes) on stderr.

  Returns:
    The report; `report.problems` lists every damaged file, record and JPEG.

  Raises:
    VerificationError, dataset_metadata.DatasetError: no folder, no shards, unreadable metadata.
  """
  import tqdm  # pylint: disable=g-import-not-at-top

  start = time.time()
  files, metadata = _shard_files(data_dir)
  problems = []
  present = []
  for path in files:
    if os.path.isfile(path):
      present.append(path)
    else:
      problems.append(Problem(path, 'shard named by the metadata is missing'))
  if num_threads <= 0:
    num_threads = (len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
                   else os.cpu_count() or 1)
  total = sum(os.path.getsize(p) for p in present)
  found: dict[str, list[tuple[str, int, str]]] = collections.defaultdict(list)
  records = jpegs = 0
  with tqdm.tqdm(total=total, unit='B', unit_scale=True, desc='verifying', disable=not progress,
                 file=sys.stderr, dynamic_ncols=True) as bar, \
      concurrent.futures.ThreadPoolExecutor(max(1, num_threads)) as pool:
    spots = []
    for path, (file_spots, file_problems) in zip(present, pool.map(_walk_framing, present)):
      spots += file_spots
      problems += file_problems
      # Bytes that cannot be reached (after a broken header) count as read for the bar.
      bar.update(os.path.getsize(path) - sum(s.length + _HEADER_BYTES + _FOOTER_BYTES
                                             for s in file_spots))
    futures = {pool.submit(_check_record, s): s for s in spots}
    results = {}
    for future in concurrent.futures.as_completed(futures):
      spot = futures[future]
      results[spot] = future.result()
      bar.update(spot.length + _HEADER_BYTES + _FOOTER_BYTES)
  for spot in spots:  # in file order, so that the report reads top to bottom
    record, decoded, record_problems = results[spot]
    records += 1
    jpegs += decoded
    problems += record_problems
    if record is not None:
      found[spot.file].append((record.video_id, record.label, record.label_name))
  if metadata is not None:
    problems += _check_against_metadata(metadata, data_dir, found)
  return Report(data_dir=data_dir, files=len(files), records=records, jpegs=jpegs,
                bytes_read=total, seconds=time.time() - start, problems=problems)


def format_report(report: Report, max_lines: int = 50) -> str:
  """A summary line, then one line per problem (the first `max_lines`)."""
  n, bad = len(report.problems), len(report.bad_videos())
  found = 'no problems.' if report.ok else (
      f'{n} problem{"" if n == 1 else "s"}, {bad} damaged video{"" if bad == 1 else "s"}:')
  lines = [f'{report.data_dir}: {report.records} records in {report.files} files '
           f'({report.bytes_read / 2**20:.1f} MiB, {report.jpegs} JPEGs) read in '
           f'{report.seconds:.1f} s: {found}']
  lines += [f'  {p.describe()}' for p in report.problems[:max_lines]]
  if len(report.problems) > max_lines:
    lines.append(f'  ... and {len(report.problems) - max_lines} more')
  if not report.ok:
    lines.append('Rebuild the damaged shards (run tools/make_tfrecords.py into a new folder, or '
                 'copy them again from the source).')
  return '\n'.join(lines)
