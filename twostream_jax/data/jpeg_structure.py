"""A cheap structural check of a JPEG: what the record reader runs on every JPEG it reads.

Why: the reader never reads a record whole (`record_index`), so the record's CRC is not checked;
a JPEG that is truncated or has a damaged header is named by this check instead (a flipped bit in
entropy-coded data is not: it decodes to a wrong picture). Plain Python, no TensorFlow.
"""

from __future__ import annotations

import threading

# JPEG markers without a length field (RSTn, SOI, EOI, TEM) and the start of scan.
_STANDALONE_MARKERS = frozenset(range(0xD0, 0xDA)) | {0x01}
_SOS = 0xDA


def _walk(data: bytes) -> tuple[str | None, int]:
  """(what is wrong or None, the end of the start-of-scan segment: the header's length)."""
  n = len(data)
  if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
    return 'does not start with a JPEG SOI marker', 0
  if data[n - 2] != 0xFF or data[n - 1] != 0xD9:
    return 'does not end with a JPEG EOI marker (truncated?)', 0
  pos, limit = 2, n - 2
  while True:
    if pos + 4 > n or data[pos] != 0xFF:
      return f'bad JPEG marker segment at byte {pos}', 0
    marker = data[pos + 1]
    if marker == 0xFF:  # fill byte
      pos += 1
      continue
    if marker in _STANDALONE_MARKERS or marker == 0x00:
      return f'unexpected JPEG marker 0x{marker:02X} at byte {pos}', 0
    length = (data[pos + 2] << 8) | data[pos + 3]
    if length < 2 or pos + 2 + length > limit:
      return f'JPEG segment at byte {pos} runs past the data', 0
    if marker == _SOS:
      return None, pos + 2 + length
    pos += 2 + length


def jpeg_problem(data: bytes) -> str | None:
  """What is structurally wrong with a JPEG (None if nothing): SOI, marker segments up to the scan, EOI.

  Cheap (the headers are a few hundred bytes): run on every JPEG read.
  """
  return _walk(data)[0]


class JpegCheck:
  """`jpeg_problem` that remembers the headers it found sound (at most `max_headers`).

  The JPEGs of a data set share a few headers (same encoder, quality and frame size): a JPEG
  that starts with a remembered header and ends with EOI gets the verdict the walk would give
  (None: the walk only reads the header and the length) by one prefix comparison. Thread-safe.
  """

  def __init__(self, max_headers: int = 16):
    self._headers: tuple[bytes, ...] = ()
    self._max = max_headers
    self._lock = threading.Lock()

  def __call__(self, data: bytes) -> str | None:
    n = len(data)
    if n >= 4 and data[n - 2] == 0xFF and data[n - 1] == 0xD9:
      for header in self._headers:
        if n >= len(header) + 2 and data.startswith(header):
          return None
    problem, end = _walk(data)
    if problem is None and len(self._headers) < self._max:
      with self._lock:
        if len(self._headers) < self._max:
          self._headers = self._headers + (bytes(data[:end]),)
    return problem
