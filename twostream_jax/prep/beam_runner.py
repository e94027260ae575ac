"""The dataset writer's shards as an Apache Beam pipeline (`make_tfrecords --runner=beam`).

`dataset_writer.run` makes the plan, skips finished shards and writes `failures.json` and the
metadata as with the local process pool; only the units of work (one `ShardSpec` per unfinished
shard) go through Beam:

    Create(specs) -> Reshuffle -> Map(_write_unit_in_worker) -> ToList -> Map(_write_run_results)

Runner retries are safe: a shard gets its final name only when complete, so no shard is duplicated
or mixed. The output folder must be reachable by every worker under the same name (a
`tf.io.gfile` URL or a shared path); the videos must be a local path on every worker.

Beam is optional (`pip install -e ".[beam]"`) and imported only inside the functions; nothing
outside `prep` imports this module. Stages, retries and paths: docs/design_notes.md.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import threading
import time
import uuid
from typing import Any, Callable, Optional

from twostream_jax.data import file_system
from twostream_jax.flow import algorithms as optical_flow
from twostream_jax.prep import shard_writer

# Test-only: a unit holding this video id sleeps before writing (so that a test can kill the run
# while it is part-way).
HANG_ENV = 'TWOSTREAM_TEST_BEAM_HANG_BEFORE_VIDEO'
_POLL_S = 0.5
INSTALL_HINT = 'pip install -e ".[beam]" (Apache Beam is an optional extra)'


def check_beam_options(beam_options: str) -> Optional[str]:
  """Why `beam_options` cannot be used (Beam missing, unknown options), or None when it can."""
  try:
    from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    return f'--runner=beam needs Apache Beam ({e}): {INSTALL_HINT}'
  try:
    args = shlex.split(beam_options)
  except ValueError as e:
    return f'--beam_options={beam_options!r} cannot be split into arguments: {e}'
  unknown = pipeline_options.PipelineOptions(args).get_all_options(retain_unknown_options=True)
  known = set(pipeline_options.PipelineOptions([]).get_all_options())
  strays = sorted(k for k in unknown if k not in known)
  if strays:
    return (f'--beam_options has options Beam does not know: {", ".join(strays)}; see '
            'python -m apache_beam.options.pipeline_options or the runner\'s documentation')
  return None


# Per worker process: the flow algorithm, built once (a TV-L1 in JAX compiles once per frame size).
_worker_flows: dict[tuple[str, int], Optional[optical_flow.FlowAlgorithm]] = {}


def _worker_flow(flow_algorithm: str,
                 flow_batch_size: int) -> Optional[optical_flow.FlowAlgorithm]:
  key = (flow_algorithm, flow_batch_size)
  if key not in _worker_flows:
    import cv2  # pylint: disable=g-import-not-at-top
    cv2.setNumThreads(1)  # the workers are the parallelism, as in the local pool
    _worker_flows[key] = (None if flow_algorithm == 'rawframes' else
                          optical_flow.make_flow_algorithm(flow_algorithm, flow_batch_size))
  return _worker_flows[key]


def _write_unit_in_worker(spec: shard_writer.ShardSpec, flow_algorithm: str,
                          flow_batch_size: int) -> str:
  """The pipeline's unit: a ShardSpec in, its ShardResult as JSON out."""
  hang = os.environ.get(HANG_ENV)
  if hang and any(t.video_id == hang for t in spec.videos):
    time.sleep(3600)
  return write_unit(spec, _worker_flow(flow_algorithm, flow_batch_size)).to_json()


def write_unit(spec: shard_writer.ShardSpec,
               flow: Optional[optical_flow.FlowAlgorithm]) -> shard_writer.ShardResult:
  """Writes one shard, or returns its stored result when a retried attempt already finished it."""
  done = shard_writer.load_result(spec.path)
  if done is not None and all(o.ok for o in done.videos):
    return done
  if isinstance(flow, optical_flow.BatchedFlow):
    from twostream_jax.prep import batched_flow_writer  # pylint: disable=g-import-not-at-top
    return batched_flow_writer.run_units_in_process([spec], flow, lambda ok: None)[0]
  return shard_writer.write_shard(spec, flow=flow)


def _write_run_results(results: list[str], path: str) -> None:
  file_system.write_atomic(path, json.dumps(sorted(results)))


class _ResultWatch:
  """Which shards' result files appeared or changed since the watch began (progress).

  One listing of the results folder per poll, and a stat only of the result files listed: on an
  object store each is a request, and a run has hundreds of shards.
  """

  def __init__(self, specs: list[shard_writer.ShardSpec]):
    self._paths = {spec.path: shard_writer.result_path(spec.path) for spec in specs}
    self._folder = os.path.dirname(next(iter(self._paths.values())))
    listed = self._listed()
    self._stamps = {shard: file_system.change_stamp(path) if os.path.basename(path) in listed
                    else None for shard, path in self._paths.items()}

  def _listed(self) -> set[str]:
    return set(file_system.listdir(self._folder)) if file_system.isdir(self._folder) else set()

  def changed(self, shards) -> list[str]:
    """The shards among `shards` whose result file is there and not the one seen at the start."""
    listed = self._listed()
    out = []
    for shard in shards:
      path = self._paths[shard]
      if os.path.basename(path) not in listed:
        continue
      stamp = file_system.change_stamp(path)
      if stamp is not None and stamp != self._stamps[shard]:
        out.append(shard)
    return out


def run_units(specs: list[shard_writer.ShardSpec], flow_algorithm: str, flow_batch_size: int,
              beam_options: str, on_video_done: Callable[[bool], Any],
              on_ready: Callable[[], Any]) -> list[shard_writer.ShardResult]:
  """Writes the shards of `specs` with a Beam pipeline (see the module docstring).

  Args:
    specs: the unfinished units of work.
    flow_algorithm: the plan's flow algorithm ('rawframes' for copied flow).
    flow_batch_size: pairs per batch of a batched flow algorithm.
    beam_options: Beam pipeline options as one string (`--runner=DirectRunner ...`).
    on_video_done: called with each video's success as its shard is seen finished (progress).
    on_ready: called once the pipeline is built and submitted.

  Returns:
    The shards' results, as the pipeline returned them.

  Raises:
    RuntimeError: the pipeline failed (a unit failed for another reason than a bad video, after the
      runner's retries), or finished without a result for every shard.
  """
  if not specs:
    return []
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from apache_beam.options import pipeline_options  # pylint: disable=g-import-not-at-top

  # The DirectRunner relays every worker's INFO lines; keep the runner's own messages (a Dataflow
  # job's console link) but not that chatter.
  for name in ('apache_beam.runners.portability.local_job_service', 'apache_beam.runners.worker'):
    logging.getLogger(name).setLevel(logging.WARNING)
  options = pipeline_options.PipelineOptions(shlex.split(beam_options))
  results_dir = os.path.dirname(shard_writer.result_path(specs[0].path))
  file_system.makedirs(results_dir)
  results_path = os.path.join(results_dir, f'beam-run-{uuid.uuid4().hex}.json')
  pipeline = beam.Pipeline(options=options)
  _ = (pipeline
       | 'Units' >> beam.Create(specs)
       # Spreads the units over the workers (Create alone may keep them in one bundle).
       | 'Spread' >> beam.Reshuffle()
       | 'WriteShards' >> beam.Map(_write_unit_in_worker, flow_algorithm, flow_batch_size)
       | 'Gather' >> beam.combiners.ToList()
       | 'SaveResults' >> beam.Map(_write_run_results, results_path))

  failure = []

  def run_pipeline() -> None:
    try:
      pipeline.run().wait_until_finish()
    except BaseException as e:  # pylint: disable=broad-except
      failure.append(e)

  # Progress: a shard counts when its result file appears or changes (one from an earlier run of
  # a shard with failed videos is there from the start).
  watch = _ResultWatch(specs)
  seen = set()
  thread = threading.Thread(target=run_pipeline, name='beam-pipeline', daemon=True)
  thread.start()
  on_ready()
  while True:
    alive = thread.is_alive()
    for shard in watch.changed([spec.path for spec in specs if spec.path not in seen]):
      result = shard_writer.load_result(shard)
      if result is not None:
        seen.add(shard)
        for outcome in result.videos:
          on_video_done(outcome.ok)
    if not alive:
      break
    thread.join(_POLL_S)
  if failure:
    raise RuntimeError(f'the Beam pipeline failed: {type(failure[0]).__name__}: '
                       f'{str(failure[0])[-2000:]}') from failure[0]
  if not file_system.isfile(results_path):
    raise RuntimeError(f'the Beam pipeline finished without writing {results_path}')
  results = [shard_writer.ShardResult.from_json(r)
             for r in json.loads(file_system.read_text(results_path))]
  file_system.remove(results_path)
  missing = sorted({s.path for s in specs} - {r.path for r in results})
  if missing:
    raise RuntimeError(f'the Beam pipeline returned no result for {len(missing)} shards, e.g. '
                       f'{missing[0]}')
  for result in results:  # shards the progress poll did not see (it stops with the pipeline)
    if result.path not in seen:
      for outcome in result.videos:
        on_video_done(outcome.ok)
  return results
