"""The on-disk record schema: one `tf.train.Example` per video, readable by TFDS and by tf.data.

Shared by the writer (`twostream_jax.prep`) and the input pipeline. Per video of N frames:
  video_id, label_name        bytes        e.g. b'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01', class
  label                       int64        class index
  num_frames, height, width   int64        N and the stored frame size
  frames                      N x bytes    RGB frames as JPEG
  flow_x, flow_y              N-1 x bytes  flow(i -> i+1), single-channel JPEG quantised with bound
                                           B: q = round(clip(v, -B, B) / B * 127.5 + 127.5)
  flow_x_backward, flow_y_backward         N-1 x bytes, flow(i+1 -> i), only with --backward_flow

TensorFlow is imported only inside the functions that need it, and OpenCV not at all: keys and
quantisation are usable on hosts without TensorFlow. Layout and quantisation: docs/design_notes.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

FORMAT_VERSION = 1
DEFAULT_FLOW_BOUND_PX = 20.0
DEFAULT_JPEG_QUALITY = 95

VIDEO_ID = 'video_id'
LABEL = 'label'
LABEL_NAME = 'label_name'
NUM_FRAMES = 'num_frames'
HEIGHT = 'height'
WIDTH = 'width'
FRAMES = 'frames'
FLOW_X = 'flow_x'
FLOW_Y = 'flow_y'
FLOW_X_BACKWARD = 'flow_x_backward'
FLOW_Y_BACKWARD = 'flow_y_backward'

_SCALAR_INT_KEYS = (LABEL, NUM_FRAMES, HEIGHT, WIDTH)
_SCALAR_BYTES_KEYS = (VIDEO_ID, LABEL_NAME)
_SEQUENCE_KEYS = (FRAMES, FLOW_X, FLOW_Y)
_BACKWARD_KEYS = (FLOW_X_BACKWARD, FLOW_Y_BACKWARD)
# The metadata `extra` key (True) of a records folder whose records hold the backward lists.
BACKWARD_FLOW_METADATA_KEY = 'backward_flow'


class RecordFormatError(ValueError):
  """A record or an array that does not follow this format."""


def flow_quantisation_step(bound_px: float) -> float:
  """Pixels between two consecutive quantisation levels: B / 127.5."""
  return float(bound_px) / 127.5


def quantise_flow(flow_px: np.ndarray, bound_px: float = DEFAULT_FLOW_BOUND_PX) -> np.ndarray:
  """Quantises flow values linearly to 0..255.

  Args:
    flow_px: any shape, flow in pixels (float).
    bound_px: B; values are clipped to [-B, B].

  Returns:
    uint8 array of the same shape.
  """
  if bound_px <= 0:
    raise RecordFormatError(f'flow bound must be positive, got {bound_px}')
  v = np.clip(np.asarray(flow_px, np.float32), -bound_px, bound_px)
  return np.round(v / np.float32(bound_px) * np.float32(127.5) + np.float32(127.5)).astype(np.uint8)


def dequantise_flow(q: Any, bound_px: float = DEFAULT_FLOW_BOUND_PX) -> Any:
  """Inverse of `quantise_flow`: v = (q - 127.5) / 127.5 * B.

  Works on numpy arrays and on tf/jax arrays alike (only arithmetic on a float32 cast).

  Args:
    q: uint8 (or float) array, any shape. A numpy array is cast here; other array types must
      already be float32.
    bound_px: B.

  Returns:
    float32 flow in pixels, same shape.
  """
  if isinstance(q, np.ndarray):
    q = q.astype(np.float32)
  return (q - 127.5) * (float(bound_px) / 127.5)


@dataclasses.dataclass
class VideoRecord:
  """One video as stored: encoded frames and quantised flow (see the module docstring)."""
  video_id: str
  label: int
  label_name: str
  height: int
  width: int
  frames: list[bytes]
  flow_x: list[bytes]
  flow_y: list[bytes]
  # flow(i+1 -> i) of each pair; empty when the records hold no backward flow.
  flow_x_backward: list[bytes] = dataclasses.field(default_factory=list)
  flow_y_backward: list[bytes] = dataclasses.field(default_factory=list)

  @property
  def num_frames(self) -> int:
    return len(self.frames)

  def validate(self) -> None:
    """Raises RecordFormatError unless N frames come with N-1 flow fields of each component."""
    n = len(self.frames)
    if n < 2:
      raise RecordFormatError(f'{self.video_id}: needs at least 2 frames, has {n}')
    if len(self.flow_x) != n - 1 or len(self.flow_y) != n - 1:
      raise RecordFormatError(
          f'{self.video_id}: {n} frames need {n - 1} flow fields, got {len(self.flow_x)} x and '
          f'{len(self.flow_y)} y')
    backward = (len(self.flow_x_backward), len(self.flow_y_backward))
    if backward not in ((0, 0), (n - 1, n - 1)):
      raise RecordFormatError(f'{self.video_id}: {n} frames need none or {n - 1} backward flow '
                              f'fields, got {backward[0]} x and {backward[1]} y')


def tfds_features(class_names: Sequence[str], backward_flow: bool = False):
  """The TFDS `FeaturesDict` whose serialisation is this format (for `write_metadata`)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  image = lambda c: tfds.features.Image(shape=(None, None, c), encoding_format='jpeg')
  return tfds.features.FeaturesDict({
      VIDEO_ID: tfds.features.Text(),
      LABEL: tfds.features.ClassLabel(names=list(class_names)),
      LABEL_NAME: tfds.features.Text(),
      NUM_FRAMES: tfds.features.Scalar(dtype=np.int32),
      HEIGHT: tfds.features.Scalar(dtype=np.int32),
      WIDTH: tfds.features.Scalar(dtype=np.int32),
      FRAMES: tfds.features.Sequence(image(3)),
      FLOW_X: tfds.features.Sequence(image(1)),
      FLOW_Y: tfds.features.Sequence(image(1)),
      **({k: tfds.features.Sequence(image(1)) for k in _BACKWARD_KEYS} if backward_flow else {}),
  })


def serialize_video_record(record: VideoRecord) -> bytes:
  """Serialises a validated `VideoRecord` to `tf.train.Example` bytes."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  record.validate()
  b = lambda values: tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
  i = lambda value: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
  feature = {
      VIDEO_ID: b([record.video_id.encode()]),
      LABEL: i(record.label),
      LABEL_NAME: b([record.label_name.encode()]),
      NUM_FRAMES: i(record.num_frames),
      HEIGHT: i(record.height),
      WIDTH: i(record.width),
      FRAMES: b(record.frames),
      FLOW_X: b(record.flow_x),
      FLOW_Y: b(record.flow_y),
  }
  if record.flow_x_backward:
    feature[FLOW_X_BACKWARD] = b(record.flow_x_backward)
    feature[FLOW_Y_BACKWARD] = b(record.flow_y_backward)
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def parse_video_record_numpy(serialized: bytes) -> VideoRecord:
  """Parses one serialised record in plain Python (no graph), keeping frames encoded."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  try:
    feature = tf.train.Example.FromString(serialized).features.feature
    ints = {k: int(feature[k].int64_list.value[0]) for k in _SCALAR_INT_KEYS}
    strs = {k: feature[k].bytes_list.value[0].decode() for k in _SCALAR_BYTES_KEYS}
    seqs = {k: list(feature[k].bytes_list.value) for k in _SEQUENCE_KEYS}
    seqs.update({k: list(feature[k].bytes_list.value) for k in _BACKWARD_KEYS if k in feature})
  except (IndexError, KeyError, UnicodeDecodeError, Exception) as e:  # protobuf raises DecodeError
    raise RecordFormatError(f'not a twostream_jax video record: {e}') from e
  record = VideoRecord(video_id=strs[VIDEO_ID], label=ints[LABEL], label_name=strs[LABEL_NAME],
                       height=ints[HEIGHT], width=ints[WIDTH], **seqs)
  if record.num_frames != ints[NUM_FRAMES]:
    raise RecordFormatError(f'{record.video_id}: num_frames says {ints[NUM_FRAMES]}, '
                            f'{record.num_frames} frames stored')
  return record


def parse_video_record(serialized):
  """Parses one serialised record inside a tf.data graph, keeping frames and flow encoded.

  Args:
    serialized: scalar tf.string tensor.

  Returns:
    dict of tensors: video_id, label_name (tf.string []), label, num_frames, height, width
    (tf.int32 []), frames (tf.string [N]), flow_x, flow_y (tf.string [N-1]), flow_x_backward,
    flow_y_backward (tf.string [N-1], or [0] in records without backward flow).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  spec = {k: tf.io.FixedLenFeature([], tf.int64) for k in _SCALAR_INT_KEYS}
  spec.update({k: tf.io.FixedLenFeature([], tf.string) for k in _SCALAR_BYTES_KEYS})
  spec.update({k: tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)
               for k in _SEQUENCE_KEYS + _BACKWARD_KEYS})
  parsed = tf.io.parse_single_example(serialized, spec)
  for k in _SCALAR_INT_KEYS:
    parsed[k] = tf.cast(parsed[k], tf.int32)
  return parsed
