"""Runs a dataset-writing plan: workers, progress, resume, failures report, summary, metadata.

`prepare` finds the videos, reads the split files and stores (or checks) the plan; every error a user
can cause surfaces there, before any video is decoded. `run` then writes the shards that are not
finished yet:
  * per-pair flow (OpenCV): each shard is one unit (`shard_writer.write_shard`), run in
    `num_workers` processes forked from a fork server that has TensorFlow loaded (in this process
    when one worker or one unit is left); workers report every finished video through a queue,
    which drives the progress bar, and exit when this process dies (`worker_processes`); the fork
    server is stopped once the pool is done;
  * batched flow (tvl1_jax): `batched_flow_writer` decodes in the workers and computes flow in this
    process, in batches across videos;
  * with `runner='beam'`, the units run as an Apache Beam pipeline instead (`beam_runner`); all the
    rest (plan, skipping finished shards, failures.json, metadata) is the same.
A shard whose result lists failed videos is redone by a rerun, so replaced files are picked up.

At the end (`write_final_metadata`, which other runners call too) it writes `failures.json`
(always: failed videos with reasons, and warnings), then, when no more videos failed than
`max_failures`, the metadata of what was written: the TFDS metadata (`dataset_info.json`,
`features.json`: `tfds.builder_from_directory(output_dir)` reads the partitions as TFDS splits) and
last `twostream_metadata.json`, which marks the folder as complete. A split whose videos all failed
does not stop it: it is written empty and reported loudly; `max_failures` alone decides.

The output folder may be a URL of any `tf.io.gfile` file system (`data.file_system`: gs://, ...):
the shards, the results, the plan, `failures.json` and the metadata are written there the same way
(temporary name, then rename). The videos are read from local paths (OpenCV decodes files).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import importlib
import json
import multiprocessing
import os
import re
import queue as queue_lib
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Optional

from twostream_jax.data import dataset_metadata
from twostream_jax.data import file_system
from twostream_jax.data import record_schema
from twostream_jax.flow import algorithms as optical_flow
from twostream_jax.prep import dataset_plan
from twostream_jax.prep import shard_writer
from twostream_jax.prep import split_files
from twostream_jax.prep import worker_processes

FAILURES_FILENAME = 'failures.json'


class RunError(RuntimeError):
  """The run could not finish (a worker died, a disk error); finished shards are kept."""


@dataclasses.dataclass
class WriterOptions:
  """Everything a run needs (the tool fills it from its flags).

  Attributes:
    source_root: `--videos_dir` or `--rawframes_dir`.
    source_kind: 'videos' or 'rawframes'.
    splits_dir: split files folder, or None for the deterministic split.
    output_dir: where shards and metadata go.
    dataset_name: TFDS name (shard file prefix).
    settings: how videos are encoded.
    videos_per_shard: the most videos per shard (more shards for small sets, see dataset_plan).
    num_workers: worker processes.
    max_failures: the most failed videos for a successful run.
    test_fraction: test share of the deterministic split.
    command_line: recorded in the metadata.
    progress: show a progress bar.
    flow_batch_size: pairs per batch of a batched flow algorithm.
    extra_metadata: added to the metadata's `extra`.
    runner: 'local' (this process and its worker pool) or 'beam' (`beam_runner`: the units as an
      Apache Beam pipeline).
    beam_options: Beam pipeline options, one string (runner 'beam' only).
  """
  source_root: str
  source_kind: str
  splits_dir: Optional[str]
  output_dir: str
  dataset_name: str
  settings: shard_writer.EncodeSettings
  videos_per_shard: int = 100
  num_workers: int = 1
  max_failures: int = 0
  test_fraction: float = 0.25
  command_line: str = ''
  progress: bool = True
  flow_batch_size: int = 8
  extra_metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
  runner: str = 'local'
  beam_options: str = ''


@dataclasses.dataclass
class RunSummary:
  """What a run did and what the folder holds (see `format_summary`)."""
  output_dir: str
  complete: bool
  videos_total: int
  videos_done_before: int
  videos_written: int
  shards_total: int
  shards_written_now: int
  per_split: dict[str, int]
  per_partition: dict[str, int]
  failures: list[dict[str, str]]
  warnings: list[dict[str, str]]
  bytes_on_disk: int
  frames: int
  frame_bytes: int
  flow_fields: int
  flow_bytes: int
  flow_float32_bytes: int
  rawframes_layouts: dict[str, int]
  seconds: float
  max_failures: int
  empty_splits: list[str] = dataclasses.field(default_factory=list)


def default_dataset_name(output_dir: str) -> str:
  """The output folder's name made a valid TFDS name ([a-z][a-z0-9_]*)."""
  name = re.sub(r'[^a-z0-9_]+', '_', os.path.basename(os.path.normpath(output_dir)).lower())
  name = re.sub(r'_+', '_', name).strip('_')
  return name if name[:1].isalpha() else f'ds_{name}' if name else 'dataset'


def prepare(options: WriterOptions) -> dataset_plan.Plan:
  """Indexes the inputs and stores or checks the plan.

  Raises:
    split_files.SplitFileError, dataset_plan.PlanError: unusable inputs, or an output folder that
      holds another run.
  """
  index = split_files.build_index(options.source_root, options.source_kind, options.splits_dir,
                                  options.test_fraction)
  problem = file_system.scheme_problem(options.output_dir)
  if problem:
    raise dataset_plan.PlanError(f'--output_dir {problem}')
  if file_system.exists(options.output_dir) and not file_system.isdir(options.output_dir):
    raise dataset_plan.PlanError(f'--output_dir {options.output_dir!r} is a file; give a folder')
  file_system.makedirs(options.output_dir)
  stored = dataset_plan.load_plan(options.output_dir)
  min_units = stored.min_units if stored is not None else max(1, options.num_workers)
  plan = dataset_plan.make_plan(index, options.settings, options.dataset_name,
                                options.source_kind, options.videos_per_shard, min_units)
  return dataset_plan.check_or_store(plan, options.output_dir)


_worker_queue = None


def _init_worker(progress_queue, main_pid: int) -> None:
  global _worker_queue
  worker_processes.exit_with(main_pid)  # no orphans when this process is killed
  # Before any TF import here: where the fork server has no TF (spawn, or a fork server another
  # pool of this process started without the preload), the worker imports it itself.
  worker_processes.quiet_tensorflow_logs()
  _worker_queue = progress_queue
  import cv2  # pylint: disable=g-import-not-at-top
  cv2.setNumThreads(1)  # the workers are the parallelism; OpenCV threads would oversubscribe


def _ready() -> None:
  """A no-op task: its completion means the fork server (and TF in it) is up."""


def _run_unit(spec: shard_writer.ShardSpec) -> shard_writer.ShardResult:
  return shard_writer.write_shard(spec, lambda o: _worker_queue.put(o.ok))


def _worker_context() -> multiprocessing.context.BaseContext:
  """'forkserver' with TensorFlow preloaded, so that workers inherit it instead of importing it.

  The fork server is a fresh process that only imports modules, so forking workers from it is safe
  whatever this process did before (forking this process itself deadlocks a child when OpenCV's
  thread pool has run here, e.g. after a one-worker run in the same process). Spawn where there is
  no fork server (Windows).
  """
  if 'forkserver' not in multiprocessing.get_all_start_methods():
    return multiprocessing.get_context('spawn')
  ctx = multiprocessing.get_context('forkserver')
  # Ignored when the fork server of this process is already running (it then has them or not).
  ctx.set_forkserver_preload(['twostream_jax.prep.forkserver_preload'])
  return ctx


def _start_fork_server(ctx: multiprocessing.context.BaseContext) -> bool:
  """Starts this process's fork server unless one runs; returns whether this call started it.

  Reads `ForkServer._forkserver_pid` (private, read guarded): where it is missing, this answers
  False and the server is never stopped, as before.
  """
  if ctx.get_start_method() != 'forkserver':
    return False
  from multiprocessing import forkserver  # pylint: disable=g-import-not-at-top
  server = getattr(forkserver, '_forkserver', None)
  before = getattr(server, '_forkserver_pid', None)
  forkserver.ensure_running()  # what the first worker's start would do; returns at once
  return getattr(server, '_forkserver_pid', None) not in (None, before)


def _stop_fork_server() -> None:
  """Stops this process's fork server, which holds TensorFlow's memory until the process ends.

  Python (3.11) has no public way to stop it; `ForkServer._stop` is what CPython's own tests use:
  it closes the server's "alive" pipe and waits for it to exit, which it does as soon as no worker
  forked from it is left (and at once: `forkserver_preload` skips TF's unloading). Where a Python
  lacks it the server stays, as before. The next pool of this process starts a fresh one, with
  the preload that pool asks for.
  """
  from multiprocessing import forkserver  # pylint: disable=g-import-not-at-top
  stop = getattr(getattr(forkserver, '_forkserver', None), '_stop', None)
  if stop is not None:
    stop()


@contextlib.contextmanager
def _worker_pool(num_workers: int):
  """The writer's worker processes: a `ProcessPoolExecutor` and the queue of finished videos.

  On leaving, the workers are shut down and, when this pool started the fork server, so is it:
  the run is over, and the process may go on to train (the demo does) without the server's
  TensorFlow. A fork server that ran before stays: another pool of this process may be using it.

  Yields:
    (executor, progress_queue): workers run `_init_worker` first; tasks put one bool per video.
  """
  ctx = _worker_context()
  started_server = _start_fork_server(ctx)
  try:
    progress_queue = ctx.Queue()
    executor = concurrent.futures.ProcessPoolExecutor(
        max_workers=num_workers, mp_context=ctx, initializer=_init_worker,
        initargs=(progress_queue, os.getpid()))
    try:
      yield executor, progress_queue
    finally:
      executor.shutdown(wait=True, cancel_futures=True)
  finally:
    if started_server:
      _stop_fork_server()


def _run_in_pool(specs: list[shard_writer.ShardSpec], num_workers: int,
                 on_video_done: Callable[[bool], Any],
                 on_ready: Callable[[], Any]) -> list[shard_writer.ShardResult]:
  results = []
  with _worker_pool(num_workers) as (executor, progress_queue):
    # The metadata needs TF here too: import it while the fork server imports its copy (the first
    # submit blocks until the fork server has done its imports, so the import runs in a thread).
    importer = threading.Thread(target=importlib.import_module, args=('tensorflow',), daemon=True)
    importer.start()
    warm_up = executor.submit(_ready)
    importer.join()
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import  (done: raises its error)
    warm_up.result()
    on_ready()  # the start-up seconds stay out of the progress bar's rate
    pending = {executor.submit(_run_unit, spec) for spec in specs}
    while pending:
      try:
        while True:
          on_video_done(progress_queue.get(timeout=0.1))
      except queue_lib.Empty:
        pass
      done, pending = concurrent.futures.wait(pending, timeout=0,
                                              return_when=concurrent.futures.FIRST_COMPLETED)
      for future in done:
        results.append(future.result())
    while True:
      try:
        on_video_done(progress_queue.get(timeout=0.05))
      except queue_lib.Empty:
        break
  return results


def _execute(plan: dataset_plan.Plan, specs: list[shard_writer.ShardSpec], options: WriterOptions,
             on_video_done: Callable[[bool], Any],
             on_ready: Callable[[], Any]) -> list[shard_writer.ShardResult]:
  settings = plan.encode_settings
  try:
    if options.runner == 'beam':
      from twostream_jax.prep import beam_runner  # pylint: disable=g-import-not-at-top
      return beam_runner.run_units(specs, settings.flow_algorithm, options.flow_batch_size,
                                   options.beam_options, on_video_done, on_ready)
    if settings.flow_algorithm in optical_flow.BATCHED_ALGORITHMS:
      from twostream_jax.prep import batched_flow_writer  # pylint: disable=g-import-not-at-top
      flow = optical_flow.make_flow_algorithm(settings.flow_algorithm, options.flow_batch_size)
      return batched_flow_writer.run_units(specs, flow, options.num_workers, on_video_done)
    if options.num_workers > 1 and len(specs) > 1:
      return _run_in_pool(specs, min(options.num_workers, len(specs)), on_video_done, on_ready)
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
    on_ready()
    return [shard_writer.write_shard(spec, lambda o: on_video_done(o.ok)) for spec in specs]
  except concurrent.futures.process.BrokenProcessPool as e:
    raise RunError('a worker process died (killed, out of memory or crashed in a decoder) while '
                   'writing shards; finished shards are kept: run the same command again to '
                   'write the rest') from e
  except (OSError, RuntimeError) as e:
    raise RunError(f'writing shards failed: {type(e).__name__}: {e}; finished shards are kept: '
                   'fix the cause and run the same command again') from e


def _flow_parameters(algorithm: str, batch_size: int) -> dict[str, Any]:
  if algorithm == 'rawframes':
    return {}
  return optical_flow.make_flow_algorithm(algorithm, batch_size).parameters()


def collect_failures(plan: dataset_plan.Plan, results: dict[str, shard_writer.ShardResult],
                     ) -> list[dict[str, str]]:
  """The videos that could not be written, sorted by id.

  Args:
    plan: the run's plan.
    results: shard path -> its result, for every shard of the plan.

  Returns:
    One {'video_id', 'source' (relative to the source root), 'reason'} per failed video.
  """
  sources = {v[0]: v[2] for shards in plan.shards.values() for s in shards for v in s}
  outcomes = sorted((o for r in results.values() for o in r.videos), key=lambda o: o.video_id)
  return [{'video_id': o.video_id, 'source': sources[o.video_id], 'reason': o.reason}
          for o in outcomes if not o.ok]


def summarise(plan: dataset_plan.Plan, options: WriterOptions,
              results: dict[str, shard_writer.ShardResult], done_before: int = 0,
              written_now: int = 0, seconds: float = 0.0) -> RunSummary:
  """What the shards of `plan` hold, from their results (every shard of the plan must have one).

  `complete` (metadata written, exit status 0) depends on `options.max_failures` alone; splits
  that failures emptied are listed in `empty_splits`.
  """
  paths = plan.shard_paths(options.output_dir)
  missing = [p for ps in paths.values() for p in ps if p not in results]
  if missing:
    raise RunError(f'{len(missing)} shards of the plan have no result (e.g. {missing[0]}): run the '
                   'same command again to write them')
  ok = [o for r in results.values() for o in r.videos if o.ok]
  failures = collect_failures(plan, results)
  per_partition = {p: sum(results[path].num_examples for path in ps) for p, ps in paths.items()}
  per_split = {s: sum(per_partition[p] for p in parts) for s, parts in plan.splits.items()}
  layout_notes = collections.Counter(n for o in ok for n in o.notes)
  warnings = [{'video_id': o.video_id, 'warning': w} for o in ok for w in o.warnings]
  flow_fields = sum(o.num_frames - 1 for o in ok)
  return RunSummary(
      output_dir=options.output_dir,
      complete=len(failures) <= options.max_failures,
      empty_splits=sorted(s for s, n in per_split.items() if n == 0),
      videos_total=plan.num_videos(), videos_done_before=done_before, videos_written=len(ok),
      shards_total=sum(len(p) for p in paths.values()), shards_written_now=written_now,
      per_split=per_split, per_partition=per_partition, failures=failures, warnings=warnings,
      bytes_on_disk=sum(r.num_bytes for r in results.values()),
      frames=sum(o.num_frames for o in ok), frame_bytes=sum(o.frame_bytes for o in ok),
      flow_fields=flow_fields, flow_bytes=sum(o.flow_bytes for o in ok),
      flow_float32_bytes=sum((o.num_frames - 1) * o.height * o.width * 2 * 4 for o in ok),
      rawframes_layouts=dict(sorted(layout_notes.items())) if plan.source_kind == 'rawframes'
      else {}, seconds=seconds, max_failures=options.max_failures)


def _write_failures(summary: RunSummary) -> None:
  file_system.write_atomic(
      os.path.join(summary.output_dir, FAILURES_FILENAME),
      json.dumps({'num_failed': len(summary.failures), 'max_failures': summary.max_failures,
                  'failed': summary.failures, 'warnings': summary.warnings}, indent=1))


def _write_tfds_metadata(plan: dataset_plan.Plan, options: WriterOptions,
                         results: dict[str, shard_writer.ShardResult]) -> None:
  """TFDS's `dataset_info.json` and `features.json` (`tfds.builder_from_directory` reads them).

  TFDS writes through etils paths, which know local paths and gs://, s3://, az://, hf:// only, and
  finds the data set's name and file format by listing the shard files of the folder. So it writes
  into a local temporary folder holding empty stand-ins named like the shards (it reads none of
  them: `check_data=False`; the sizes come from the results), and the files it wrote are copied to
  the output folder, each atomically: the same bytes wherever the output is.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  paths = plan.shard_paths(options.output_dir)
  split_infos = [tfds.core.SplitInfo(
      name=p, shard_lengths=[results[path].num_examples for path in ps],
      num_bytes=sum(results[path].num_bytes for path in ps)) for p, ps in paths.items()]
  with tempfile.TemporaryDirectory(prefix='make_tfrecords_tfds_') as tmp:
    # Named like the output folder: TFDS takes a folder named like a version ('1.2.0') as the
    # data set's version.
    folder = os.path.join(tmp, os.path.basename(options.output_dir.rstrip('/')) or 'dataset')
    os.makedirs(folder)
    stand_ins = {os.path.basename(path) for ps in paths.values() for path in ps}
    for name in stand_ins:
      open(os.path.join(folder, name), 'wb').close()
    tfds.folder_dataset.write_metadata(
        data_dir=folder, features=record_schema.tfds_features(
            plan.class_names, backward_flow=plan.encode_settings.backward_flow),
        split_infos=split_infos, check_data=False,
        description=(f'Two-stream records ({plan.encode_settings.flow_algorithm} flow) written by '
                     'tools/make_tfrecords.py. TFDS splits are partitions; official splits are '
                     'unions of them: see twostream_metadata.json.'))
    for name in sorted(set(os.listdir(folder)) - stand_ins):
      with open(os.path.join(folder, name), 'rb') as f:
        file_system.write_atomic(os.path.join(options.output_dir, name), f.read())


def _write_metadata(plan: dataset_plan.Plan, options: WriterOptions,
                    results: dict[str, shard_writer.ShardResult], summary: RunSummary) -> None:
  _write_tfds_metadata(plan, options, results)
  paths = plan.shard_paths(options.output_dir)
  settings = plan.encode_settings
  metadata = dataset_metadata.DatasetMetadata(
      name=plan.dataset_name, class_names=plan.class_names,
      partitions={p: [o.video_id for path in ps for o in results[path].videos if o.ok]
                  for p, ps in paths.items()},
      num_shards={p: len(ps) for p, ps in paths.items()},
      # A partition left empty by failures is no part of any split (TFDS reads no empty split); a
      # split left without partitions stays listed, empty: reading it names the split.
      splits={s: [p for p in parts if summary.per_partition[p]] for s, parts in plan.splits.items()},
      flow_algorithm=settings.flow_algorithm, flow_bound_px=settings.flow_bound_px,
      short_side=settings.short_side, jpeg_quality=settings.jpeg_quality,
      command_line=options.command_line,
      extra={'flow_parameters': _flow_parameters(settings.flow_algorithm, options.flow_batch_size),
             'source_kind': plan.source_kind, 'max_frames': settings.max_frames,
             'frame_stride': settings.frame_stride, 'split_scheme': plan.index,
             'videos_per_split': summary.per_split, 'num_failed': len(summary.failures),
             'empty_splits': summary.empty_splits,
             'rawframes_layouts': summary.rawframes_layouts,
             record_schema.BACKWARD_FLOW_METADATA_KEY: settings.backward_flow,
             **({'source_flow_bound_px': settings.source_flow_bound_px}
                if plan.source_kind == 'rawframes' else {}),
             **options.extra_metadata})
  dataset_metadata.save_metadata(metadata, options.output_dir)


def write_final_metadata(options: WriterOptions, plan: dataset_plan.Plan,
                         results: dict[str, shard_writer.ShardResult], done_before: int = 0,
                         written_now: int = 0, seconds: float = 0.0) -> RunSummary:
  """Ends a run of any runner once every shard of `plan` has its result.

  Writes `failures.json` (always), then, when no more videos failed than `options.max_failures`,
  the TFDS metadata and last `twostream_metadata.json` for what was written: splits that failures
  emptied are kept, empty, and reported in the summary (`empty_splits`); and removes shards left
  half-written by killed workers.

  Args:
    options: the run's options (output folder, max_failures, ...).
    plan: the run's plan.
    results: shard path -> its result, for every shard of the plan.
    done_before, written_now, seconds: for the summary's figures.

  Returns:
    The summary; `complete` says whether the metadata was written.
  """
  summary = summarise(plan, options, results, done_before, written_now, seconds)
  _write_failures(summary)
  if summary.complete:
    _write_metadata(plan, options, results, summary)
    shard_writer.remove_temporaries(options.output_dir)
  return summary


def run(options: WriterOptions, plan: dataset_plan.Plan) -> RunSummary:
  """Writes the unfinished shards of `plan`, then the failures report and the metadata.

  Raises:
    RunError: a worker died or a unit failed for another reason than a bad video.
  """
  import tqdm  # pylint: disable=g-import-not-at-top

  start = time.time()
  shard_writer.migrate_legacy_results(options.output_dir)  # folders of older versions resume
  specs = plan.shard_specs(options.output_dir, options.source_root)
  # One listing first: on an object store every check of a shard is a request.
  present = set(file_system.listdir(options.output_dir))
  results, todo = {}, []
  for spec in specs:
    result = (shard_writer.load_result(spec.path) if os.path.basename(spec.path) in present
              else None)
    if result is not None and all(o.ok for o in result.videos):
      results[spec.path] = result
    else:
      todo.append(spec)
  done_before = sum(len(r.videos) for r in results.values())
  failed = [0]
  bar = tqdm.tqdm(total=plan.num_videos(), initial=done_before, unit='video', desc='videos',
                  disable=not options.progress, file=sys.stderr, dynamic_ncols=True, smoothing=0.1)

  def on_ready() -> None:
    # Restart the clock once workers and TF are loaded, so that the rate and ETA are per video.
    bar.reset()
    bar.n = bar.last_print_n = bar.initial = done_before
    bar.refresh()

  def on_video_done(ok: bool) -> None:
    failed[0] += not ok
    bar.update(1)
    if failed[0]:
      bar.set_postfix(failed=failed[0], refresh=False)

  try:
    for result in _execute(plan, todo, options, on_video_done, on_ready):
      results[result.path] = result
  finally:
    bar.close()
  return write_final_metadata(options, plan, results, done_before, len(todo), time.time() - start)


def _mib(n: int) -> str:
  return f'{n / 2**20:.2f} MiB'


def format_summary(s: RunSummary) -> str:
  """A few lines for the console."""
  lines = [f'Wrote {s.output_dir}: {s.videos_written}/{s.videos_total} videos in '
           f'{s.shards_total} shards ({s.shards_written_now} written now, '
           f'{s.videos_done_before} videos were done before) in {s.seconds:.1f} s.']
  lines.append('  videos per split: ' + ', '.join(f'{k} {v}' for k, v in sorted(s.per_split.items())))
  lines.append(f'  bytes on disk: {_mib(s.bytes_on_disk)}; frames {s.frames} '
               f'({_mib(s.frame_bytes)} JPEG)')
  if s.flow_fields:
    ratio = s.flow_float32_bytes / max(1, s.flow_bytes)
    lines.append(f'  flow: {s.flow_fields} fields, {_mib(s.flow_bytes)} as JPEG vs '
                 f'{_mib(s.flow_float32_bytes)} as float32 ({ratio:.1f}x smaller, '
                 f'{s.flow_bytes / s.flow_fields:.0f} bytes per field)')
  if s.rawframes_layouts:
    lines.append('  rawframes layouts: ' + ', '.join(f'{k} {v}' for k, v in
                                                     s.rawframes_layouts.items()))
  if s.warnings:
    lines.append(f'  {len(s.warnings)} warnings (see {FAILURES_FILENAME}), e.g. '
                 f'{s.warnings[0]["video_id"]}: {s.warnings[0]["warning"]}')
  if s.failures:
    lines.append(f'  {len(s.failures)} videos failed (listed in {FAILURES_FILENAME}):')
    lines += [f'    {f["video_id"]}: {f["reason"]}' for f in s.failures[:20]]
    if len(s.failures) > 20:
      lines.append(f'    ... and {len(s.failures) - 20} more')
  if s.empty_splits:
    lines.append(f'  WARNING: split{"s" if len(s.empty_splits) > 1 else ""} '
                 f'{", ".join(s.empty_splits)} {"have" if len(s.empty_splits) > 1 else "has"} NO '
                 'videos: every one of them failed. Training or evaluating on '
                 f'{"them" if len(s.empty_splits) > 1 else "it"} fails; replace the failed files and '
                 'run the same command again to add them.')
  if not s.complete:
    lines.append(f'  More videos failed than --max_failures={s.max_failures}: metadata NOT written. '
                 'Replace those files and run the same command again (shards with failures are '
                 'redone), or run it again with a higher --max_failures to accept the data set '
                 'without them.')
  return '\n'.join(lines)
