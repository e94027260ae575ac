"""A cheap structural check of a JPEG: what the record reader runs on every JPEG it reads.

Why: the reader never reads a record whole (`record_index`), so the record's CRC is not checked;
a JPEG that is truncated or has a damaged header is named by this check instead (a flipped bit in
entropy-coded data is not: it decodes to a wrong picture). Plain Python, no TensorFlow.
"""

from __future__ import annotations

# JPEG markers without a length field (RSTn, SOI, EOI, TEM) and the start of scan.
_STANDALONE_MARKERS = frozenset(range(0xD0, 0xDA)) | {0x01}
_SOS = 0xDA


def jpeg_problem(data: bytes) -> str | None:
  """What is structurally wrong with a JPEG (None if nothing): SOI, marker segments up to the scan, EOI.

  Cheap (the headers are a few hundred bytes): run on every JPEG read.
  """
  if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
    return 'does not start with a JPEG SOI marker'
  if data[-2] != 0xFF or data[-1] != 0xD9:
    return 'does not end with a JPEG EOI marker (truncated?)'
  pos = 2
  while True:
    if pos + 4 > len(data) or data[pos] != 0xFF:
      return f'bad JPEG marker segment at byte {pos}'
    marker = data[pos + 1]
    if marker == 0xFF:  # fill byte
      pos += 1
      continue
    if marker in _STANDALONE_MARKERS or marker == 0x00:
      return f'unexpected JPEG marker 0x{marker:02X} at byte {pos}'
    length = (data[pos + 2] << 8) | data[pos + 3]
    if length < 2 or pos + 2 + length > len(data) - 2:
      return f'JPEG segment at byte {pos} runs past the data'
    if marker == _SOS:
      return None
    pos += 2 + length
