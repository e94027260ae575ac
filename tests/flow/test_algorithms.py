"""Tests of the flow algorithms' common interface: sign convention, parameters, batching."""

import json

import cv2
import numpy as np
import pytest

from twostream_jax.flow import algorithms as optical_flow


def _shifted_pair(dx: int, dy: int):
  """A smooth random texture and the same texture moved by (dx, dy) pixels."""
  rng = np.random.default_rng(0)
  big = cv2.GaussianBlur(rng.integers(0, 256, (80, 96), dtype=np.uint8), (7, 7), 2)
  frame0 = big[16:64, 16:80]
  frame1 = big[16 - dy:64 - dy, 16 - dx:80 - dx]  # content at p moves to p + (dx, dy)
  return np.ascontiguousarray(frame0), np.ascontiguousarray(frame1)


@pytest.mark.parametrize('name', optical_flow.PAIR_ALGORITHMS)
def test_pair_algorithms_measure_a_known_shift(name):
  algorithm = optical_flow.make_flow_algorithm(name)
  assert not algorithm.batched and algorithm.name == name
  frame0, frame1 = _shifted_pair(2, -1)
  flow = optical_flow.compute_pair_flow(algorithm, frame0, frame1)
  assert flow.shape == (48, 64, 2) and flow.dtype == np.float32
  interior = flow[10:-10, 10:-10]
  # flow(p) points to where p's content went: +2 px in x, -1 px in y.
  np.testing.assert_allclose(np.median(interior.reshape(-1, 2), axis=0), [2.0, -1.0], atol=0.15)


@pytest.mark.parametrize('name', optical_flow.PAIR_ALGORITHMS)
def test_parameters_are_json_and_name_the_implementation(name):
  params = optical_flow.make_flow_algorithm(name).parameters()
  json.dumps(params)
  assert params['implementation'].startswith('cv2.')
  if name == 'farneback':
    assert {k: params[k] for k in optical_flow.FARNEBACK_PARAMS} == optical_flow.FARNEBACK_PARAMS
  if name == 'tvl1':  # OpenCV's documented defaults
    assert (params['tau'], params['lambda'], params['scales'], params['warps']) == (
        0.25, pytest.approx(0.15), 5, 5)


def test_unknown_algorithm_is_refused():
  with pytest.raises(ValueError, match='unknown flow algorithm'):
    optical_flow.make_flow_algorithm('horn_schunck')


class _BatchedFarneback(optical_flow.BatchedFlow):
  """A batched algorithm for tests: Farneback pair by pair, counting calls."""
  name = 'farneback'

  def __init__(self, batch_size=3):
    self.batch_size = batch_size
    self.calls = []
    self._pair = optical_flow.FarnebackFlow()

  def parameters(self):
    return self._pair.parameters()

  def compute_batch(self, gray0, gray1):
    assert gray0.shape == gray1.shape and gray0.ndim == 3 and gray0.dtype == np.uint8
    self.calls.append(gray0.shape)
    return np.stack([self._pair.compute(a, b) for a, b in zip(gray0, gray1)])


def test_compute_pair_flow_runs_a_batched_algorithm_as_a_batch_of_one():
  frame0, frame1 = _shifted_pair(1, 1)
  batched = _BatchedFarneback()
  flow = optical_flow.compute_pair_flow(batched, frame0, frame1)
  assert batched.calls == [(1, 48, 64)]
  np.testing.assert_array_equal(flow, optical_flow.FarnebackFlow().compute(frame0, frame1))
