"""The on-disk record format: one `tf.train.Example` per video, readable by TFDS and by tf.data.

Shared by the writer (`tools/make_tfrecords.py`) and the input pipeline, so that both sides agree on
keys, JPEG coding and flow quantisation. The layout is the flat serialisation TFDS gives the
`FeaturesDict` of `tfds_features()`, which is what lets `tfds.builder_from_directory` read the shards.

Per video (N decoded frames):
  video_id    bytes       e.g. b'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01'
  label       int64       class index (classInd.txt order for UCF101, sorted class names otherwise)
  label_name  bytes       class name
  num_frames  int64       N
  height      int64       frame height in pixels (after resizing to the stored short side)
  width       int64       frame width
  frames      N  x bytes  RGB frames as JPEG
  flow_x      N-1 x bytes flow(i -> i+1), x component, single-channel JPEG, quantised (below)
  flow_y      N-1 x bytes flow(i -> i+1), y component

Flow quantisation with bound B pixels (DESIGN.md):
  q = round(clip(v, -B, B) / B * 127.5 + 127.5)        v = (q - 127.5) / 127.5 * B
so that q -> 255 - q negates the decoded value exactly (a horizontal flip of x is exact).

TensorFlow is imported only inside the functions that need it: the numpy half of this module
(quantisation, JPEG coding) is usable on hosts that have JAX and no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import cv2
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

_SCALAR_INT_KEYS = (LABEL, NUM_FRAMES, HEIGHT, WIDTH)
_SCALAR_BYTES_KEYS = (VIDEO_ID, LABEL_NAME)
_SEQUENCE_KEYS = (FRAMES, FLOW_X, FLOW_Y)


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


def encode_jpeg(image: np.ndarray, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
  """Encodes an RGB `[H, W, 3]` or single-channel `[H, W]` / `[H, W, 1]` uint8 image as JPEG."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise RecordFormatError(f'JPEG input must be uint8, got {image.dtype}')
  if image.ndim == 3 and image.shape[-1] == 3:
    image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
  elif image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  elif image.ndim != 2:
    raise RecordFormatError(f'JPEG input must be [H, W], [H, W, 1] or [H, W, 3], got {image.shape}')
  ok, buf = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
  if not ok:
    raise RecordFormatError(f'OpenCV failed to encode a {image.shape} image as JPEG')
  return buf.tobytes()


def decode_jpeg(data: bytes, channels: int = 3) -> np.ndarray:
  """Decodes JPEG bytes to `[H, W, 3]` RGB (channels=3) or `[H, W]` (channels=1) uint8."""
  flag = cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE
  image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
  if image is None:
    raise RecordFormatError('not a decodable JPEG')
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if channels == 3 else image


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


def tfds_features(class_names: Sequence[str]):
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
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_video_record_numpy(serialized: bytes) -> VideoRecord:
  """Parses one serialised record in plain Python (no graph), keeping frames encoded."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  try:
    feature = tf.train.Example.FromString(serialized).features.feature
    ints = {k: int(feature[k].int64_list.value[0]) for k in _SCALAR_INT_KEYS}
    strs = {k: feature[k].bytes_list.value[0].decode() for k in _SCALAR_BYTES_KEYS}
    seqs = {k: list(feature[k].bytes_list.value) for k in _SEQUENCE_KEYS}
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
    (tf.int32 []), frames (tf.string [N]), flow_x, flow_y (tf.string [N-1]).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  spec = {k: tf.io.FixedLenFeature([], tf.int64) for k in _SCALAR_INT_KEYS}
  spec.update({k: tf.io.FixedLenFeature([], tf.string) for k in _SCALAR_BYTES_KEYS})
  spec.update({k: tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)
               for k in _SEQUENCE_KEYS})
  parsed = tf.io.parse_single_example(serialized, spec)
  for k in _SCALAR_INT_KEYS:
    parsed[k] = tf.cast(parsed[k], tf.int32)
  return parsed


def decode_frames_tf(frames_jpeg, indices):
  """Decodes only the chosen RGB frames inside tf.data.

  Args:
    frames_jpeg: tf.string `[N]`.
    indices: int32 `[K]`, values in [0, N).

  Returns:
    uint8 `[K, H, W, 3]`.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  picked = tf.gather(frames_jpeg, indices)
  return tf.map_fn(lambda s: tf.io.decode_jpeg(s, channels=3, dct_method='INTEGER_ACCURATE'), picked,
                   fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))


def decode_flow_stack_tf(flow_x_jpeg, flow_y_jpeg, indices, bound_px: float):
  """Decodes only the chosen flow fields and interleaves them into a stack inside tf.data.

  Channel order follows the paper: for fields t_0..t_{K-1}, channels are
  (x_{t_0}, y_{t_0}, x_{t_1}, y_{t_1}, ...), i.e. channel 2k is x and 2k+1 is y of the k-th field.

  Args:
    flow_x_jpeg, flow_y_jpeg: tf.string `[N-1]`.
    indices: int32 `[K]`, values in [0, N-1).
    bound_px: the dataset's flow bound B.

  Returns:
    float32 `[H, W, 2K]` flow in pixels.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  def decode(jpegs):
    picked = tf.gather(jpegs, indices)
    return tf.map_fn(lambda s: tf.io.decode_jpeg(s, channels=1, dct_method='INTEGER_ACCURATE')[..., 0], picked,
                     fn_output_signature=tf.TensorSpec([None, None], tf.uint8))

  x = decode(flow_x_jpeg)  # [K, H, W]
  y = decode(flow_y_jpeg)
  stack = tf.stack([x, y], axis=-1)  # [K, H, W, 2]
  stack = tf.transpose(stack, [1, 2, 0, 3])  # [H, W, K, 2]
  shape = tf.shape(stack)
  stack = tf.reshape(stack, [shape[0], shape[1], shape[2] * 2])
  return dequantise_flow(tf.cast(stack, tf.float32), bound_px)
