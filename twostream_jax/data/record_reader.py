"""Reads chosen JPEGs of one video record (or a batch of records) at their byte offsets.

The first read of a record walks the framing of the lists it reads (the head of each JPEG, never
its data) and caches where each JPEG lies; every read then fetches only the chosen JPEGs. Each JPEG
is checked for structure (`jpeg_structure`): a damaged one raises `CorruptRecordError` naming the
file, record, video and frame, or its record is skipped (`skip_corrupt`). tf.data calls the reader
from its threads through `tf.numpy_function`; `_ExitGuard` keeps such calls from running while
CPython finalises (docs/ARCHITECTURE.md, "Reading").
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from typing import Sequence

import numpy as np

from twostream_jax.data import read_statistics
from twostream_jax.data import tfrecord_framing
from twostream_jax.data.jpeg_structure import JpegCheck
from twostream_jax.data.record_index import (REBUILD, CorruptRecordError, LIST_FEATURES,
                                             RecordIndex, RecordIndexError)


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
          length, p = tfrecord_framing.read_varint(head, 1)
          starts.append(pos + p)
          lengths.append(length)
          pos += p + length
        if pos != end:
          raise ValueError('BytesList framing does not fill its range')
      except (ValueError, IndexError) as e:
        raise RecordIndexError(f'{ix.describe(r)}: bad {LIST_FEATURES[f]} list ({e}); {REBUILD}') from e
      expected = n if f == 0 else n - 1
      if len(starts) != expected:
        raise RecordIndexError(f'{ix.describe(r)}: {len(starts)} values in {LIST_FEATURES[f]}, '
                               f'expected {expected} for {n} frames; {REBUILD}')
      locations.append((np.asarray(starts, np.int64), np.asarray(lengths, np.int64)))
    self._values[r] = locations
    return locations

  def _pread(self, file_id: int, offset: int, length: int) -> bytes:
    path = self._index.files[file_id]
    if tfrecord_framing.is_local(path):
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
        handles[file_id] = tfrecord_framing.open_file(path)
      handles[file_id].seek(offset)
      data = handles[file_id].read(length)
    self._bytes_read += len(data)  # a racy sum under threads is fine for a statistic
    read_statistics.add(read_bytes=len(data))
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
      read_statistics.add(jpeg_bytes=size)
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
