"""Runs a dataset-writing plan: workers, progress, resume, failures report, summary, metadata.

`prepare` finds the videos, reads the split files and stores (or checks) the plan; every error a user
can cause surfaces there, before any video is decoded. `run` writes the shards not finished yet
(per-pair OpenCV flow in `writer_pool`'s workers; batched TV-L1 through `batched_flow_writer`; or
an Apache Beam pipeline, `beam_runner`), then `write_final_metadata` writes `failures.json` and,
when no more than `max_failures` videos failed, the TFDS metadata and last
`twostream_metadata.json`, which marks the folder complete. The output folder may be any
`tf.io.gfile` URL (`data.file_system`); docs/data.md explains resuming and failures.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import os
import re
import sys
import tempfile
import time
from typing import Any, Callable, Optional

from twostream_jax.data import dataset_metadata
from twostream_jax.data import file_system
from twostream_jax.data import record_schema
from twostream_jax.flow import algorithms as optical_flow
from twostream_jax.prep import dataset_plan
from twostream_jax.prep.run_summary import FAILURES_FILENAME, RunSummary
from twostream_jax.prep import shard_writer
from twostream_jax.prep import split_files
from twostream_jax.prep import writer_pool



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
      return writer_pool.run_in_pool(specs, min(options.num_workers, len(specs)), on_video_done,
                                     on_ready)
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


def source_fps_counts(results: dict[str, shard_writer.ShardResult]) -> dict[str, int]:
  """{source frame rate ('25', '29.97'): number of written videos}, videos of unknown rate left out."""
  counts: dict[str, int] = {}
  for result in results.values():
    for o in result.videos:
      if o.ok and o.fps > 0:
        key = f'{round(o.fps, 3):g}'
        counts[key] = counts.get(key, 0) + 1
  return dict(sorted(counts.items(), key=lambda kv: float(kv[0])))


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
             dataset_metadata.SOURCE_FPS_KEY: source_fps_counts(results),
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
