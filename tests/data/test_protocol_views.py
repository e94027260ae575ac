"""Tests of data.protocol_views: the test protocol's crop boxes and flips."""

import numpy as np
import pytest

from twostream_jax.data import protocol_views


def test_crop_boxes_are_centre_corners_and_flips():
  boxes, flips = protocol_views.crop_boxes(32, 40, 24, 10)
  # (y0, x0, h, w): centre, top-left, top-right, bottom-left, bottom-right, then the same flipped.
  five = [[4, 8, 24, 24], [0, 0, 24, 24], [0, 16, 24, 24], [8, 0, 24, 24], [8, 16, 24, 24]]
  np.testing.assert_array_equal(boxes, five + five)
  np.testing.assert_array_equal(flips, [False] * 5 + [True] * 5)
  assert boxes.dtype == np.int32 and flips.dtype == bool
  boxes, flips = protocol_views.crop_boxes(32, 40, 24, 1)
  np.testing.assert_array_equal(boxes, [[4, 8, 24, 24]])
  np.testing.assert_array_equal(flips, [False])
  boxes, flips = protocol_views.crop_boxes(32, 40, 24, 2)
  np.testing.assert_array_equal(boxes, [[4, 8, 24, 24]] * 2)
  np.testing.assert_array_equal(flips, [False, True])
  boxes, flips = protocol_views.crop_boxes(32, 40, 24, 5)
  np.testing.assert_array_equal(boxes, five)
  assert not flips.any()


def test_a_frame_smaller_than_the_crop_gives_boxes_of_its_short_side():
  boxes, _ = protocol_views.crop_boxes(20, 30, 24, 5)
  np.testing.assert_array_equal(boxes[0], [0, 5, 20, 20])  # resized up to S x S later
  np.testing.assert_array_equal(boxes[:, 2:], 20)


@pytest.mark.parametrize('num_crops', protocol_views.TEST_NUM_CROPS)
def test_boxes_stay_inside_the_frame(num_crops):
  for height, width, size in ((48, 64, 24), (96, 128, 96), (30, 20, 24), (256, 340, 224)):
    boxes, flips = protocol_views.crop_boxes(height, width, size, num_crops)
    assert boxes.shape == (num_crops, 4) and flips.shape == (num_crops,)
    y0, x0, h, w = boxes.T
    assert (y0 >= 0).all() and (x0 >= 0).all() and (y0 + h <= height).all()
    assert (x0 + w <= width).all()


def test_other_crop_counts_are_refused():
  with pytest.raises(ValueError, match='num_crops'):
    protocol_views.crop_boxes(32, 40, 24, 3)
