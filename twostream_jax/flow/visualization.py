"""Optical flow in the standard colour wheel (Baker et al., "A Database and Evaluation Methodology
for Optical Flow", the Middlebury coding): hue gives the direction, saturation the magnitude.

numpy + cv2 only (no TensorFlow, no JAX).
"""

from __future__ import annotations

import numpy as np

# Hue segments of the Middlebury wheel: red-yellow, yellow-green, green-cyan, cyan-blue,
# blue-magenta, magenta-red, in that many steps each.
_SEGMENTS = ((15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)),
             (4, (0, 255, 0), (0, 255, 255)), (11, (0, 255, 255), (0, 0, 255)),
             (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0)))


def color_wheel() -> np.ndarray:
  """The wheel's colours, float32 `[55, 3]` RGB in 0..255, starting at red (flow pointing +x)."""
  rows = []
  for steps, start, end in _SEGMENTS:
    t = np.arange(steps, dtype=np.float32)[:, None] / steps
    rows.append((1 - t) * np.asarray(start, np.float32) + t * np.asarray(end, np.float32))
  return np.concatenate(rows)


def flow_to_color(flow_px: np.ndarray, max_magnitude_px: float | None = None) -> np.ndarray:
  """Colours a flow field.

  Args:
    flow_px: float `[H, W, 2]` (x, y) in pixels.
    max_magnitude_px: magnitude shown fully saturated; default: the field's largest magnitude.

  Returns:
    uint8 `[H, W, 3]` RGB: white for zero flow, saturated wheel colours at max_magnitude_px.
  """
  flow = np.asarray(flow_px, np.float32)
  if flow.ndim != 3 or flow.shape[-1] != 2:
    raise ValueError(f'flow must be [H, W, 2], got {flow.shape}')
  u, v = flow[..., 0], flow[..., 1]
  magnitude = np.hypot(u, v)
  scale = float(max_magnitude_px) if max_magnitude_px else float(magnitude.max())
  radius = magnitude / max(scale, 1e-6)
  wheel = color_wheel()
  n = len(wheel)
  # Angle of the flow vector; image y points down, so +y (down) is a positive angle.
  position = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (n - 1)
  k0 = np.floor(position).astype(np.int64) % n
  k1 = (k0 + 1) % n
  f = (position - np.floor(position))[..., None]
  color = ((1 - f) * wheel[k0] + f * wheel[k1]) / 255.0
  r = np.minimum(radius, 1.0)[..., None]
  color = 1 - r * (1 - color)  # Fade to white towards zero flow.
  color = np.where(radius[..., None] > 1, color * 0.75, color)  # Darken what exceeds the scale.
  return np.round(color * 255).astype(np.uint8)


def wheel_legend(size: int = 64) -> np.ndarray:
  """A `[size, size, 3]` uint8 disc showing the coding (direction -> hue, magnitude -> saturation)."""
  c = (size - 1) / 2
  y, x = np.mgrid[0:size, 0:size].astype(np.float32)
  flow = np.stack([x - c, y - c], -1)
  image = flow_to_color(flow, max_magnitude_px=c)
  image[np.hypot(x - c, y - c) > c] = 255
  return image
