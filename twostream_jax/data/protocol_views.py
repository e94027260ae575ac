"""The paper's test views and the network input's normalisation, as plain numpy constants.

One definition for every path that makes views: the tf.data evaluation pipeline (through
`video_ops`), the device view transform (`train.device_views`) and prediction from video files
(`inference.stream_predictor`). Numpy only: no TensorFlow, no JAX.
"""

from __future__ import annotations

import numpy as np

# ImageNet statistics of RGB in [0, 1]: 'imagenet' normalisation is (x - mean) / std per channel.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# data.normalization: 'imagenet' (above), 'unit' (x in [0, 1] as is).
NORMALIZATIONS = ('imagenet', 'unit')
# data.flow_mean_subtraction: 'per_field' (each field's spatial mean vector), 'none'.
MEAN_SUBTRACTIONS = ('per_field', 'none')
# data.test_num_crops: centre (1), centre and its flip (2), centre and corners (5), and flipped (10).
TEST_NUM_CROPS = (1, 2, 5, 10)


def crop_boxes(height: int, width: int, size: int,
                    num_crops: int) -> tuple[np.ndarray, np.ndarray]:
  """The test protocol's crops of an H x W frame.

  Square boxes of side c = min(size, H, W) (resized to `size` when c < size). The unflipped boxes
  are, in order, centre, top-left, top-right, bottom-left, bottom-right (num_crops 5 or 10), or the
  centre only (num_crops 1 or 2); num_crops 2 and 10 then repeat them flipped (the paper: 10).

  Args:
    height, width: H, W, the frame size in pixels.
    size: S, the network input side.
    num_crops: C, one of `TEST_NUM_CROPS`.

  Returns:
    (boxes int32 `[C, 4]` of (y0, x0, h, w), flips bool `[C]`).

  Raises:
    ValueError: num_crops is not one of `TEST_NUM_CROPS`.
  """
  if num_crops not in TEST_NUM_CROPS:
    raise ValueError(f'test num_crops must be one of {TEST_NUM_CROPS}, got {num_crops}')
  side = min(size, height, width)
  y0 = [0, 0, height - side, height - side, (height - side) // 2]
  x0 = [0, width - side, 0, width - side, (width - side) // 2]
  order = [4, 0, 1, 2, 3] if num_crops >= 5 else [4]
  boxes = np.array([[y0[i], x0[i], side, side] for i in order], np.int32).reshape(-1, 4)
  flipped = num_crops in (2, 10)
  flips = np.array([False] * len(order) + [True] * (len(order) if flipped else 0), bool)
  return (np.concatenate([boxes, boxes]) if flipped else boxes), flips
