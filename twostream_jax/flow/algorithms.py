"""Optical flow algorithms behind one interface, for the dataset writer.

  * per-pair algorithms (`PairFlow`: OpenCV's TV-L1, Farneback and DIS) run in the CPU worker
    processes, one frame pair at a time, while the video streams through;
  * batched algorithms (`BatchedFlow`: the JAX TV-L1 of `flow.tvl1_jax`) take `[B, H, W]` batches
    of frame pairs gathered across videos and run on the accelerator (`prep.batched_flow_writer`).
Both return flow in pixels, `flow[..., 0]` = x (rightwards), `flow[..., 1]` = y (downwards), with
`frame1(p + flow(p)) ~ frame0(p)`: flow(i -> i+1) is computed with frame i first. Each algorithm's
parameters go into the dataset metadata via `parameters()` (listed in docs/design_notes.md).

Workers build their algorithm from its name with `make_flow_algorithm` (OpenCV objects are not
picklable). No TensorFlow here; JAX is imported only when 'tvl1_jax' is asked for.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import cv2
import numpy as np

PAIR_ALGORITHMS = ('tvl1', 'farneback', 'dis')
BATCHED_ALGORITHMS = ('tvl1_jax',)
ALGORITHMS = PAIR_ALGORITHMS + BATCHED_ALGORITHMS

FARNEBACK_PARAMS = {'pyr_scale': 0.5, 'levels': 3, 'winsize': 15, 'iterations': 3, 'poly_n': 5,
                    'poly_sigma': 1.2, 'flags': 0}


class FlowAlgorithm(abc.ABC):
  """An optical flow algorithm; `batched` says which of the two interfaces it implements."""
  name: str = ''
  batched: bool = False

  @abc.abstractmethod
  def parameters(self) -> dict[str, Any]:
    """The algorithm's parameters as plain JSON values (for the dataset metadata)."""


class PairFlow(FlowAlgorithm):
  """Flow of one pair at a time (CPU)."""

  @abc.abstractmethod
  def compute(self, gray0: np.ndarray, gray1: np.ndarray) -> np.ndarray:
    """Flow from gray0 to gray1.

    Args:
      gray0: `[H, W]` uint8 first frame.
      gray1: `[H, W]` uint8 second frame.

    Returns:
      `[H, W, 2]` float32 flow (x, y) in pixels.
    """


class BatchedFlow(FlowAlgorithm):
  """Flow of a batch of same-sized pairs at once (accelerator, main process)."""
  batched = True
  batch_size: int = 8

  @abc.abstractmethod
  def compute_batch(self, gray0: np.ndarray, gray1: np.ndarray) -> np.ndarray:
    """Flow of each pair.

    Args:
      gray0: `[B, H, W]` uint8 first frames.
      gray1: `[B, H, W]` uint8 second frames.

    Returns:
      `[B, H, W, 2]` float32 flow (x, y) in pixels. Each pair's flow must not depend on the other
      pairs of the batch (the writer pads a short batch by repeating its last pair).
    """


class TVL1Flow(PairFlow):
  """OpenCV's DualTVL1 with default parameters."""
  name = 'tvl1'

  def __init__(self):
    self._tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()

  def parameters(self) -> dict[str, Any]:
    t = self._tvl1
    return {'implementation': 'cv2.optflow.DualTVL1OpticalFlow_create() (defaults)',
            'tau': t.getTau(), 'lambda': t.getLambda(), 'theta': t.getTheta(),
            'gamma': t.getGamma(), 'scales': t.getScalesNumber(), 'warps': t.getWarpingsNumber(),
            'epsilon': t.getEpsilon(), 'inner_iterations': t.getInnerIterations(),
            'outer_iterations': t.getOuterIterations(), 'scale_step': t.getScaleStep(),
            'median_filtering': t.getMedianFiltering(), 'opencv': cv2.__version__}

  def compute(self, gray0: np.ndarray, gray1: np.ndarray) -> np.ndarray:
    return self._tvl1.calc(gray0, gray1, None)


class FarnebackFlow(PairFlow):
  """`cv2.calcOpticalFlowFarneback` with `FARNEBACK_PARAMS`."""
  name = 'farneback'

  def parameters(self) -> dict[str, Any]:
    return {'implementation': 'cv2.calcOpticalFlowFarneback', **FARNEBACK_PARAMS,
            'opencv': cv2.__version__}

  def compute(self, gray0: np.ndarray, gray1: np.ndarray) -> np.ndarray:
    p = FARNEBACK_PARAMS
    return cv2.calcOpticalFlowFarneback(gray0, gray1, None, p['pyr_scale'], p['levels'],
                                        p['winsize'], p['iterations'], p['poly_n'],
                                        p['poly_sigma'], p['flags'])


class DISFlow(PairFlow):
  """OpenCV's Dense Inverse Search, medium preset."""
  name = 'dis'

  def __init__(self):
    self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

  def parameters(self) -> dict[str, Any]:
    d = self._dis
    return {'implementation': 'cv2.DISOpticalFlow_create(DISOPTICAL_FLOW_PRESET_MEDIUM)',
            'finest_scale': d.getFinestScale(), 'patch_size': d.getPatchSize(),
            'patch_stride': d.getPatchStride(),
            'gradient_descent_iterations': d.getGradientDescentIterations(),
            'variational_refinement_iterations': d.getVariationalRefinementIterations(),
            'variational_refinement_alpha': d.getVariationalRefinementAlpha(),
            'variational_refinement_delta': d.getVariationalRefinementDelta(),
            'variational_refinement_gamma': d.getVariationalRefinementGamma(),
            'use_mean_normalization': bool(d.getUseMeanNormalization()),
            'use_spatial_propagation': bool(d.getUseSpatialPropagation()),
            'opencv': cv2.__version__}

  def compute(self, gray0: np.ndarray, gray1: np.ndarray) -> np.ndarray:
    return self._dis.calc(gray0, gray1, None)


class TVL1JaxFlow(BatchedFlow):
  """`twostream_jax.flow.tvl1_jax.compute_flow_batch` (jitted, one compile per batch shape; each
  batch split over every local device)."""
  name = 'tvl1_jax'

  def __init__(self, batch_size: int = 8):
    from twostream_jax.flow import tvl1_jax  # pylint: disable=g-import-not-at-top
    self._tvl1_jax = tvl1_jax
    self._params = tvl1_jax.TVL1Params()
    self.batch_size = int(batch_size)

  def parameters(self) -> dict[str, Any]:
    import jax  # pylint: disable=g-import-not-at-top
    params = dataclasses.asdict(self._params)
    return {'implementation': 'twostream_jax.flow.tvl1_jax (OpenCV DualTVL1 numerics)', **params,
            'batch_size': self.batch_size, 'jax_backend': jax.default_backend()}

  def compute_batch(self, gray0: np.ndarray, gray1: np.ndarray) -> np.ndarray:
    return self._tvl1_jax.compute_flow_batch(gray0, gray1, self._params)


_PAIR_CLASSES = {'tvl1': TVL1Flow, 'farneback': FarnebackFlow, 'dis': DISFlow}


def make_flow_algorithm(name: str, batch_size: int = 8) -> FlowAlgorithm:
  """Builds the algorithm called `name` (one of `ALGORITHMS`).

  Args:
    name: 'tvl1', 'farneback', 'dis' or 'tvl1_jax'.
    batch_size: pairs per batch of a batched algorithm.

  Raises:
    ValueError: an unknown name, or 'tvl1_jax' without a working JAX.
  """
  if name in _PAIR_CLASSES:
    return _PAIR_CLASSES[name]()
  if name == 'tvl1_jax':
    try:
      return TVL1JaxFlow(batch_size)
    except ImportError as e:
      raise ValueError(f'--flow_algorithm tvl1_jax needs JAX and twostream_jax.flow.tvl1_jax: {e}') from e
  raise ValueError(f'unknown flow algorithm {name!r}; choose one of {", ".join(ALGORITHMS)}')


def compute_pair_flow(algorithm: FlowAlgorithm, gray0: np.ndarray, gray1: np.ndarray) -> np.ndarray:
  """Flow of one pair with either kind of algorithm (a batch of one for a batched algorithm).

  Args:
    algorithm: any `FlowAlgorithm`.
    gray0: `[H, W]` uint8.
    gray1: `[H, W]` uint8.

  Returns:
    `[H, W, 2]` float32.
  """
  if isinstance(algorithm, BatchedFlow):
    return algorithm.compute_batch(gray0[None], gray1[None])[0]
  return algorithm.compute(gray0, gray1)
