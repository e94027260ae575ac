"""TensorBoard event files and a concise console line.

Only process 0 writes. TensorFlow (tf.summary) is imported when the writer is created, so that the
modules that import this one stay importable without TensorFlow.
"""

from __future__ import annotations

import datetime
import logging
import os
from typing import Mapping

import jax


def format_duration(seconds: float) -> str:
  """3725 -> '1:02:05'."""
  return str(datetime.timedelta(seconds=int(max(seconds, 0))))


class MetricWriter:
  """Writes scalars to `<logdir>` as TensorBoard events (process 0 only)."""

  def __init__(self, logdir: str):
    self._writer = None
    if jax.process_index() == 0:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      os.makedirs(logdir, exist_ok=True)
      self._writer = tf.summary.create_file_writer(logdir)

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if self._writer is None:
      return
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    with self._writer.as_default():
      for name, value in scalars.items():
        tf.summary.scalar(name, float(value), step=int(step))
    self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()


def console_line(step: int, num_steps: int, scalars: Mapping[str, float], eta_seconds: float) -> str:
  """'step 120/80000 (0.2%) | loss 2.3012 | accuracy 0.125 | ... | ETA 1:02:05'."""
  parts = [f'step {step}/{num_steps} ({100.0 * step / max(num_steps, 1):.1f}%)']
  for name, value in scalars.items():
    parts.append(f'{name} {value:.4g}')
  parts.append(f'ETA {format_duration(eta_seconds)}')
  return ' | '.join(parts)


def log(message: str) -> None:
  """Logs on process 0 only (and prints, so that a plain terminal sees it)."""
  if jax.process_index() == 0:
    logging.info('%s', message)
    print(message, flush=True)
