"""What a run holds in memory and on disk, from its shapes, checked before anything starts.

Evaluation (data/eval_dataset.py): a batch holds v = max(1, eval_batch_size // (K C)) videos, each
sending its bank, the distinct frames (RGB) or flow planes its K positions use, padded to the
split's largest bank: at most K frames or 2 K L planes, whatever the video's length (a 300-frame
video's bank is no larger than a 260-frame one's). The device then makes v K C float32 views.
Clip-level validation during training batches max(1, eval_batch_size // (val frames x crops))
videos the same way (256 videos of one flow stack each by default). Training: a batch of B crops
(uint8) on the host and B float32 inputs on the device; the record index keeps a few integers per
stored JPEG, so host memory does not grow with the number of videos. `check_fits` refuses, naming
the knob, a configuration whose inputs would take more than half the memory it may use.
Plain Python and numpy: no TensorFlow, no JAX.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from twostream_jax.data import protocol_positions

# Host batches in flight: tf.data's two parallel map stages and prefetch(2), the device prefetch (2).
HOST_BATCHES_IN_FLIGHT = 6


class LimitError(ValueError):
  """A configuration that would not fit; the message names the estimate and the knob to change."""


@dataclasses.dataclass(frozen=True)
class StreamShape:
  """The shapes that size a stream's run.

  Attributes:
    modality: 'rgb' or 'flow'.
    num_fields: L (flow).
    crop: the network input side S.
    frame_hw: the stored frame (height, width), e.g. (256, 341).
    test_frames, test_crops: K and C of the protocol.
    eval_batch_size: views per eval batch (config.train.eval_batch_size).
    train_batch: examples per training batch on this host (config.train.global_batch_size).
    val_frames, val_crops: views per held-out video in validation (config.data.val_num_*).
  """
  modality: str
  num_fields: int
  crop: int
  frame_hw: tuple[int, int]
  test_frames: int = 25
  test_crops: int = 10
  eval_batch_size: int = 256
  train_batch: int = 256
  val_frames: int = 1
  val_crops: int = 1

  @property
  def channels(self) -> int:
    return 3 if self.modality == 'rgb' else 2 * self.num_fields


def bank_items(shape: StreamShape, num_frames: int) -> int:
  """Frames (RGB) or flow planes (x and y of each field) of one video's bank."""
  if shape.modality == 'rgb':
    return int(np.unique(protocol_positions.frame_indices(num_frames, shape.test_frames)).size)
  fields = protocol_positions.flow_indices(num_frames, shape.test_frames, shape.num_fields)
  return 2 * int(np.unique(fields).size)


def eval_videos_per_batch(shape: StreamShape) -> int:
  return max(1, shape.eval_batch_size // (shape.test_frames * shape.test_crops))


def eval_estimate(shape: StreamShape, longest_video_frames: int) -> dict[str, int]:
  """Bytes of evaluation: one video's bank, the host batches in flight, the device's views."""
  h, w = shape.frame_hw
  item = h * w * (3 if shape.modality == 'rgb' else 1)
  bank = bank_items(shape, longest_video_frames) * item
  v = eval_videos_per_batch(shape)
  views = v * shape.test_frames * shape.test_crops * shape.crop**2 * shape.channels * 4
  return {'bank_bytes': bank, 'host_bytes': HOST_BATCHES_IN_FLIGHT * v * bank,
          'device_input_bytes': views, 'videos_per_batch': v}


def train_estimate(shape: StreamShape) -> dict[str, int]:
  """Bytes of training: a batch of uint8 crops on the host (in flight) and its float32 inputs on the
  device; validation's batches likewise ('val_*')."""
  crop = shape.crop**2 * shape.channels
  h, w = shape.frame_hw
  val_views = shape.val_frames * shape.val_crops
  val_videos = max(1, shape.eval_batch_size // val_views)
  val_items = shape.val_frames * (1 if shape.modality == 'rgb' else 2 * shape.num_fields)
  val_bank = val_items * h * w * (3 if shape.modality == 'rgb' else 1)
  return {'host_bytes': HOST_BATCHES_IN_FLIGHT * shape.train_batch * crop,
          'device_input_bytes': shape.train_batch * crop * 4,
          'val_videos_per_batch': val_videos,
          'val_host_bytes': HOST_BATCHES_IN_FLIGHT * val_videos * val_bank,
          'val_device_input_bytes': val_videos * val_views * crop * 4}


def check_fits(name: str, shape: StreamShape, longest_video_frames: int, memory_bytes: int) -> dict:
  """The stream's estimates; raises LimitError when the eval, validation or training inputs exceed
  half of `memory_bytes` (the rest is the network's activations, parameters and the runtime).
  """
  ev, tr = eval_estimate(shape, longest_video_frames), train_estimate(shape)
  budget = memory_bytes // 2
  gb = 1e9
  if ev['host_bytes'] + ev['device_input_bytes'] > budget:
    raise LimitError(
        f'{name}: evaluating the longest video ({longest_video_frames} frames) needs about '
        f'{(ev["host_bytes"] + ev["device_input_bytes"]) / gb:.1f} GB of inputs ({ev["videos_per_batch"]} '
        f'video(s) a batch, bank {ev["bank_bytes"] / 1e6:.0f} MB, views '
        f'{ev["device_input_bytes"] / gb:.2f} GB), more than half of the {memory_bytes / gb:.1f} GB available: lower --config.train.eval_batch_size (views per batch) or '
        '--config.data.test_num_frames.')
  if tr['val_host_bytes'] + tr['val_device_input_bytes'] > budget:
    raise LimitError(
        f'{name}: a validation batch of {tr["val_videos_per_batch"]} held-out videos needs about '
        f'{(tr["val_host_bytes"] + tr["val_device_input_bytes"]) / gb:.1f} GB of inputs, more than '
        f'half of the {memory_bytes / gb:.1f} GB available: lower --config.train.eval_batch_size.')
  if tr['host_bytes'] + tr['device_input_bytes'] > budget:
    raise LimitError(
        f'{name}: a training batch of {shape.train_batch} needs about '
        f'{(tr["host_bytes"] + tr["device_input_bytes"]) / gb:.1f} GB of inputs, more than half '
        f'of the {memory_bytes / gb:.1f} GB available: lower --config.train.global_batch_size.')
  return {'eval': ev, 'train': tr}
