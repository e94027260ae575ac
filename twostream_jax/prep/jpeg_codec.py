"""JPEG coding of frames and flow components with OpenCV (the dataset writer's codec).

Training never decodes with this module: the input pipeline decodes with `tf.io.decode_jpeg`.
"""

from __future__ import annotations

import cv2
import numpy as np

from twostream_jax.data.record_schema import DEFAULT_JPEG_QUALITY, RecordFormatError


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
