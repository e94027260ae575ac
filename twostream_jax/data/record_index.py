"""An index of video records in TFRecord shards, built by walking their framing, not their data.

One record holds a whole video while an example needs one frame or L flow fields, so the shards are
not streamed: `index_records` walks the TFRecord headers and the protobuf framing of each
`tf.train.Example` and keeps, per record, its offset, label, video id, frame count, frame size and
the byte ranges of its JPEG lists (`record_reader` then reads single JPEGs). Every record header's
CRC and the framing are checked, so a truncated or garbled shard fails here naming its file.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import struct
from typing import Sequence

import numpy as np

from twostream_jax.data import dataset_metadata
from twostream_jax.data import record_schema
from twostream_jax.data import tfrecord_framing

# The JPEG lists, in the order of `RecordIndex.value_ranges`' second axis. The backward flow lists
# are only in records built with --backward_flow: absent, their range is empty.
LIST_FEATURES = (record_schema.FRAMES, record_schema.FLOW_X, record_schema.FLOW_Y, record_schema.FLOW_X_BACKWARD, record_schema.FLOW_Y_BACKWARD)
OPTIONAL_LISTS = (record_schema.FLOW_X_BACKWARD, record_schema.FLOW_Y_BACKWARD)
_SMALL_FEATURES = (record_schema.LABEL, record_schema.NUM_FRAMES, record_schema.VIDEO_ID, record_schema.HEIGHT, record_schema.WIDTH)
REBUILD = 'the shard is damaged or was not written by tools/make_tfrecords.py: rebuild it'


class RecordIndexError(dataset_metadata.DatasetError):
  """A shard whose records cannot be read (truncated, corrupt, or not video records)."""


class CorruptRecordError(RecordIndexError):
  """A record whose JPEGs are damaged, found while reading (names file, record, video, frame)."""

  MARKER = 'corrupt video record: '  # starts the message, so that it can be found in a TF error


@dataclasses.dataclass
class RecordIndex:
  """Where the records of some shards lie, with what `index_records` read of each (R records).

  Attributes:
    files: the shard paths; records are in `files` order, then in file order.
    file_ids: int32 `[R]`, index into `files`.
    offsets: int64 `[R]`, byte offset of each record's 12-byte TFRecord header.
    labels: int32 `[R]`.
    num_frames: int32 `[R]`, N (the record has N frames and N-1 flow fields of each component).
    heights, widths: int32 `[R]`, the stored frame size.
    video_ids: R strings.
    value_ranges: int64 `[R, 5, 2]`, [start, end) byte range of the serialised `BytesList` of
      frames, flow_x, flow_y, flow_x_backward and flow_y_backward (see `LIST_FEATURES`; empty
      for backward lists a record does not have).
  """
  files: list[str]
  file_ids: np.ndarray
  offsets: np.ndarray
  labels: np.ndarray
  num_frames: np.ndarray
  video_ids: list[str]
  value_ranges: np.ndarray
  heights: np.ndarray
  widths: np.ndarray

  def __len__(self) -> int:
    return len(self.video_ids)

  def describe(self, r: int) -> str:
    return f'record {r} ({self.video_ids[r]!r}) at byte {self.offsets[r]} of {self.files[self.file_ids[r]]}'


def _parse_small_feature(key: str, data: bytes):
  from tensorflow.core.example import feature_pb2  # pylint: disable=g-import-not-at-top
  feature = feature_pb2.Feature.FromString(data)
  if key == record_schema.VIDEO_ID:
    return feature.bytes_list.value[0].decode()
  return int(feature.int64_list.value[0])


def _index_example(view: tfrecord_framing.FileView, start: int, end: int) -> dict:
  """Reads the framing of one serialised Example in [start, end) of the file; see the module doc."""
  read = lambda pos, n: view.read(pos, min(n, end - pos))  # never past the record
  head = read(start, 16)
  if not head or head[0] != 0x0A:  # Example.features: field 1, length-delimited.
    raise ValueError('not a tf.train.Example with features')
  length, p = tfrecord_framing.read_varint(head, 1)
  pos, out = start + p, {}
  if pos + length != end:
    raise ValueError('Example framing does not fill the record')
  while pos < end:  # Features.feature: repeated map entries (field 1).
    head = read(pos, 64)
    if head[0] != 0x0A:
      raise ValueError('unexpected field in Features')
    entry_len, p = tfrecord_framing.read_varint(head, 1)
    entry_start, entry_end = pos + p, pos + p + entry_len
    if entry_end > end:
      raise ValueError('map entry runs past the record')
    key, value_range, q = None, None, entry_start
    while q < entry_end:  # MapEntry: key (field 1) and value (field 2), in any order.
      head = read(q, 16)
      tag, p = tfrecord_framing.read_varint(head, 0)
      if tag & 7 != 2:
        raise ValueError('unexpected wire type in a map entry')
      n, p = tfrecord_framing.read_varint(head, p)
      if tag >> 3 == 1:
        key = read(q + p, n).decode()
      elif tag >> 3 == 2:
        value_range = (q + p, q + p + n)
      q += p + n
    if q != entry_end or key is None or value_range is None:
      raise ValueError('malformed map entry')
    if key in _SMALL_FEATURES:
      out[key] = _parse_small_feature(key, read(value_range[0], value_range[1] - value_range[0]))
    elif key in LIST_FEATURES:
      head = read(value_range[0], 16)
      if value_range[1] == value_range[0]:  # An empty Feature: no values.
        out[key] = (value_range[0], value_range[0])
      elif head[0] == 0x0A:  # Feature.bytes_list
        n, p = tfrecord_framing.read_varint(head, 1)
        out[key] = (value_range[0] + p, value_range[0] + p + n)
      else:
        raise ValueError(f'{key} is not a list of bytes')
    pos = entry_end
  missing = [k for k in _SMALL_FEATURES + LIST_FEATURES if k not in out and k not in OPTIONAL_LISTS]
  if missing:
    raise ValueError(f'missing features {missing}')
  return out


def _index_file(path: str) -> list[tuple[int, dict]]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    size = tf.io.gfile.stat(path).length
  except tf.errors.NotFoundError as e:
    raise RecordIndexError(f'shard {path} is missing: the records folder is incomplete; run '
                           'tools/make_tfrecords.py again to complete it') from e
  out = []
  with tfrecord_framing.open_file(path) as f:
    view, pos = tfrecord_framing.FileView(f, size), 0
    while pos < size:
      where = f'{path}: record {len(out)} at byte {pos}'
      header = view.read(pos, tfrecord_framing.HEADER_BYTES)
      if len(header) < tfrecord_framing.HEADER_BYTES:
        raise RecordIndexError(f'{where}: file ends inside a record header (truncated); {REBUILD}')
      length, crc = struct.unpack('<QI', header)
      if tfrecord_framing.masked_crc32c(header[:8]) != crc:
        raise RecordIndexError(f'{where}: record header checksum mismatch (corrupt); {REBUILD}')
      start, end = pos + tfrecord_framing.HEADER_BYTES, pos + tfrecord_framing.HEADER_BYTES + length
      if end + tfrecord_framing.FOOTER_BYTES > size:
        raise RecordIndexError(f'{where}: record of {length} bytes runs past the end of the file '
                               f'({size} bytes; truncated); {REBUILD}')
      try:
        fields = _index_example(view, start, end)
      except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise RecordIndexError(f'{where}: not a twostream_jax video record ({e}); {REBUILD}') from e
      out.append((pos, fields))
      pos = end + tfrecord_framing.FOOTER_BYTES
  return out


def index_records(files: Sequence[str], *, num_threads: int = 16) -> RecordIndex:
  """Indexes the records of some TFRecord shards without reading their frames (module docstring).

  Args:
    files: shard paths (local or any `tf.io.gfile` file system).
    num_threads: files indexed concurrently (helps on remote file systems).

  Returns:
    The `RecordIndex` of all records, in `files` order then file order.

  Raises:
    RecordIndexError: naming the file, if a shard is missing, truncated or not video records.
  """
  files = list(files)
  with concurrent.futures.ThreadPoolExecutor(max(1, min(num_threads, len(files)))) as pool:
    per_file = list(pool.map(_index_file, files))
  file_ids, offsets, labels, num_frames, video_ids, ranges, sizes = [], [], [], [], [], [], []
  for i, records in enumerate(per_file):
    for offset, fields in records:
      file_ids.append(i)
      offsets.append(offset)
      labels.append(fields[record_schema.LABEL])
      num_frames.append(fields[record_schema.NUM_FRAMES])
      video_ids.append(fields[record_schema.VIDEO_ID])
      ranges.append([fields.get(k, (0, 0)) for k in LIST_FEATURES])
      sizes.append((fields[record_schema.HEIGHT], fields[record_schema.WIDTH]))
  sizes = np.asarray(sizes, np.int32).reshape(-1, 2)
  return RecordIndex(files=files, file_ids=np.asarray(file_ids, np.int32),
                     offsets=np.asarray(offsets, np.int64), labels=np.asarray(labels, np.int32),
                     num_frames=np.asarray(num_frames, np.int32), video_ids=video_ids,
                     value_ranges=np.asarray(ranges, np.int64).reshape(-1, len(LIST_FEATURES), 2),
                     heights=sizes[:, 0].copy(), widths=sizes[:, 1].copy())
