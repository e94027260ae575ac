r"""The device-side view transform (train.device_views) and the host-to-device transfer it saves.

    python bench/bench_device_views.py            # JAX's default device; short on a CPU
    python bench/bench_device_views.py --quick    # smaller batches, fewer iterations

Per workload, on JAX's default device: the jitted `make_views` alone (views/s: uint8 on the device
-> float32 network inputs), and the transfer of one batch as the pipeline hands it over (uint8)
beside the same batch as float32 inputs (what a host-side transform would move). Workloads:
  temporal train   B x 2L=20 planes of 224 x 224, one box, flip, per-field mean subtraction
  spatial train    B x 224 x 224 x 3, flip, colour jitter, ImageNet normalisation
  eval (25 x 10)   one video of UCF101's mean length (186 frames) at 340 x 256 as stored: the
                   planes its 25 flow stacks use, each once, and the stacks' rows -> 250 views of
                   224 x 224 x 20 (the device gathers the stacks, then cuts the crops)
JAX only (no TensorFlow): runs on accelerator images without TF (bench/gpu.sh).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import numpy as np

from twostream_jax.data import protocol_positions
from twostream_jax.data import protocol_views
from twostream_jax.train import device_views

S, L = 224, 10
EVAL_VIDEO_FRAMES = 186  # UCF101's mean video length


def _batch(kind: str, n: int, rng: np.random.Generator) -> tuple[device_views.ViewSpec, dict]:
  if kind == 'temporal train':
    images = rng.integers(0, 256, (n, 2 * L, S, S), dtype=np.uint8)
    boxes = np.zeros((n, 1, 2), np.int32)  # S x S crops cut by the host: (y0, x0) = (0, 0)
    extra = {device_views.FLOW_STEP: np.full(n, 20 / 127.5, np.float32)}
    spec = device_views.ViewSpec('flow', S, mean_subtraction='per_field')
  elif kind == 'spatial train':
    images = rng.integers(0, 256, (n, S, S, 3), dtype=np.uint8)
    boxes = np.zeros((n, 1, 2), np.int32)
    extra = {device_views.JITTER: rng.uniform(0.8, 1.2, (n, 3)).astype(np.float32)}
    spec = device_views.ViewSpec('rgb', S, normalization='imagenet')
  else:  # eval: n videos' 25 positions, 10 crops each (centre, corners, flipped)
    h, w = 256, 340
    fields = protocol_positions.flow_indices(EVAL_VIDEO_FRAMES, 25, L)  # [25, L]
    used = np.unique(fields)
    place = np.searchsorted(used, fields)
    rows = np.stack([2 * place, 2 * place + 1], -1).reshape(1, 25, 2 * L).astype(np.int32)
    images = rng.integers(0, 256, (n, 2 * used.size, h, w), dtype=np.uint8)
    one, one_flips = protocol_views.crop_boxes(h, w, S, 10)
    boxes = np.tile(one[None, :, :2], (n, 1, 1))  # S x S boxes: (y0, x0)
    extra = {device_views.FLOW_STEP: np.full(n, 20 / 127.5, np.float32)}
    spec = device_views.ViewSpec('flow', S, mean_subtraction='per_field')
    extra[device_views.ROWS] = np.tile(rows, (n, 1, 1))
    return spec, dict({device_views.IMAGES: images, device_views.BOXES: boxes, device_views.FLIPS: np.tile(one_flips, (n, 1))},
                      **extra)
  flips = np.zeros(boxes.shape[:2], bool)
  flips[::2, 0] = True  # training: every other example mirrored
  return spec, dict({device_views.IMAGES: images, device_views.BOXES: boxes, device_views.FLIPS: flips}, **extra)


def _median_seconds(fn, iters: int) -> float:
  fn()  # compile / warm up
  times = []
  for _ in range(iters):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--quick', action='store_true')
  parser.add_argument('--batch', type=int, default=None, help='training batch (default 64, 8 on CPU)')
  args = parser.parse_args()
  device = jax.devices()[0]
  on_cpu = device.platform == 'cpu'
  batch = args.batch or (8 if on_cpu or args.quick else 64)
  iters = 3 if args.quick or on_cpu else 10
  load = os.getloadavg()[0]
  print(f'JAX {jax.__version__} on {device.platform} ({device.device_kind}); batch {batch}; '
        f'median of {iters}; 1-minute load average {load:.2f}'
        + ('  <-- ABOVE 0.5: FIGURES UNRELIABLE' if load > 0.5 else ''))
  print(f'{"workload":<18}{"views/s":>12}{"uint8 MB":>10}{"put ms":>9}{"float32 MB":>12}{"put ms":>9}')
  rng = np.random.default_rng(0)
  for kind in ('temporal train', 'spatial train', 'eval (25 x 10)'):
    spec, host = _batch(kind, 1 if kind.startswith('eval') else batch, rng)
    fn = jax.jit(lambda b, spec=spec: device_views.make_views(spec, b))
    on_device = jax.device_put(host)
    views = fn(on_device)
    seconds = _median_seconds(lambda: jax.block_until_ready(fn(on_device)), iters)
    floats = np.asarray(views)
    put_u8 = _median_seconds(lambda: jax.block_until_ready(jax.device_put(host)), iters)
    put_f32 = _median_seconds(lambda: jax.block_until_ready(jax.device_put(floats)), iters)
    u8_mb = sum(v.nbytes for v in host.values()) / 1e6
    print(f'{kind:<18}{views.shape[0] / seconds:>12.0f}{u8_mb:>10.1f}{put_u8 * 1e3:>9.2f}'
          f'{floats.nbytes / 1e6:>12.1f}{put_f32 * 1e3:>9.2f}', flush=True)


if __name__ == '__main__':
  main()
