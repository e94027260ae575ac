"""The paper's test positions: K equally spaced frames or flow stacks per video (numpy only).

Shared by the tf.data pipeline (`data.sampling`) and by prediction on video files
(`inference.clip_reader`, whose worker processes import no TensorFlow).
"""

from __future__ import annotations

import numpy as np


def view_starts(num_items: int, span: int, num_views: int) -> np.ndarray:
  """First item of each test view; int64 `[num_views]`.

  Round-half-up of linspace(0, T - s, K): start_k = round(k (T - s) / (K - 1)), the middle for K = 1.
  """
  d = max(num_items - span, 0)
  if num_views == 1:
    return np.array([d // 2], np.int64)
  k = np.arange(num_views, dtype=np.int64)
  return (2 * k * d + num_views - 1) // (2 * (num_views - 1))


def frame_indices(num_frames: int, num_views: int) -> np.ndarray:
  """Frame index of each RGB test view; int64 `[K]`."""
  return view_starts(num_frames, 1, num_views)


def flow_indices(num_frames: int, num_views: int, num_fields: int) -> np.ndarray:
  """Flow field indices of each test stack (clamped for short videos); int64 `[K, L]`."""
  num_flow = num_frames - 1
  starts = view_starts(num_flow, num_fields, num_views)
  return np.minimum(starts[:, None] + np.arange(num_fields), num_flow - 1)
