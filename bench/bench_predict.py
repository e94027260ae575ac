"""Videos/s of `python -m twostream_jax.predict` on raw video files, flow time vs network time.

    python bench/bench_predict.py [--quick] [--videos 24] [--workers 2]

In a temporary folder: synthetic videos at 128x96 (24 frames, the demo's set), their records with
DIS flow, a spatial and a temporal stream (the demo's `small` net, crop 96, L = 5) trained for a few
steps (speed does not depend on accuracy), then `inference.video_prediction.Predictor` over the test
videos twice: with the records' DIS flow (OpenCV, in worker processes) and with `--flow_algorithm
tvl1_jax` (TV-L1 in JAX, batched in this process). The demo protocol (5 positions x 10 crops per stream). Prints per
algorithm: videos/s over the whole run (after a warm-up video, so compilation is left out), and the
mean seconds per video spent decoding, on flow and in the networks (views + both streams + fusion).
With workers, decoding and DIS flow overlap the networks, so the parts add up to more than 1/rate.
The 1-minute load average is printed beside the figures: above 0.5 they are not reliable.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from twostream_jax import config_loading  # pylint: disable=g-import-not-at-top
from twostream_jax.data import record_schema  # pylint: disable=g-import-not-at-top
from twostream_jax.inference import video_prediction  # pylint: disable=g-import-not-at-top
from twostream_jax.prep import dataset_writer  # pylint: disable=g-import-not-at-top
from twostream_jax.prep import shard_writer  # pylint: disable=g-import-not-at-top
from twostream_jax.prep import synthetic_videos  # pylint: disable=g-import-not-at-top
from twostream_jax.data import data_spec  # pylint: disable=g-import-not-at-top
from twostream_jax.train import loop as train_loop  # pylint: disable=g-import-not-at-top

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_line() -> str:
  load = os.getloadavg()[0]
  warning = ' -- LOADED MACHINE: figures unreliable' if load > 0.5 else ''
  return f'load average (1 min) {load:.2f}{warning}'


def build_runs(root: str, test_per_class: int, steps: int) -> tuple[list[str], dict[str, str]]:
  """Videos, DIS records and two briefly trained streams; returns (test videos, workdirs)."""
  spec = synthetic_videos.SyntheticSpec(height=96, width=128, num_frames=24, train_per_class=2,
                                        test_per_class=test_per_class, camera_pan=True)
  videos = synthetic_videos.write_dataset(spec, os.path.join(root, 'synthetic'))
  records = os.path.join(root, 'records')
  options = dataset_writer.WriterOptions(
      source_root=videos['videos_dir'], source_kind='videos', splits_dir=videos['splits_dir'],
      output_dir=records, dataset_name='synthetic',
      settings=shard_writer.EncodeSettings(
          flow_algorithm='dis', flow_bound_px=record_schema.DEFAULT_FLOW_BOUND_PX, short_side=0,
          max_frames=0, frame_stride=1, jpeg_quality=record_schema.DEFAULT_JPEG_QUALITY),
      num_workers=2, progress=False)
  dataset_writer.run(options, dataset_writer.prepare(options))
  workdirs = {}
  for name, modality in (('spatial', 'rgb'), ('temporal', 'flow')):
    c = config_loading.load_config_file(os.path.join(REPO_ROOT, 'configs', 'default.py'))
    c.data.data_dirs, c.data.modality, c.data.num_flow_fields = records, modality, 5
    c.data.crop_size, c.data.normalization, c.data.val_split = 96, 'unit', ''
    c.data.test_num_frames, c.data.test_num_crops = 5, 10
    c.model.name, c.train.global_batch_size, c.train.eval_batch_size = 'small', 8, 100
    c.train.num_train_steps, c.train.checkpoint_every_steps = steps, steps
    c.train.log_every_steps, c.train.val_every_steps = steps, 0
    workdirs[name] = os.path.join(root, name)
    train_loop.train(c, data_spec.DataSpec.from_config(c.data), workdirs[name])
  test = sorted(os.path.join(videos['videos_dir'], line.split()[0])
                for line in open(os.path.join(videos['splits_dir'], 'testlist01.txt')))
  return test, workdirs


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true', help='6 videos per algorithm, 2 steps')
  parser.add_argument('--videos', type=int, default=24, help='test videos (a multiple of 6)')
  parser.add_argument('--workers', type=int, default=2, help='decoding / OpenCV flow workers')
  args = parser.parse_args()
  num_videos = 6 if args.quick else args.videos
  print(f'{jax.devices()[0].platform} x {jax.device_count()}, {os.cpu_count()} CPUs; {load_line()}')
  with tempfile.TemporaryDirectory() as tmp:
    paths, workdirs = build_runs(tmp, max(1, num_videos // 6), 2 if args.quick else 10)
    print(f'{len(paths)} videos of 128x96, 24 frames; small net, crop 96, L=5, 5x10 views per '
          f'stream; {args.workers} workers; {load_line()}')
    for algorithm in ('dis', 'tvl1_jax'):
      predictor = video_prediction.Predictor(workdirs['spatial'], workdirs['temporal'],
                                             flow_algorithm=algorithm, num_workers=args.workers)
      predictor.predict(paths[:1], progress=False)  # compile the networks (and TV-L1) first
      start = time.perf_counter()
      results = predictor.predict(paths, progress=False)
      seconds = time.perf_counter() - start
      parts = {k: float(np.mean([r['seconds'][k] for r in results])) for k in
               ('decode', 'flow', 'networks')}
      pairs = float(np.mean([r['flow_fields'] for r in results]))
      print(f'{algorithm:9s}: {len(results) / seconds:6.2f} videos/s ({seconds:.1f} s for '
            f'{len(results)}); per video: decode {parts["decode"]:.3f} s, flow {parts["flow"]:.3f} s, '
            f'networks {parts["networks"]:.3f} s; flow/networks {parts["flow"] / parts["networks"]:.1f}; '
            f'flow {pairs / max(parts["flow"], 1e-9):.1f} pairs/s; '
            f'{load_line()}')


if __name__ == '__main__':
  main()
