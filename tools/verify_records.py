r"""Reads every record of a records folder and lists the damaged videos, before training meets them.

Checks the TFRecord framing and CRCs of every shard, parses every record and decodes every JPEG
(as the input pipeline decodes them), and, where the folder has its `twostream_metadata.json`, that
each partition holds exactly the videos the metadata lists. See
twostream_jax/data/record_verification.py.

Run it after copying or downloading a data set:
  python tools/verify_records.py data/ucf101
Exit status: 0 when every record is sound, 1 when something is damaged (each problem is printed with
file, record, byte offset, video and frame), 2 when the folder cannot be verified at all.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags

from twostream_jax.data import dataset_metadata
from twostream_jax.data import record_verification

_NUM_THREADS = flags.DEFINE_integer('num_threads', 0, 'Records checked at once (0: one per CPU).')
_MAX_LINES = flags.DEFINE_integer('max_lines', 50, 'Problems printed (all are counted).')
_PROGRESS = flags.DEFINE_bool('progress', True, 'Show a progress bar on stderr.')


def _fail(message: str) -> None:
  print(f'verify_records.py: error: {message}', file=sys.stderr)
  sys.exit(2)


def main(argv: list[str]) -> None:
  if len(argv) != 2:
    _fail('give one records folder: python tools/verify_records.py DIR')
  if _NUM_THREADS.value < 0:
    _fail(f'--num_threads={_NUM_THREADS.value} must be >= 0')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  try:
    report = record_verification.verify_folder(argv[1], _NUM_THREADS.value, _PROGRESS.value)
  except (record_verification.VerificationError, dataset_metadata.DatasetError) as e:
    _fail(str(e))
  print(record_verification.format_report(report, _MAX_LINES.value))
  sys.exit(0 if report.ok else 1)


if __name__ == '__main__':
  app.run(main)
