"""Process-wide totals of what the record readers read, for the input-pipeline benchmark.

Racy sums under threads: a statistic, never used to decide anything.
"""

_TOTALS = [0, 0]  # bytes read from shards, bytes of the JPEGs returned


def add(read_bytes: int = 0, jpeg_bytes: int = 0) -> None:
  _TOTALS[0] += read_bytes
  _TOTALS[1] += jpeg_bytes


def totals() -> tuple[int, int]:
  """(bytes read from shards, bytes of JPEGs returned) by every reader of this process so far.

  Their ratio is the read amplification of the reading.
  """
  return _TOTALS[0], _TOTALS[1]
