"""Reference implementations of the flow rules, written plainly, that the shipped views are checked against.

Not shipped: the pipeline applies the same rules fused into `video_ops.flow_view` (uint8 crops, one
affine map per channel). Conventions as in `twostream_jax.data.video_ops`: a float flow stack is
`[H, W, 2L]` with channel 2k the x and 2k+1 the y component of field k, values in pixels.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from twostream_jax.data import record_schema

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def flip_flow(flow: np.ndarray) -> np.ndarray:
  """Mirrors float flow `[H, W, 2L]` left-right and negates its x channels."""
  out = np.array(flow[:, ::-1], np.float32)
  out[..., 0::2] *= -1
  return out


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Resizes float flow `[h, w, 2L]` to (h', w') bilinearly (TF's resize), x scaled by w'/w, y by h'/h."""
  h, w = flow.shape[:2]
  out = tf.image.resize(tf.constant(flow, tf.float32), size, method='bilinear').numpy()
  out[..., 0::2] *= size[1] / w
  out[..., 1::2] *= size[0] / h
  return out


def subtract_mean_flow(flow: np.ndarray) -> np.ndarray:
  """Subtracts from each channel of `[H, W, 2L]` its spatial mean (each field's mean vector)."""
  return flow - flow.mean(axis=(0, 1), keepdims=True)


def normalize_rgb(image: np.ndarray, normalization: str) -> np.ndarray:
  """Float RGB `[..., 3]` in [0, 1]: 'imagenet' (x - mean) / std, or 'unit' (as is)."""
  if normalization == 'imagenet':
    return (image - IMAGENET_MEAN) / IMAGENET_STD
  if normalization == 'unit':
    return image
  raise ValueError(normalization)


def decode_flow_stack(flow_x_jpeg, flow_y_jpeg, indices, bound_px: float) -> np.ndarray:
  """Decodes the chosen flow fields to a float stack `[H, W, 2K]`, fields interleaved (x, y, x, y, ...).

  With TF's decoder and the pipeline's decoder settings, one field at a time.
  """
  def decode(jpeg):
    return tf.io.decode_jpeg(jpeg, channels=1, dct_method='INTEGER_ACCURATE')[..., 0].numpy()
  channels = []
  for i in np.asarray(indices):
    channels += [decode(flow_x_jpeg[int(i)]), decode(flow_y_jpeg[int(i)])]
  return record_schema.dequantise_flow(np.stack(channels, -1), bound_px)
