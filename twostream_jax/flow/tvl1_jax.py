"""TV-L1 optical flow in JAX, batched and jitted, matching OpenCV's ``DualTVL1OpticalFlow``.

It follows OpenCV's ``tvl1flow.cpp`` (Zach-Pock-Bischof duality with Wedel et al.'s median
filtering) wherever that differs from the IPOL text, because the stored flow fields must match what
OpenCV computes; the points where they differ (pyramid, warping, dual restarts, median filter,
early stopping) are listed in docs/design_notes.md. In a batch every pair stops early on its own;
the batch's loop runs until its slowest pair stops (finished pairs are frozen).

`compute_flow_batch` splits each call's pairs over every local device (`tvl1_flow_on_devices`), so
a dataset-writing host with several GPUs, or each Beam worker, uses all of them; results are those
of one device.

JAX only: no TensorFlow or cv2 import (the dataset tool and tests import cv2 for the reference).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from twostream_jax.flow import tvl1_ops

# OpenCV starts each warp's error at FLT_MAX.
_FLT_MAX = float(np.finfo(np.float32).max)


@dataclasses.dataclass(frozen=True)
class TVL1Params:
  """Parameters of ``cv2.optflow.DualTVL1OpticalFlow_create``, with OpenCV's defaults.

  Attributes:
    tau: time step of the dual (projection) update.
    lambda_: weight of the data term (smaller: smoother flow).
    theta: coupling between the flow u and the auxiliary field v.
    num_scales: pyramid levels at most (fewer if a level would be under 16 px).
    scale_step: size ratio between consecutive pyramid levels.
    num_warps: warps of the second frame per level.
    epsilon: stopping threshold on the root-mean-square flow update per inner iteration.
    inner_iterations: inner iterations per outer iteration.
    outer_iterations: outer iterations (median filtering steps) per warp.
    median_filtering: median window on the flow (1 disables it; OpenCV accepts 3 or 5 on float).
  """

  tau: float = 0.25
  lambda_: float = 0.15
  theta: float = 0.3
  num_scales: int = 5
  scale_step: float = 0.8
  num_warps: int = 5
  epsilon: float = 0.01
  inner_iterations: int = 30
  outer_iterations: int = 10
  median_filtering: int = 5

  def __post_init__(self):
    problems = []
    if not self.tau > 0 or not self.theta > 0 or not self.lambda_ > 0:
      problems.append('tau, lambda_ and theta must be > 0')
    if not 0.0 < self.scale_step < 1.0:
      problems.append('scale_step must be in (0, 1)')
    for name in ('num_scales', 'num_warps', 'inner_iterations', 'outer_iterations'):
      if int(getattr(self, name)) < 1:
        problems.append(f'{name} must be >= 1')
    if self.median_filtering not in (0, 1, 3, 5):
      problems.append('median_filtering must be 0 or 1 (off), 3 or 5')
    if self.epsilon < 0:
      problems.append('epsilon must be >= 0')
    if problems:
      raise ValueError(f'Invalid TVL1Params {self}: ' + '; '.join(problems) + '.')


def _solve_one_scale(i0: jax.Array, i1: jax.Array, u: jax.Array,
                     params: TVL1Params) -> tuple[jax.Array, jax.Array]:
  """All warps of one pyramid level for one pair (OpenCV's ``procOneScale``).

  Args:
    i0: first frame at this level ``[h, w]`` float32, 0..255.
    i1: second frame ``[h, w]``.
    u: initial flow ``[2, h, w]`` (x, y).
    params: solver parameters.

  Returns:
    ``(u, inner_counts)``: the flow ``[2, h, w]`` and the inner iterations run in each warp
    ``[num_warps]`` int32.
  """
  h, w = i0.shape
  # OpenCV computes these in double and stores them as float.
  scaled_epsilon = np.float32(params.epsilon * params.epsilon * h * w)
  step_constants = dict(l_t=params.lambda_ * params.theta, theta=params.theta,
                        taut=params.tau / params.theta)
  ksize = params.median_filtering

  i1x, i1y = tvl1_ops.centered_gradient(i1)
  to_warp = jnp.stack([i1, i1x, i1y])

  def one_warp(warp, carry):
    u, p, counts = carry
    warped = tvl1_ops.warp_bicubic(to_warp, u[0], u[1])
    i1w, i1w_grad = warped[0], warped[1:]
    grad = i1w_grad[0] * i1w_grad[0] + i1w_grad[1] * i1w_grad[1]
    rho_c = i1w - i1w_grad[0] * u[0] - i1w_grad[1] * u[1] - i0

    def inner_step(state):
      u, p, _, n_inner, active = state
      u, p, error = tvl1_ops.primal_dual_step(u, p, i1w_grad, grad, rho_c,
                                              **step_constants)
      return u, p, error, n_inner + 1, active

    def inner_running(state):
      _, _, error, n_inner, active = state
      # `active` keeps a pair whose outer loop already ended from running (under vmap the
      # outer body is evaluated for every pair and its result discarded for finished ones).
      return active & (error > scaled_epsilon) & (n_inner < params.inner_iterations)

    def outer_running(state):
      _, _, error, n_outer, _ = state
      return (error > scaled_epsilon) & (n_outer < params.outer_iterations)

    def outer_step(state):
      u, p, error, n_outer, n_total = state
      active = outer_running(state)
      if ksize > 1:
        u = tvl1_ops.median_filter(u, ksize)
      u, p, error, n_inner, _ = jax.lax.while_loop(
          inner_running, inner_step, (u, p, error, jnp.int32(0), active))
      return u, p, error, n_outer + 1, n_total + n_inner

    state = (u, p, jnp.float32(_FLT_MAX), jnp.int32(0), jnp.int32(0))
    u, p, _, _, n_total = jax.lax.while_loop(outer_running, outer_step, state)
    return u, p, counts.at[warp].set(n_total)

  # The duals restart from zero on every level and carry over between its warps.
  carry = (u, jnp.zeros((2, 2, h, w), jnp.float32), jnp.zeros((params.num_warps,), jnp.int32))
  u, _, counts = jax.lax.fori_loop(0, params.num_warps, one_warp, carry)
  return u, counts


def _flow_one_pair(frame0: jax.Array, frame1: jax.Array,
                   params: TVL1Params) -> tuple[jax.Array, jax.Array]:
  """Coarse-to-fine TV-L1 for one pair (OpenCV's ``calc``).

  Returns:
    Flow ``[H, W, 2]`` and inner iterations run ``[levels, num_warps]`` (finest level first).
  """
  height, width = frame0.shape
  shapes = tvl1_ops.pyramid_shapes(height, width, params.num_scales, params.scale_step)
  step = 1.0 / params.scale_step
  frames0, frames1 = [frame0], [frame1]
  for shape in shapes[1:]:
    frames0.append(tvl1_ops.resize_linear(frames0[-1], shape, (step, step)))
    frames1.append(tvl1_ops.resize_linear(frames1[-1], shape, (step, step)))
  u = jnp.zeros((2,) + shapes[-1], jnp.float32)
  counts = []
  for level in range(len(shapes) - 1, -1, -1):
    u, level_counts = _solve_one_scale(frames0[level], frames1[level], u, params)
    counts.insert(0, level_counts)
    if level > 0:
      u = tvl1_ops.resize_linear(u, shapes[level - 1]) * np.float32(step)
  return jnp.moveaxis(u, 0, -1), jnp.stack(counts)


def _flow_pairs(frames0: jax.Array, frames1: jax.Array, params: TVL1Params,
                pairs_in_parallel: int) -> tuple[jax.Array, jax.Array]:
  """TV-L1 of every pair of a batch on one device (the body of the jitted functions)."""
  def per_pair(pair):
    return _flow_one_pair(pair[0], pair[1], params)

  pairs = (frames0.astype(jnp.float32), frames1.astype(jnp.float32))
  if pairs_in_parallel == 1:
    # A plain loop over pairs: no vmap, so the while loops need no per-pair masking.
    return jax.lax.map(per_pair, pairs)
  if pairs_in_parallel >= frames0.shape[0]:
    return jax.vmap(per_pair)(pairs)
  return jax.lax.map(per_pair, pairs, batch_size=pairs_in_parallel)


_tvl1_flow_jit = jax.jit(_flow_pairs, static_argnames=('params', 'pairs_in_parallel'))

_PAIRS_AXIS = 'pairs'


@functools.partial(jax.jit, static_argnames=('params', 'pairs_in_parallel', 'mesh'))
def _tvl1_flow_sharded_jit(frames0: jax.Array, frames1: jax.Array, params: TVL1Params,
                           pairs_in_parallel: int,
                           mesh: jax.sharding.Mesh) -> tuple[jax.Array, jax.Array]:
  # shard_map, not a sharded jit: each device runs its own pairs' loops and stops when its own
  # slowest pair stops, with no communication (a pair's flow depends on that pair only). No
  # collectives, so the varying-manual-axes check (which the loops' constant initial carries
  # trip) has nothing to protect: it is off.
  spec = jax.sharding.PartitionSpec(_PAIRS_AXIS)
  body = functools.partial(_flow_pairs, params=params, pairs_in_parallel=pairs_in_parallel)
  return jax.shard_map(body, mesh=mesh, in_specs=(spec, spec), out_specs=(spec, spec),
                       check_vma=False)(
      frames0, frames1)


@functools.lru_cache(maxsize=None)
def _pairs_mesh(devices: tuple[jax.Device, ...]) -> jax.sharding.Mesh:
  return jax.sharding.Mesh(np.array(devices), (_PAIRS_AXIS,))


def _check_frames(shape0: tuple[int, ...], shape1: tuple[int, ...]) -> None:
  if len(shape0) != 3 or shape0 != shape1:
    raise ValueError(
        f'TV-L1 needs two grayscale frame batches of equal shape [B, H, W]; got {shape0} and '
        f'{shape1}. Convert colour frames to gray (e.g. cv2.cvtColor(..., COLOR_BGR2GRAY)) '
        'and stack pairs along a leading batch axis.')
  if shape0[1] < 3 or shape0[2] < 3:
    raise ValueError(f'TV-L1 needs frames of at least 3x3 pixels; got H, W = {shape0[1:]}.')


def default_pairs_in_parallel(batch_size: int, backend: Optional[str] = None) -> int:
  """How many pairs of a batch to iterate together by default.

  On CPU, one at a time: the ~10 float32 images of a pair's state stay in cache, and no pair
  waits for a slower partner. On GPU/TPU, the whole batch: one 340x256 image is far too little
  work for the chip, and the loops' per-iteration overhead is paid once for all pairs.
  """
  backend = backend or jax.default_backend()
  return 1 if backend == 'cpu' else batch_size


def _resolve_pairs(pairs_in_parallel: Optional[int], batch_size: int) -> int:
  if pairs_in_parallel is None:
    pairs_in_parallel = default_pairs_in_parallel(batch_size)
  if int(pairs_in_parallel) < 1:
    raise ValueError(f'pairs_in_parallel must be >= 1 or None, got {pairs_in_parallel}.')
  return min(int(pairs_in_parallel), batch_size)


def tvl1_flow(frames0: jax.Array, frames1: jax.Array, params: TVL1Params = TVL1Params(), *,
              pairs_in_parallel: Optional[int] = None) -> jax.Array:
  """TV-L1 optical flow from frames0 to frames1, like ``cv2.optflow.DualTVL1OpticalFlow``.

  Jitted; compiles once per (B, H, W, params, pairs_in_parallel). Each pair stops on its own
  epsilon test; pairs iterated together run until the slowest of them is done.

  Args:
    frames0: ``[B, H, W]`` grayscale frames, float32 in 0..255 (OpenCV's uint8 scale).
    frames1: ``[B, H, W]`` the following frames.
    params: solver parameters (OpenCV's defaults).
    pairs_in_parallel: pairs vectorised together (the rest of the batch is a sequential loop
      over such groups); None picks :func:`default_pairs_in_parallel`. Does not change results.

  Returns:
    ``[B, H, W, 2]`` float32 flow (x, y) in pixels with ``frames1(p + flow(p)) ~ frames0(p)``.
  """
  return tvl1_flow_with_counts(frames0, frames1, params, pairs_in_parallel=pairs_in_parallel)[0]


def tvl1_flow_with_counts(frames0: jax.Array, frames1: jax.Array,
                          params: TVL1Params = TVL1Params(), *,
                          pairs_in_parallel: Optional[int] = None) -> tuple[jax.Array, jax.Array]:
  """:func:`tvl1_flow` plus how many inner iterations each pair ran (same compiled function).

  Useful to see where the time goes: a batched call costs, per level and warp, the largest
  count in the batch.

  Args:
    frames0: ``[B, H, W]`` grayscale frames, float32 in 0..255.
    frames1: ``[B, H, W]`` the following frames.
    params: solver parameters.
    pairs_in_parallel: as in :func:`tvl1_flow`.

  Returns:
    ``(flow, counts)``: flow ``[B, H, W, 2]`` float32 and inner iterations
    ``[B, levels, num_warps]`` int32, finest level first (``levels <= num_scales``).
  """
  _check_frames(tuple(frames0.shape), tuple(frames1.shape))
  return _tvl1_flow_jit(frames0, frames1, params=params,
                        pairs_in_parallel=_resolve_pairs(pairs_in_parallel, frames0.shape[0]))


def compile_tvl1_flow(batch_size: int, height: int, width: int,
                      params: TVL1Params = TVL1Params(), *,
                      pairs_in_parallel: Optional[int] = None) -> Callable:
  """Compiles TV-L1 ahead of time for one frame size (e.g. one size bucket of a dataset).

  Args:
    batch_size: B.
    height: H.
    width: W.
    params: solver parameters.
    pairs_in_parallel: as in :func:`tvl1_flow`.

  Returns:
    A function ``(frames0 [B, H, W] float32, frames1) -> (flow [B, H, W, 2], counts)`` with
    counts as in :func:`tvl1_flow_with_counts`; it accepts only that shape.
  """
  _check_frames((batch_size, height, width), (batch_size, height, width))
  spec = jax.ShapeDtypeStruct((batch_size, height, width), jnp.float32)
  lowered = _tvl1_flow_jit.lower(spec, spec, params=params,
                                 pairs_in_parallel=_resolve_pairs(pairs_in_parallel, batch_size))
  return lowered.compile()


def tvl1_flow_on_devices(frames0: np.ndarray, frames1: np.ndarray,
                        params: TVL1Params = TVL1Params(), *,
                        devices: Optional[Sequence[jax.Device]] = None,
                        pairs_in_parallel: Optional[int] = None) -> tuple[jax.Array, jax.Array]:
  """:func:`tvl1_flow_with_counts` with the batch of pairs split over several devices.

  Each device gets ``B / len(devices)`` consecutive pairs and solves them on its own (no
  communication; each device stops when its own slowest pair stops). Results equal those of one
  device: a pair's flow never depends on its batch partners.

  Args:
    frames0: ``[B, H, W]`` grayscale frames, 0..255; B a multiple of ``len(devices)``.
    frames1: ``[B, H, W]`` the following frames.
    params: solver parameters.
    devices: where to run; None: every local device of this process (``jax.local_devices()``),
      which is what a dataset-writing host, or each Beam worker, has.
    pairs_in_parallel: as in :func:`tvl1_flow`, per device.

  Returns:
    ``(flow, counts)`` as in :func:`tvl1_flow_with_counts`, sharded over the devices along B.
  """
  devices = tuple(jax.local_devices() if devices is None else devices)
  _check_frames(tuple(frames0.shape), tuple(frames1.shape))
  if not devices or frames0.shape[0] % len(devices):
    raise ValueError(f'tvl1_flow_on_devices needs a batch that is a multiple of the number of '
                     f'devices ({len(devices)}); got {frames0.shape[0]} pairs. Pad the batch '
                     '(compute_flow_batch does).')
  mesh = _pairs_mesh(devices)
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(_PAIRS_AXIS))
  per_device = frames0.shape[0] // len(devices)
  if pairs_in_parallel is None:
    pairs_in_parallel = default_pairs_in_parallel(per_device, devices[0].platform)
  put = lambda x: jax.device_put(np.asarray(x, np.float32), sharding)
  return _tvl1_flow_sharded_jit(put(frames0), put(frames1), params=params,
                                pairs_in_parallel=_resolve_pairs(pairs_in_parallel, per_device),
                                mesh=mesh)


def compute_flow_batch(gray0: np.ndarray, gray1: np.ndarray, params: TVL1Params = TVL1Params(),
                       *, chunk_size: Optional[int] = None,
                       pairs_in_parallel: Optional[int] = None,
                       devices: Optional[Sequence[jax.Device]] = None) -> np.ndarray:
  """Numpy convenience around :func:`tvl1_flow` for uint8 grayscale frames, on every local device.

  Args:
    gray0: ``[B, H, W]`` uint8 (or float in 0..255) first frames.
    gray1: ``[B, H, W]`` second frames.
    params: solver parameters.
    chunk_size: if given, run the pairs in calls of exactly this many, the last one padded by
      repeating its final pair, so that clips of any length share one compiled function per
      (chunk_size, H, W). None: one call with all B pairs (one compile per distinct B).
    pairs_in_parallel: as in :func:`tvl1_flow` (per device).
    devices: None: every local device (``jax.local_devices()``); each call's pairs are split over
      them (a call is padded by repeating its last pair to a multiple of their number), see
      :func:`tvl1_flow_on_devices`. One device: a plain :func:`tvl1_flow` call.

  Returns:
    ``[B, H, W, 2]`` float32 numpy flow (x, y) in pixels.
  """
  gray0, gray1 = np.asarray(gray0), np.asarray(gray1)
  _check_frames(gray0.shape, gray1.shape)
  for name, arr in (('gray0', gray0), ('gray1', gray1)):
    if not (arr.dtype == np.uint8 or np.issubdtype(arr.dtype, np.floating)):
      raise ValueError(f'{name} must be uint8 (or float in 0..255), got dtype {arr.dtype}.')
  num_pairs = gray0.shape[0]
  if chunk_size is not None and chunk_size < 1:
    raise ValueError(f'chunk_size must be >= 1 or None, got {chunk_size}.')
  if num_pairs == 0:
    return np.zeros(gray0.shape + (2,), np.float32)
  devices = tuple(jax.local_devices() if devices is None else devices)
  chunk_size = chunk_size or num_pairs
  # Each call holds a multiple of the device count (its last pair repeated) so that it splits.
  call_size = -(-chunk_size // len(devices)) * len(devices)
  flows = []
  for start in range(0, num_pairs, chunk_size):
    index = np.minimum(np.arange(start, start + call_size),
                       min(start + chunk_size, num_pairs) - 1)
    if len(devices) == 1:
      flow = tvl1_flow(jax.device_put(np.asarray(gray0[index], np.float32), devices[0]),
                       jax.device_put(np.asarray(gray1[index], np.float32), devices[0]), params,
                       pairs_in_parallel=pairs_in_parallel)
    else:
      flow, _ = tvl1_flow_on_devices(gray0[index], gray1[index], params, devices=devices,
                                     pairs_in_parallel=pairs_in_parallel)
    flows.append(np.asarray(flow)[:min(chunk_size, num_pairs - start)])
  return np.concatenate(flows)
