"""What predict checks against the records a stream was trained on: flow parameters and frame rate.

Flow: the parameters predict's algorithm runs with (today's code defaults, or for tvl1_jax the
records' own solver parameters) and the OpenCV version are compared key by key with the
`flow_parameters` the records' metadata holds; `flow_differences` lists each differing key as
'key: <recorded> (records) vs <now> (predict)'. Keys that do not change the numbers (a batch size,
the JAX backend) are left out.

Frame rate: the records hold frames at `dataset_metadata.stored_frame_rate` (the source videos'
rate over the frame stride); a clip at another rate is resampled to it by frame selection
(`frame_selection`), so that a flow field spans the time it spanned in training.

numpy + cv2 only (through flow.algorithms): no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from twostream_jax.flow import algorithms as optical_flow

# Parameters that do not change the flow a pair gets.
_NOT_NUMERICS = ('batch_size', 'jax_backend')
# Two rates closer than this (relative) are the same rate (containers round 25 as 25.0001, ...).
RATE_TOLERANCE = 0.01


def current_flow_parameters(algorithm: str, tvl1_params: Any = None) -> dict[str, Any]:
  """The parameters predict computes `algorithm` with (`tvl1_params`: tvl1_jax's TVL1Params)."""
  if algorithm == 'tvl1_jax' and tvl1_params is not None:
    return {'implementation': 'twostream_jax.flow.tvl1_jax (OpenCV DualTVL1 numerics)',
            **dataclasses.asdict(tvl1_params)}
  return optical_flow.make_flow_algorithm(algorithm).parameters()


def flow_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """'key: <recorded> (records) vs <current> (predict)' for each key whose values differ, sorted."""
  out = []
  for key in sorted(set(recorded) | set(current)):
    if key in _NOT_NUMERICS:
      continue
    old, new = recorded.get(key, '<absent>'), current.get(key, '<absent>')
    same = old == new
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
      same = bool(np.isclose(float(old), float(new), rtol=1e-6, atol=0.0))
    if not same:
      out.append(f'{key}: {old!r} (records) vs {new!r} (predict)')
  return out


def flow_mismatch(records_algorithm: str, recorded: dict[str, Any], algorithm: str,
                  current: dict[str, Any]) -> list[str]:
  """`flow_differences` of the records' parameters and predict's; for OpenCV TV-L1 records
  recomputed with tvl1_jax (the same numerics), of the parameters both name."""
  if algorithm != records_algorithm:
    shared = (set(recorded) & set(current)) - {'implementation'}
    recorded = {k: recorded[k] for k in shared}
    current = {k: current[k] for k in shared}
  return flow_differences(recorded, current)


def same_rate(a: float, b: float) -> bool:
  return abs(a - b) <= RATE_TOLERANCE * max(a, b)


def frame_selection(clip_fps: float, records_fps: float) -> float:
  """Source frames per stored frame that bring a clip at `clip_fps` to `records_fps`.

  Returns:
    The step s >= 1 between kept source frames (frame k of the result is source frame round(k s));
    0.0 when no selection helps: a rate unknown, equal rates, or a clip slower than the records
    (frame selection cannot add frames).
  """
  if clip_fps <= 0 or records_fps <= 0 or same_rate(clip_fps, records_fps):
    return 0.0
  step = clip_fps / records_fps
  return step if step > 1.0 else 0.0


def rate_note(clip_fps: float, records_fps: float, step: float) -> str:
  """What a user should know about a clip's frame rate against the records' ('' nothing)."""
  if clip_fps <= 0 or records_fps <= 0 or same_rate(clip_fps, records_fps):
    return ''
  if step:
    return (f'clip at {clip_fps:g} fps, the records at {records_fps:g} fps: resampled to '
            f'{records_fps:g} fps by frame selection (source frames round(k x {step:.4g}))')
  if clip_fps > records_fps:
    return (f'clip at {clip_fps:g} fps, the records at {records_fps:g} fps: not resampled, so its '
            'flow fields span another time than the temporal stream learnt')
  return (f'clip at {clip_fps:g} fps, slower than the records\' {records_fps:g} fps (frame '
          f'selection cannot add frames): a flow field spans {records_fps / clip_fps:.2f}x the '
          'time the temporal stream learnt')
