"""TFRecord framing read by hand: masked CRC-32C, protobuf varints, small reads at byte offsets.

A TFRecord is `uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)`.
Local files are read through Python's file objects (and `os.pread` by the reader), other file
systems (gs://, ...) through `tf.io.gfile`, imported only then.
"""

from __future__ import annotations

HEADER_BYTES = 12
FOOTER_BYTES = 4


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


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
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


def is_local(path: str) -> bool:
  return '://' not in path


def open_file(path: str):
  """A binary file object for a local path or a `tf.io.gfile` URL."""
  if is_local(path):
    return open(path, 'rb')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile.GFile(path, 'rb')


class FileView:
  """Reads small pieces of a file at absolute positions (buffered, so nearby reads are cheap)."""

  def __init__(self, f, size: int):
    self._f, self.size = f, size

  def read(self, pos: int, n: int) -> bytes:
    self._f.seek(pos)
    return self._f.read(min(n, self.size - pos))
