"""Random access to video records: a cheap index pass over TFRecord shards and a reader of single JPEGs.

Why not stream the shards with `tf.data.TFRecordDataset`: one record holds a whole video (all frames
and flow fields, megabytes), while a training example needs one frame or L flow fields. Streaming
reads and parses every byte of every record for each example (about 3x the JPEG decoding time on
realistic records), cannot skip to a training step without reading the skipped records, and cannot
draw videos by class without reading them all. Instead:

  * `index_records` walks the record framing of the shards (TFRecord headers and the protobuf framing
    of `record_format`'s `tf.train.Example`) without reading the frame data: per record it keeps
    the byte offset, label, video id, number of frames and the byte ranges of the `frames`, `flow_x`
    and `flow_y` lists. It checks each record header's CRC and the framing, so a truncated or
    garbled shard fails here with its file name.
  * `RecordReader.read` returns the chosen JPEGs of one record. The first read of a record walks the
    framing of the lists it reads (about 11 bytes at the head of each JPEG, never the JPEG data)
    and caches where each JPEG lies; every read then fetches only the chosen JPEGs (`os.pread` for
    local files, `tf.io.gfile` otherwise). Bytes read are counted (`RecordReader.bytes_read`).

Corruption. The index pass checks every record header's CRC and the framing. Reading a record
whole to check its data CRC would read the training split once more during the first steps
(megabytes per video for one frame), so the reader checks what it reads instead: each JPEG must
start with SOI, hold well-formed marker segments up to its scan and end with EOI; a JPEG that does
not fails with `CorruptRecordError` naming the file, record, video and frame or flow field (a
damaged record can also be skipped: `RecordReader(..., skip_corrupt=True)`). A flipped bit inside
entropy-coded or table data decodes without error and is not detected here: verify the records'
CRCs offline for that (`tf_record_random_reader` on every record).

The TFRecord layout is `uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)`.

tf.data calls the reader through `tf.numpy_function`, i.e. takes the GIL from a TF thread. If that
happens once CPython has begun finalising, the thread is stopped inside the op and tearing the
iterator down later waits for it forever: a program that exits with a live iterator (a training
loop's) hung at exit in about 1 run of 4. `_ExitGuard` prevents it: at exit (atexit handlers run
before finalisation) calls are refused at once and the exit waits until no call has run for a
moment, i.e. the pipelines' buffers are full and their threads idle.
TensorFlow is imported lazily; the index is numpy.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import dataclasses
import logging
import os
import struct
import threading
import time
import weakref
from typing import Sequence

import numpy as np

from twostream_jax.data import dataset_metadata
from twostream_jax.data.jpeg_structure import JpegCheck
from twostream_jax.data import record_schema as rf

# The JPEG lists, in the order of `RecordIndex.value_ranges`' second axis. The backward flow lists
# are only in records built with --backward_flow: absent, their range is empty.
LIST_FEATURES = (rf.FRAMES, rf.FLOW_X, rf.FLOW_Y, rf.FLOW_X_BACKWARD, rf.FLOW_Y_BACKWARD)
_OPTIONAL_LISTS = (rf.FLOW_X_BACKWARD, rf.FLOW_Y_BACKWARD)
_SMALL_FEATURES = (rf.LABEL, rf.NUM_FRAMES, rf.VIDEO_ID, rf.HEIGHT, rf.WIDTH)
_HEADER_BYTES = 12
_FOOTER_BYTES = 4
_REBUILD = 'the shard is damaged or was not written by tools/make_tfrecords.py: rebuild it'


class RecordIndexError(dataset_metadata.DatasetError):
  """A shard whose records cannot be read (truncated, corrupt, or not video records)."""


class CorruptRecordError(RecordIndexError):
  """A record whose JPEGs are damaged, found while reading (names file, record, video, frame)."""

  MARKER = 'corrupt video record: '  # starts the message, so that it can be found in a TF error


def _crc32c_table() -> list[int]:
  table = []
  for n in range(256):
    c = n
    for _ in range(8):
      c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
  return table


_CRC_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
  """TFRecord's masked CRC-32C (Castagnoli) of a few bytes (pure Python: use for headers only)."""
  crc = 0xFFFFFFFF
  for b in data:
    crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
  crc ^= 0xFFFFFFFF
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
  """Decodes a protobuf varint at buf[pos]; returns (value, position after it)."""
  value = shift = 0
  while True:
    if pos >= len(buf) or shift > 63:
      raise ValueError('bad varint')
    b = buf[pos]
    pos += 1
    value |= (b & 0x7F) << shift
    if b < 0x80:
      return value, pos
    shift += 7


def _is_local(path: str) -> bool:
  return '://' not in path


def _open(path: str):
  if _is_local(path):
    return open(path, 'rb')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile.GFile(path, 'rb')


class _FileView:
  """Reads small pieces of a file at absolute positions (buffered, so nearby reads are cheap)."""

  def __init__(self, f, size: int):
    self._f, self.size = f, size

  def read(self, pos: int, n: int) -> bytes:
    self._f.seek(pos)
    return self._f.read(min(n, self.size - pos))


class _ExitGuard:
  """Counts reader calls; at exit refuses new ones and waits for quiescence (module docstring)."""

  QUIET_S = 0.2  # no call for this long: the pipelines are idle
  MAX_WAIT_S = 5.0

  def __init__(self, register: bool = True):
    self._lock = threading.Lock()
    self._active = 0
    self._last = time.monotonic()
    self._closing = False
    if register:
      atexit.register(self.wait_until_idle)

  def __enter__(self):
    with self._lock:
      self._active += 1
      self._last = time.monotonic()
    if self._closing:
      self.__exit__()
      raise RecordIndexError('the program is exiting: no more reads')

  def __exit__(self, *unused):
    with self._lock:
      self._active -= 1
      self._last = time.monotonic()

  def wait_until_idle(self) -> None:
    self._closing = True
    deadline = time.monotonic() + self.MAX_WAIT_S
    while time.monotonic() < deadline:
      with self._lock:
        if self._active == 0 and time.monotonic() - self._last > self.QUIET_S:
          return
      time.sleep(0.02)


_EXIT_GUARD = _ExitGuard()
# Process-wide totals of all readers: [bytes read from shards, bytes of the JPEGs returned].
_TOTALS = [0, 0]


def read_totals() -> tuple[int, int]:
  """(bytes read from shards, bytes of JPEGs returned) by every `RecordReader` of this process so far.

  Their ratio is the read amplification of the reading (racy sums under threads: a statistic).
  """
  return _TOTALS[0], _TOTALS[1]


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
  if key == rf.VIDEO_ID:
    return feature.bytes_list.value[0].decode()
  return int(feature.int64_list.value[0])


def _index_example(view: _FileView, start: int, end: int) -> dict:
  """Reads the framing of one serialised Example in [start, end) of the file; see the module doc."""
  read = lambda pos, n: view.read(pos, min(n, end - pos))  # never past the record
  head = read(start, 16)
  if not head or head[0] != 0x0A:  # Example.features: field 1, length-delimited.
    raise ValueError('not a tf.train.Example with features')
  length, p = _varint(head, 1)
  pos, out = start + p, {}
  if pos + length != end:
    raise ValueError('Example framing does not fill the record')
  while pos < end:  # Features.feature: repeated map entries (field 1).
    head = read(pos, 64)
    if head[0] != 0x0A:
      raise ValueError('unexpected field in Features')
    entry_len, p = _varint(head, 1)
    entry_start, entry_end = pos + p, pos + p + entry_len
    if entry_end > end:
      raise ValueError('map entry runs past the record')
    key, value_range, q = None, None, entry_start
    while q < entry_end:  # MapEntry: key (field 1) and value (field 2), in any order.
      head = read(q, 16)
      tag, p = _varint(head, 0)
      if tag & 7 != 2:
        raise ValueError('unexpected wire type in a map entry')
      n, p = _varint(head, p)
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
        n, p = _varint(head, 1)
        out[key] = (value_range[0] + p, value_range[0] + p + n)
      else:
        raise ValueError(f'{key} is not a list of bytes')
    pos = entry_end
  missing = [k for k in _SMALL_FEATURES + LIST_FEATURES if k not in out and k not in _OPTIONAL_LISTS]
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
  with _open(path) as f:
    view, pos = _FileView(f, size), 0
    while pos < size:
      where = f'{path}: record {len(out)} at byte {pos}'
      header = view.read(pos, _HEADER_BYTES)
      if len(header) < _HEADER_BYTES:
        raise RecordIndexError(f'{where}: file ends inside a record header (truncated); {_REBUILD}')
      length, crc = struct.unpack('<QI', header)
      if masked_crc32c(header[:8]) != crc:
        raise RecordIndexError(f'{where}: record header checksum mismatch (corrupt); {_REBUILD}')
      start, end = pos + _HEADER_BYTES, pos + _HEADER_BYTES + length
      if end + _FOOTER_BYTES > size:
        raise RecordIndexError(f'{where}: record of {length} bytes runs past the end of the file '
                               f'({size} bytes; truncated); {_REBUILD}')
      try:
        fields = _index_example(view, start, end)
      except (ValueError, IndexError, UnicodeDecodeError) as e:
        raise RecordIndexError(f'{where}: not a twostream_jax video record ({e}); {_REBUILD}') from e
      out.append((pos, fields))
      pos = end + _FOOTER_BYTES
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
      labels.append(fields[rf.LABEL])
      num_frames.append(fields[rf.NUM_FRAMES])
      video_ids.append(fields[rf.VIDEO_ID])
      ranges.append([fields.get(k, (0, 0)) for k in LIST_FEATURES])
      sizes.append((fields[rf.HEIGHT], fields[rf.WIDTH]))
  sizes = np.asarray(sizes, np.int32).reshape(-1, 2)
  return RecordIndex(files=files, file_ids=np.asarray(file_ids, np.int32),
                     offsets=np.asarray(offsets, np.int64), labels=np.asarray(labels, np.int32),
                     num_frames=np.asarray(num_frames, np.int32), video_ids=video_ids,
                     value_ranges=np.asarray(ranges, np.int64).reshape(-1, len(LIST_FEATURES), 2),
                     heights=sizes[:, 0].copy(), widths=sizes[:, 1].copy())


class RecordReader:
  """Reads chosen JPEGs of indexed records; thread-safe (tf.data calls it from several threads).

  Args:
    index: the records.
    features: the lists it will read, a subset of `LIST_FEATURES` (only their offsets are cached:
      about 16 bytes per JPEG of each record read so far).
    skip_corrupt: a damaged record gives no JPEGs (`read_batch`'s `ok` is False; logged once per
      record) instead of raising `CorruptRecordError`.
  """

  _HEAD = 11  # a BytesList value's tag (1 byte) and length (a varint of at most 10 bytes)

  def __init__(self, index: RecordIndex, features: Sequence[str], skip_corrupt: bool = False):
    self._index = index
    self._features = [LIST_FEATURES.index(f) for f in features]
    self._skip_corrupt = skip_corrupt
    self._values: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    self._corrupt: set[int] = set()
    self._fds: dict[int, int] = {}
    self._lock = threading.Lock()
    self._local = threading.local()
    self._bytes_read = 0
    self._jpeg_bytes = 0
    self._check = JpegCheck()
    weakref.finalize(self, _close_all, self._fds)

  @property
  def bytes_read(self) -> int:
    """Bytes this reader read from the shards so far (JPEGs and the framing walked to find them)."""
    return self._bytes_read

  @property
  def jpeg_bytes(self) -> int:
    """Bytes of the JPEGs it returned so far."""
    return self._jpeg_bytes

  def _locate(self, r: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Walks the framing of record r's lists (module docstring); returns (starts, lengths) per feature."""
    ix = self._index
    file_id, n = int(ix.file_ids[r]), int(ix.num_frames[r])
    locations = []
    for f in self._features:
      start, end = (int(v) for v in ix.value_ranges[r, f])
      starts, lengths, pos = [], [], start
      try:
        while pos < end:
          head = self._pread(file_id, pos, min(self._HEAD, end - pos))
          if head[0] != 0x0A:
            raise ValueError('unexpected field in a BytesList')
          length, p = _varint(head, 1)
          starts.append(pos + p)
          lengths.append(length)
          pos += p + length
        if pos != end:
          raise ValueError('BytesList framing does not fill its range')
      except (ValueError, IndexError) as e:
        raise RecordIndexError(f'{ix.describe(r)}: bad {LIST_FEATURES[f]} list ({e}); {_REBUILD}') from e
      expected = n if f == 0 else n - 1
      if len(starts) != expected:
        raise RecordIndexError(f'{ix.describe(r)}: {len(starts)} values in {LIST_FEATURES[f]}, '
                               f'expected {expected} for {n} frames; {_REBUILD}')
      locations.append((np.asarray(starts, np.int64), np.asarray(lengths, np.int64)))
    self._values[r] = locations
    return locations

  def _pread(self, file_id: int, offset: int, length: int) -> bytes:
    path = self._index.files[file_id]
    if _is_local(path):
      fd = self._fds.get(file_id)
      if fd is None:
        with self._lock:
          fd = self._fds.get(file_id)
          if fd is None:
            fd = self._fds[file_id] = os.open(path, os.O_RDONLY)
      data = os.pread(fd, length, offset)
    else:
      handles = self._local.__dict__.setdefault('handles', {})
      if file_id not in handles:
        handles[file_id] = _open(path)
      handles[file_id].seek(offset)
      data = handles[file_id].read(length)
    self._bytes_read += len(data)  # a racy sum under threads is fine for a statistic
    _TOTALS[0] += len(data)
    if len(data) != length:
      raise RecordIndexError(f'{path}: short read at byte {offset} (file changed since indexing?)')
    return data

  def _read_values(self, file_id: int, starts: np.ndarray, lengths: np.ndarray) -> list[bytes]:
    """The values at byte ranges (starts, lengths) of a file, in their order: one read per run of
    values that follow each other in the list (only their framing, at most `_HEAD` bytes each,
    between them), e.g. a flow stack's L fields or all of a test video's fields."""
    starts, lengths = starts.tolist(), lengths.tolist()  # plain Python: a few values per call
    order = sorted(range(len(starts)), key=starts.__getitem__)
    values = [b''] * len(starts)
    i = 0
    while i < len(order):
      j, end = i, starts[order[i]] + lengths[order[i]]
      while j + 1 < len(order) and 0 <= starts[order[j + 1]] - end <= self._HEAD:
        j += 1
        end = starts[order[j]] + lengths[order[j]]
      base = starts[order[i]]
      data = self._pread(file_id, base, end - base)
      for k in order[i:j + 1]:
        values[k] = data[starts[k] - base:starts[k] + lengths[k] - base]
      i = j + 1
    return values

  def read(self, record: int, indices: np.ndarray) -> tuple[np.ndarray, ...]:
    """Returns the JPEGs at `indices` of each feature of record `record`.

    Args:
      record: index into the `RecordIndex`.
      indices: int `[K]`, value indices (frame i, or flow field i: flow(i -> i+1)).

    Returns:
      One object array of K `bytes` per feature given to the constructor.

    Raises:
      CorruptRecordError: a JPEG read is damaged (also with skip_corrupt: `read` has no way to skip).
    """
    with _EXIT_GUARD:
      return self._read(int(record), np.asarray(indices, np.int64))

  def _read(self, r: int, indices: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(_object_array(values) for values in self._read_lists(r, indices))

  def _read_lists(self, r: int, indices: np.ndarray) -> list[list[bytes]]:
    """The JPEGs at `indices` of each feature of record r, checked (`JpegCheck`)."""
    locations = self._values.get(r)
    if locations is None:
      locations = self._locate(r)
    file_id = int(self._index.file_ids[r])
    out = []
    for f, (starts, lengths) in zip(self._features, locations):
      values = self._read_values(file_id, starts[indices], lengths[indices])
      for i, data in enumerate(values):
        problem = self._check(data)
        if problem:
          what = 'frame' if f == 0 else f'{LIST_FEATURES[f]} field'
          raise CorruptRecordError(f'{CorruptRecordError.MARKER}{self._index.describe(r)}: {what} '
                                   f'{int(indices[i])} {problem}; rebuild the records with '
                                   'tools/make_tfrecords.py, or set data.skip_corrupt_records=True '
                                   'to skip such records')
      size = sum(map(len, values))
      self._jpeg_bytes += size
      _TOTALS[1] += size
      out.append(values)
    return out

  def read_batch(self, records: np.ndarray,
                 indices: np.ndarray) -> tuple[np.ndarray, ...]:
    """`read` of several records in one call (one Python round trip for a group of examples).

    Args:
      records: int `[G]`.
      indices: int `[G, K]`.

    Returns:
      One object array `[G, K]` of `bytes` per feature given to the constructor, then bool `[G]`
      `ok`: False for a damaged record skipped (skip_corrupt), whose JPEGs are empty.
    """
    indices = np.asarray(indices, np.int64)
    shape = indices.shape
    out = [np.full(shape, b'', dtype=object) for _ in self._features]
    ok = np.ones(shape[:1], bool)
    with _EXIT_GUARD:
      for g, (r, i) in enumerate(zip(records.tolist(), indices)):
        try:
          for o, values in zip(out, self._read_lists(r, i)):
            o[g] = _object_array(values)  # a list of bytes would be made an 'S' array first
        except CorruptRecordError as e:
          if not self._skip_corrupt:
            raise
          if r not in self._corrupt:
            self._corrupt.add(r)
            logging.warning('skipping %s', str(e)[len(CorruptRecordError.MARKER):].split('; rebuild')[0])
          for o in out:
            o[g] = b''
          ok[g] = False
    return tuple(out) + (ok,)


def _close_all(fds: dict[int, int]) -> None:
  for fd in fds.values():
    os.close(fd)


def _object_array(values: list[bytes]) -> np.ndarray:
  out = np.empty(len(values), dtype=object)
  out[:] = values
  return out
