"""TensorFlow pieces the training and test-protocol pipelines share.

Which record lists an example reads, the stacking of bi-directional flow JPEGs, padding onto a
canvas, the flow quantisation step, checks of an index against its metadata, the per-process batch,
and batches as numpy with a damaged record raised as one clear error.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import tensorflow as tf

from twostream_jax.data import data_spec
from twostream_jax.data import dataset_metadata
from twostream_jax.data import record_index
from twostream_jax.data import record_schema

AUTOTUNE = tf.data.AUTOTUNE


def parallelism(settings: data_spec.DataSettings) -> int:
  """Parallel calls of a pipeline's decoding stages (`data.decode_parallelism`, 0: AUTOTUNE)."""
  return settings.decode_parallelism or AUTOTUNE


def local_batch_size(global_batch_size: int, process_index: int, process_count: int) -> int:
  """This process's share of a global batch (it must split evenly)."""
  if not 0 <= process_index < process_count:
    raise data_spec.InputConfigError(f'process_index {process_index} is not in [0, {process_count})')
  if global_batch_size < 1 or global_batch_size % process_count:
    raise data_spec.InputConfigError(
        f'the global batch size {global_batch_size} must be a positive multiple of the number of '
        f'processes ({process_count})')
  return global_batch_size // process_count


def check_records(index: record_index.RecordIndex,
                  metadata: dataset_metadata.DatasetMetadata) -> None:
  """Refuses records whose labels or frame counts do not fit the metadata."""
  bad = np.flatnonzero((index.labels < 0) | (index.labels >= metadata.num_classes) |
                       (index.num_frames < 2))
  if bad.size:
    raise record_index.RecordIndexError(
        f'{index.describe(int(bad[0]))}: label {index.labels[bad[0]]} (of {metadata.num_classes} '
        f'classes) or {index.num_frames[bad[0]]} frames (>= 2 needed) do not fit the metadata; '
        'rebuild the records with tools/make_tfrecords.py')


def flow_step(bound_px: float) -> tf.Tensor:
  """B / 127.5: pixels per quantisation level of flow stored with bound B."""
  return tf.constant(record_schema.flow_quantisation_step(bound_px), tf.float32)


def pad_to(image, height: int, width: int, planes: bool):
  """Zero-pads uint8 `[..., h, w, c]` (or `[..., c, h, w]`: planes) at the bottom and right to a
  canvas of height x width."""
  rank = len(image.shape)
  h_axis = rank - 2 if planes else rank - 3
  shape = tf.shape(image)
  pads = [[0, 0]] * rank
  pads[h_axis], pads[h_axis + 1] = [0, height - shape[h_axis]], [0, width - shape[h_axis + 1]]
  out = tf.pad(image, pads)
  static = list(image.shape)
  static[h_axis], static[h_axis + 1] = height, width
  return tf.ensure_shape(out, static)


def record_lists(s: data_spec.DataSettings) -> list[str]:
  """The record lists an example reads: frames; forward flow; or forward and backward flow."""
  if s.modality == 'rgb':
    return [record_schema.FRAMES]
  if s.direction == 'bidirectional':
    return [record_schema.FLOW_X, record_schema.FLOW_Y, record_schema.FLOW_X_BACKWARD,
            record_schema.FLOW_Y_BACKWARD]
  return [record_schema.FLOW_X, record_schema.FLOW_Y]


def stack_jpegs(s: data_spec.DataSettings, jpegs):
  """The (x, y) JPEGs `[L]` of a stack over fields t .. t+L-1 read from `record_lists(s)`.

  Bi-directional (the paper, section 3.1, with tau = t + L/2): the backward fields of pairs
  t .. tau-1 (flow(i+1 -> i), ending at tau), then the forward fields tau .. tau+L/2-1: the same
  window of pairs as a forward stack, so the sampling rules (`sampling`) serve both.
  """
  if s.direction != 'bidirectional':
    return jpegs[0], jpegs[1]
  half = s.num_fields // 2
  return (tf.concat([jpegs[2][:half], jpegs[0][half:]], 0),
          tf.concat([jpegs[3][:half], jpegs[1][half:]], 0))


def numpy_batches(dataset: tf.data.Dataset) -> Iterator[dict[str, np.ndarray]]:
  """`dataset.as_numpy_iterator()`, with a damaged record raised as one clear `CorruptRecordError`.

  tf.data reports an exception of the reader (run through `tf.numpy_function`) as a TF error
  whose message holds a Python traceback; this gives the reader's one-line message instead.
  """
  iterator = dataset.as_numpy_iterator()
  marker = record_index.CorruptRecordError.MARKER
  while True:
    try:
      batch = next(iterator)
    except StopIteration:
      return
    except tf.errors.OpError as e:
      message = str(e.message)
      start = message.find(marker)
      if start < 0:
        raise
      line = message[start + len(marker):].split('\n')[0].strip()
      raise record_index.CorruptRecordError(line) from e
    yield batch


def deterministic_options() -> tf.data.Options:
  options = tf.data.Options()
  options.deterministic = True
  return options
