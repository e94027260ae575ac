r"""Builds two-stream TFRecords (RGB frames + quantised optical flow as JPEG) from videos.

Inputs, one of:
  --videos_dir with class sub-folders (<class>/<video>.avi), and
    --splits_dir with UCF101 (classInd.txt, trainlist0K.txt, testlist0K.txt) or HMDB51
      (<class>_test_splitK.txt) split files, or
    no --splits_dir: one deterministic split 'train1'/'test1' (per class, by SHA-1 of the video id;
      see twostream_jax/prep/split_files.py and --test_fraction);
  --rawframes_dir with <class>/<video>/img_00001.jpg, flow_x_00001.jpg, flow_y_00001.jpg (denseflow /
    mmaction2 layout): frames and flow are copied, not recomputed (off-by-one layouts are handled
    as twostream_jax/prep/rawframes.py documents); --splits_dir works as above.

Every video is stored once, in the partition of its roles across all splits (e.g. train1_test2);
each partition is a TFDS split; an official split (train1, test2, ...) is a union of partitions:
  meta = twostream_jax.data.dataset_metadata.load_metadata(out)
  tfds.builder_from_directory(out).as_dataset(split=meta.tfds_split('test2'))

Per video: frames decoded with OpenCV and resized to --short_side; frame i is stored with the flow
of frames i -> i+1, computed on the resized grayscale frames and quantised with --flow_bound.

Running the same command again after an interruption (also kill -9: the workers exit with this
process) skips finished shards and writes the rest; a different plan (other inputs or flags) is
refused. Two runs of the same command write byte-identical shards. Videos that cannot be decoded are
listed in <output_dir>/failures.json; the exit status is 1 when more than --max_failures videos
failed (the metadata is then not written), 2 for bad arguments. Otherwise the metadata describes
what was written; a split whose videos all failed is kept, empty, and reported with a WARNING.
Shards are the only files that `**/*.tfrecord*` matches (bookkeeping: make_tfrecords_shards/).
Check a copied folder with tools/verify_records.py. --output_dir may be a URL of a tf.io.gfile file
system (gs://bucket/ucf101); the inputs must be local paths (OpenCV decodes files).

Examples:
  python tools/make_tfrecords.py --videos_dir=UCF-101 --splits_dir=ucfTrainTestlist \
      --output_dir=data/ucf101 --flow_algorithm=tvl1 --num_workers=16
  python tools/make_tfrecords.py --rawframes_dir=data/ucf101/rawframes \
      --splits_dir=ucfTrainTestlist --output_dir=data/ucf101_tfr
  python tools/make_tfrecords.py --videos_dir=UCF-101 --splits_dir=ucfTrainTestlist \
      --output_dir=/shared/ucf101 --runner=beam --beam_options="--runner=DirectRunner \
      --direct_num_workers=2 --direct_running_mode=multi_processing"
(Beam on Dataflow, Flink or Spark: see the README, "Preparing on many machines".)
"""

from __future__ import annotations

import faulthandler
import os
import re
import shlex
import signal
import sys

from absl import app
from absl import flags

from twostream_jax.data import file_system
from twostream_jax.data import record_schema
from twostream_jax.flow import algorithms as optical_flow
from twostream_jax.prep import dataset_plan
from twostream_jax.prep import dataset_writer
from twostream_jax.prep import run_summary
from twostream_jax.prep import shard_writer
from twostream_jax.prep import split_files

_VIDEOS_DIR = flags.DEFINE_string(
    'videos_dir', None, 'Folder of videos, one sub-folder per class (<class>/<video>.<ext>).')
_RAWFRAMES_DIR = flags.DEFINE_string(
    'rawframes_dir', None, 'Instead of --videos_dir: folder of extracted frames and flow in the '
    'denseflow/mmaction2 layout (<class>/<video>/img_00001.jpg, flow_x_00001.jpg, '
    'flow_y_00001.jpg); flow is copied, not recomputed.')
_SPLITS_DIR = flags.DEFINE_string(
    'splits_dir', None, 'Folder of UCF101 (classInd.txt, trainlist0K.txt, testlist0K.txt) or HMDB51 '
    '(<class>_test_splitK.txt) split files. Leave out for one deterministic split (train1/test1).')
_OUTPUT_DIR = flags.DEFINE_string(
    'output_dir', None, 'Where shards, metadata, the plan and failures.json go: a local path or a '
    'URL of a tf.io.gfile file system (gs://bucket/ucf101). A rerun into the same folder continues '
    'an interrupted run.')
_DATASET_NAME = flags.DEFINE_string(
    'dataset_name', None, 'TFDS dataset name (shard file prefix). Default: the output folder\'s '
    'name, lower-cased with other characters than [a-z0-9_] replaced by "_".')
_FLOW_ALGORITHM = flags.DEFINE_enum(
    'flow_algorithm', 'tvl1', list(optical_flow.ALGORITHMS), 'Optical flow: tvl1 (OpenCV '
    'DualTVL1, defaults), farneback (OpenCV, tutorial parameters), dis (OpenCV DIS, medium '
    'preset), tvl1_jax (batched JAX TV-L1 on the accelerator, fed by decoding workers).')
_FLOW_BOUND = flags.DEFINE_float(
    'flow_bound', record_schema.DEFAULT_FLOW_BOUND_PX, 'Flow bound B in pixels: values are clipped '
    'to [-B, B] and quantised to 0..255 (step B/127.5).')
_RAWFRAMES_FLOW_BOUND = flags.DEFINE_float(
    'rawframes_flow_bound', None, 'Bound the rawframes flow images were quantised with (default: '
    '--flow_bound). If it differs from --flow_bound, flow is re-quantised to --flow_bound.')
_RAWFRAMES_FLOW_ALGORITHM = flags.DEFINE_string(
    'rawframes_flow_algorithm', '', 'Optional: the algorithm that made the rawframes flow '
    '(recorded in the metadata only).')
_SHORT_SIDE = flags.DEFINE_integer(
    'short_side', 256, 'Resize frames so that their short side has this many pixels (0: keep). '
    'Flow is computed at this size.')
_MAX_FRAMES = flags.DEFINE_integer(
    'max_frames', 0, 'Keep at most this many frames per video (after --frame_stride); 0: all.')
_FRAME_STRIDE = flags.DEFINE_integer(
    'frame_stride', 1, 'Keep every s-th frame of long videos; flow is between kept frames. '
    'Videos only (not --rawframes_dir).')
_BACKWARD_FLOW = flags.DEFINE_bool(
    'backward_flow', False, 'Also store flow(i+1 -> i) of each frame pair (flow_x_backward, '
    'flow_y_backward; about twice the flow time and bytes), for bi-directional flow stacks '
    '(--config.data.flow_direction=bidirectional). Per-pair flow algorithms, videos only.')
_VIDEOS_PER_SHARD = flags.DEFINE_integer(
    'videos_per_shard', 100, 'The most videos per shard file; small data sets get more, smaller '
    'shards so that every worker has one.')
_JPEG_QUALITY = flags.DEFINE_integer(
    'jpeg_quality', record_schema.DEFAULT_JPEG_QUALITY, 'JPEG quality of frames and flow, 1..100.')
_NUM_WORKERS = flags.DEFINE_integer(
    'num_workers', len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity')
    else (os.cpu_count() or 1), 'Worker processes (decoding + flow; decoding only for tvl1_jax).')
_MAX_FAILURES = flags.DEFINE_integer(
    'max_failures', 0, 'Exit with status 1 (and write no metadata) when more videos than this '
    'cannot be decoded; the others are written either way.')
_TEST_FRACTION = flags.DEFINE_float(
    'test_fraction', 0.25, 'Test share per class of the deterministic split (no --splits_dir).')
_FLOW_BATCH_SIZE = flags.DEFINE_integer(
    'flow_batch_size', 8, 'Frame pairs per accelerator batch (tvl1_jax only).')
_PROGRESS = flags.DEFINE_bool('progress', True, 'Show a progress bar on stderr.')
_RUNNER = flags.DEFINE_enum(
    'runner', 'local', ['local', 'beam'], 'local: this process and --num_workers worker '
    'processes. beam: each shard is a unit of an Apache Beam pipeline run with --beam_options '
    '(DirectRunner here, or Dataflow, Flink, Spark; needs pip install -e ".[beam]"); plan, '
    'records, failures.json and metadata are the same as local.')
_BEAM_OPTIONS = flags.DEFINE_string(
    'beam_options', '', 'Beam pipeline options as one string, e.g. "--runner=DirectRunner '
    '--direct_num_workers=2 --direct_running_mode=multi_processing" (--runner=beam only; empty: '
    'Beam\'s default, the DirectRunner in one process). With Beam, --num_workers only sets the '
    'least number of shards.')


def _options_from_flags() -> dataset_writer.WriterOptions:
  """Checks the flags; raises app.UsageError with one clear message."""
  problems = []
  if bool(_VIDEOS_DIR.value) == bool(_RAWFRAMES_DIR.value):
    problems.append('give exactly one of --videos_dir and --rawframes_dir')
  if not _OUTPUT_DIR.value:
    problems.append('--output_dir is required')
  for name, value, ok, rule in (
      ('--flow_bound', _FLOW_BOUND.value, _FLOW_BOUND.value > 0, '> 0'),
      ('--rawframes_flow_bound', _RAWFRAMES_FLOW_BOUND.value,
       _RAWFRAMES_FLOW_BOUND.value is None or _RAWFRAMES_FLOW_BOUND.value > 0, '> 0'),
      ('--short_side', _SHORT_SIDE.value, _SHORT_SIDE.value == 0 or _SHORT_SIDE.value >= 16,
       '0 (keep the size) or >= 16'),
      ('--max_frames', _MAX_FRAMES.value, _MAX_FRAMES.value == 0 or _MAX_FRAMES.value >= 2,
       '0 (all) or >= 2'),
      ('--frame_stride', _FRAME_STRIDE.value, _FRAME_STRIDE.value >= 1, '>= 1'),
      ('--videos_per_shard', _VIDEOS_PER_SHARD.value, _VIDEOS_PER_SHARD.value >= 1, '>= 1'),
      ('--jpeg_quality', _JPEG_QUALITY.value, 1 <= _JPEG_QUALITY.value <= 100, 'in 1..100'),
      ('--num_workers', _NUM_WORKERS.value, _NUM_WORKERS.value >= 1, '>= 1'),
      ('--max_failures', _MAX_FAILURES.value, _MAX_FAILURES.value >= 0, '>= 0'),
      ('--test_fraction', _TEST_FRACTION.value, 0 < _TEST_FRACTION.value < 1, 'in (0, 1)'),
      ('--flow_batch_size', _FLOW_BATCH_SIZE.value, _FLOW_BATCH_SIZE.value >= 1, '>= 1')):
    if not ok:
      problems.append(f'{name}={value} must be {rule}')
  rawframes = bool(_RAWFRAMES_DIR.value)
  if rawframes and _FRAME_STRIDE.value != 1:
    problems.append('--frame_stride needs decoded videos: stored flow cannot be subsampled; '
                    'leave it at 1 with --rawframes_dir')
  if rawframes and flags.FLAGS['flow_algorithm'].present:
    problems.append('--flow_algorithm does not apply to --rawframes_dir (flow is copied); use '
                    '--rawframes_flow_algorithm to record which algorithm made it')
  if not rawframes and (_RAWFRAMES_FLOW_BOUND.value is not None or _RAWFRAMES_FLOW_ALGORITHM.value):
    problems.append('--rawframes_flow_bound/--rawframes_flow_algorithm need --rawframes_dir')
  dataset_name = _DATASET_NAME.value or (dataset_writer.default_dataset_name(_OUTPUT_DIR.value)
                                         if _OUTPUT_DIR.value else 'dataset')
  if not re.fullmatch(r'[a-z][a-z0-9_]*', dataset_name):
    problems.append(f'--dataset_name={dataset_name!r} must match [a-z][a-z0-9_]* (a TFDS name)')
  if not rawframes and _FLOW_ALGORITHM.value in optical_flow.BATCHED_ALGORITHMS:
    try:
      optical_flow.make_flow_algorithm(_FLOW_ALGORITHM.value, _FLOW_BATCH_SIZE.value)
    except ValueError as e:
      problems.append(str(e))
  if _RUNNER.value == 'beam':
    from twostream_jax.prep import beam_runner  # pylint: disable=g-import-not-at-top
    problem = beam_runner.check_beam_options(_BEAM_OPTIONS.value)
    if problem:
      problems.append(problem)
  elif _BEAM_OPTIONS.value:
    problems.append('--beam_options needs --runner=beam')
  if _BACKWARD_FLOW.value and (rawframes or _FLOW_ALGORITHM.value in optical_flow.BATCHED_ALGORITHMS):
    problems.append('--backward_flow needs a per-pair flow algorithm on --videos_dir (not '
                    '--rawframes_dir, not a batched algorithm such as tvl1_jax)')
  if problems:
    raise app.UsageError('; '.join(problems))
  settings = shard_writer.EncodeSettings(
      flow_algorithm='rawframes' if rawframes else _FLOW_ALGORITHM.value,
      flow_bound_px=float(_FLOW_BOUND.value), short_side=_SHORT_SIDE.value,
      max_frames=_MAX_FRAMES.value, frame_stride=_FRAME_STRIDE.value,
      jpeg_quality=_JPEG_QUALITY.value,
      source_flow_bound_px=float(_RAWFRAMES_FLOW_BOUND.value or _FLOW_BOUND.value) if rawframes
      else 0.0, backward_flow=_BACKWARD_FLOW.value)
  return dataset_writer.WriterOptions(
      # URLs stay as they are: the output may be one; an input that is one is refused by prepare.
      source_root=file_system.absolute(_RAWFRAMES_DIR.value or _VIDEOS_DIR.value),
      source_kind='rawframes' if rawframes else 'videos',
      splits_dir=file_system.absolute(_SPLITS_DIR.value) if _SPLITS_DIR.value else None,
      output_dir=file_system.absolute(_OUTPUT_DIR.value), dataset_name=dataset_name,
      settings=settings,
      videos_per_shard=_VIDEOS_PER_SHARD.value, num_workers=_NUM_WORKERS.value,
      max_failures=_MAX_FAILURES.value, test_fraction=_TEST_FRACTION.value,
      command_line=' '.join(shlex.quote(a) for a in sys.argv), progress=_PROGRESS.value,
      flow_batch_size=_FLOW_BATCH_SIZE.value, runner=_RUNNER.value,
      beam_options=_BEAM_OPTIONS.value,
      extra_metadata={'rawframes_flow_algorithm': _RAWFRAMES_FLOW_ALGORITHM.value}
      if rawframes else {})


def _fail(message: str, status: int) -> None:
  print(f'make_tfrecords.py: error: {message}', file=sys.stderr)
  sys.exit(status)


def main(argv: list[str]) -> None:
  # `kill -USR1 <pid>` prints every thread's stack: a hung run can be diagnosed without a debugger.
  faulthandler.register(signal.SIGUSR1, all_threads=True)
  if len(argv) > 1:
    _fail(f'unexpected arguments {argv[1:]}; every input is a flag (see --help)', 2)
  try:
    options = _options_from_flags()
    plan = dataset_writer.prepare(options)
  except (app.UsageError, split_files.SplitFileError, dataset_plan.PlanError) as e:
    _fail(str(e), 2)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # inherited by the workers too
  try:
    summary = dataset_writer.run(options, plan)
  except dataset_writer.RunError as e:
    _fail(str(e), 1)
  except KeyboardInterrupt:
    _fail('interrupted; finished shards are kept: run the same command again to continue', 130)
  print(run_summary.format_summary(summary))
  if not summary.complete:
    sys.exit(1)


if __name__ == '__main__':
  app.run(main)
