"""TV-L1 in JAX with the batch of pairs split over every local device (2 virtual CPU devices here).

A cheap solver (one level, one warp, fixed iterations) keeps the compiles short; the split does not
depend on the solver's parameters.
"""

import cv2
import jax
import numpy as np
import pytest

from tests import make_tfrecords_fixtures as fx
from twostream_jax.flow import tvl1_jax

_CHEAP = tvl1_jax.TVL1Params(num_scales=1, num_warps=1, epsilon=0.0, inner_iterations=4,
                             outer_iterations=1)


@pytest.fixture(scope='module')
def pairs():
  rgb = fx.shifting_texture([1, 2, 0, 3], height=24, width=32)
  gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb])
  return gray[:-1], gray[1:]  # 4 pairs


def test_the_tests_have_two_local_devices():
  assert len(jax.local_devices()) == 2  # tests/conftest.py


def test_each_device_solves_its_own_half_of_the_batch(pairs):
  flow, counts = tvl1_jax.tvl1_flow_on_devices(*pairs, _CHEAP)
  shards = sorted(flow.addressable_shards, key=lambda s: s.index[0].start)
  assert {s.device for s in shards} == set(jax.local_devices())
  assert [s.data.shape for s in shards] == [(2, 24, 32, 2)] * 2
  assert [s.index[0] for s in shards] == [slice(0, 2), slice(2, 4)]
  assert counts.shape == (4, 1, 1)


def test_split_batches_give_the_one_device_flow(pairs):
  gray0, gray1 = pairs
  one = tvl1_jax.compute_flow_batch(gray0[:3], gray1[:3], _CHEAP, devices=jax.local_devices()[:1])
  # All local devices by default; 3 pairs are padded to 4 so that each device gets 2.
  two = tvl1_jax.compute_flow_batch(gray0[:3], gray1[:3], _CHEAP)
  assert two.shape == (3, 24, 32, 2)
  np.testing.assert_array_equal(two, one)
  # Not trivially zero: the pairs moved right by 1, 2 and 0 px (4 iterations on one level do not
  # recover all of it, but the direction).
  mean_x = two[..., 0].mean(axis=(1, 2))
  assert mean_x[0] > 0.3 and mean_x[1] > 0.3 and abs(mean_x[2]) < 0.05


def test_a_batch_that_does_not_split_is_refused(pairs):
  gray0, gray1 = pairs
  with pytest.raises(ValueError, match='multiple of the number of devices'):
    tvl1_jax.tvl1_flow_on_devices(gray0[:3], gray1[:3], _CHEAP)
