"""Shard writing with a batched flow algorithm (`--flow_algorithm tvl1_jax`) on the accelerator.

Decoding workers (CPU processes) each take one shard's videos in order and send (frame JPEG,
grayscale frame) messages through a bounded queue. This process pairs consecutive gray frames,
gathers pairs of the same frame size across videos into batches of `flow.batch_size`, runs
`flow.compute_batch` (on every local device), quantises and JPEG-encodes the flow, and writes each
shard in plan order with `shard_writer.ShardFileWriter`: the records are byte-for-byte those of the
per-pair path for the same flow values. Inside a Beam worker (`beam_runner`),
`run_units_in_process` does the same work without decoding processes.

Batching, padding, flushing and memory: docs/design_notes.md.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import multiprocessing
import os
import queue as queue_lib
import time
from typing import Any, Callable, Iterator, Optional

import numpy as np

from twostream_jax.data import record_schema
from twostream_jax.flow import algorithms as optical_flow
from twostream_jax.prep import shard_writer
from twostream_jax.prep import video_decoding
from twostream_jax.prep import worker_processes

_QUEUE_FRAMES_PER_WORKER = 64
_IDLE_FLUSH_S = 0.05
_LATE_MESSAGES_S = 60.0

_frame_queue = None


def _init_worker(frame_queue) -> None:
  global _frame_queue
  worker_processes.exit_with(os.getppid())  # spawned by this process: no orphans after kill -9
  _frame_queue = frame_queue
  import cv2  # pylint: disable=g-import-not-at-top
  cv2.setNumThreads(1)


def _decode_unit(shard_index: int, spec: shard_writer.ShardSpec) -> None:
  """Streams one shard's frames to the main process (see the module docstring)."""
  decode_unit_messages(shard_index, spec, _frame_queue.put)


def decode_unit_messages(shard_index: int, spec: shard_writer.ShardSpec,
                         put: Callable[[tuple], Any]) -> None:
  """Decodes one shard's videos in order and passes each message to `put`.

  Messages: ('frame', shard, video, frame JPEG bytes, `[H, W]` uint8 gray), ('end', shard, video,
  failure reason or '', warnings, source frame rate) after each video, ('shard_end', shard, number of videos).
  """
  for video_index, task in enumerate(spec.videos):
    if os.environ.get(shard_writer.CRASH_ENV) == task.video_id:
      os._exit(17)  # pylint: disable=protected-access
    for message in _video_messages(shard_index, video_index, task, spec.settings):
      put(message)  # outside the decoding try: an error of `put` is not this video's fault
  put(('shard_end', shard_index, len(spec.videos)))


def _video_messages(shard_index: int, video_index: int, task: shard_writer.VideoTask,
                    settings: shard_writer.EncodeSettings) -> Iterator[tuple]:
  """One video's 'frame' messages, then its 'end' message (with the failure reason, if any)."""
  stats = video_decoding.DecodeStats()
  frames = shard_writer.iter_encoded_frames(task, settings, stats)
  while True:
    try:
      jpeg, gray = next(frames)
    except StopIteration:
      break
    except video_decoding.VideoDecodeError as e:
      yield ('end', shard_index, video_index, str(e), [], 0.0)
      return
    except Exception as e:  # pylint: disable=broad-except
      yield ('end', shard_index, video_index, f'{type(e).__name__}: {e}', [], 0.0)
      return
    yield ('frame', shard_index, video_index, jpeg, gray)
  if stats.kept_frames < 2:
    yield ('end', shard_index, video_index,
           f'too short: {stats.kept_frames} decodable frame(s), need at least 2', [], 0.0)
    return
  warning = stats.truncation_warning()
  yield ('end', shard_index, video_index, '', [warning] if warning else [], stats.fps)


@dataclasses.dataclass
class _Video:
  task: shard_writer.VideoTask
  frames: list[bytes] = dataclasses.field(default_factory=list)
  flow_x: dict[int, bytes] = dataclasses.field(default_factory=dict)
  flow_y: dict[int, bytes] = dataclasses.field(default_factory=dict)
  prev_gray: Optional[np.ndarray] = None
  shape: tuple[int, int] = (0, 0)
  ended: bool = False
  reason: str = ''
  warnings: list[str] = dataclasses.field(default_factory=list)
  fps: float = 0.0

  def complete(self) -> bool:
    return self.ended and (bool(self.reason) or len(self.flow_x) == len(self.frames) - 1)


class _Assembler:
  """Pairs frames, batches pairs, fills flow slots and writes finished videos in order."""

  def __init__(self, specs: list[shard_writer.ShardSpec], flow: optical_flow.BatchedFlow,
               on_video_done: Callable[[bool], Any]):
    self.specs = specs
    self.flow = flow
    self.on_video_done = on_video_done
    self.videos: dict[tuple[int, int], _Video] = {}
    self.buckets: dict[tuple[int, int], list] = collections.defaultdict(list)
    self.writers: dict[int, shard_writer.ShardFileWriter] = {}
    self.outcomes: dict[int, list[shard_writer.VideoOutcome]] = collections.defaultdict(list)
    self.shard_ended: set[int] = set()
    self.results: list[shard_writer.ShardResult] = []

  def _video(self, s: int, v: int) -> _Video:
    key = (s, v)
    if key not in self.videos:
      self.videos[key] = _Video(self.specs[s].videos[v])
    return self.videos[key]

  def on_message(self, message: tuple) -> None:
    kind, s = message[0], message[1]
    if kind == 'frame':
      _, _, v, jpeg, gray = message
      video = self._video(s, v)
      video.frames.append(jpeg)
      video.shape = gray.shape
      if video.prev_gray is not None:
        bucket = self.buckets[gray.shape]
        bucket.append((s, v, len(video.frames) - 2, video.prev_gray, gray))
        if len(bucket) >= self.flow.batch_size:
          self._run_batch(gray.shape)
      video.prev_gray = gray
    elif kind == 'end':
      _, _, v, reason, warnings, fps = message
      video = self._video(s, v)
      video.ended, video.reason, video.warnings, video.prev_gray = True, reason, warnings, None
      video.fps = fps
      self._write_ready(s)
    else:  # shard_end
      self.shard_ended.add(s)
      self._write_ready(s)

  def flush(self) -> None:
    for shape in [k for k, b in self.buckets.items() if b]:
      while self.buckets[shape]:
        self._run_batch(shape)

  def _run_batch(self, shape: tuple[int, int]) -> None:
    bucket = self.buckets[shape]
    items, self.buckets[shape] = bucket[:self.flow.batch_size], bucket[self.flow.batch_size:]
    pad = [items[-1]] * (self.flow.batch_size - len(items))
    gray0 = np.stack([it[3] for it in items + pad])
    gray1 = np.stack([it[4] for it in items + pad])
    flows = self.flow.compute_batch(gray0, gray1)
    touched = set()
    for (s, v, i, _, _), flow_px in zip(items, flows):
      video = self.videos[(s, v)]
      video.flow_x[i], video.flow_y[i] = shard_writer.encode_flow(flow_px, self.specs[s].settings)
      touched.add(s)
    for s in sorted(touched):
      self._write_ready(s)

  def _write_ready(self, s: int) -> None:
    spec = self.specs[s]
    outcomes = self.outcomes[s]
    while len(outcomes) < len(spec.videos):
      key = (s, len(outcomes))
      video = self.videos.get(key)
      if video is None or not video.complete():
        return
      if s not in self.writers:
        self.writers[s] = shard_writer.ShardFileWriter(spec.path)
      if video.reason or len(video.frames) < 2:
        outcome = shard_writer.VideoOutcome(video.task.video_id, False,
                                            reason=video.reason or 'too short')
      else:
        h, w = video.shape
        n = len(video.frames) - 1
        record = record_schema.VideoRecord(
            video.task.video_id, video.task.label, video.task.label_name, h, w, video.frames,
            [video.flow_x[i] for i in range(n)], [video.flow_y[i] for i in range(n)])
        self.writers[s].write(record)
        outcome = shard_writer.outcome_of(record, [], video.warnings, video.fps)
      del self.videos[key]
      outcomes.append(outcome)
      self.on_video_done(outcome.ok)
    if s in self.shard_ended:
      writer = self.writers.pop(s, None) or shard_writer.ShardFileWriter(spec.path)
      self.results.append(writer.finish(outcomes))
      self.shard_ended.discard(s)

  def abandon(self) -> None:
    for writer in self.writers.values():
      writer.abandon()


def run_units_in_process(specs: list[shard_writer.ShardSpec], flow: optical_flow.BatchedFlow,
                         on_video_done: Callable[[bool], Any]) -> list[shard_writer.ShardResult]:
  """`run_units` without decoding processes: decodes here, between batches.

  For a process that is itself one of many workers (a Beam worker): the parallelism is outside,
  and the accelerator is this process's. Same records as `run_units`.

  Args:
    specs: units of work (shards).
    flow: a batched flow algorithm.
    on_video_done: called with each video's success, in each shard's order.

  Returns:
    The shards' results, in the order of `specs`.
  """
  assembler = _Assembler(specs, flow, on_video_done)
  try:
    for i, spec in enumerate(specs):
      decode_unit_messages(i, spec, assembler.on_message)
      assembler.flush()
  except BaseException:
    assembler.abandon()
    raise
  by_path = {r.path: r for r in assembler.results}
  return [by_path[spec.path] for spec in specs]


def run_units(specs: list[shard_writer.ShardSpec], flow: optical_flow.BatchedFlow,
              num_workers: int, on_video_done: Callable[[bool], Any]) -> list[shard_writer.ShardResult]:
  """Writes the shards of `specs` (see the module docstring).

  Args:
    specs: units of work (shards), as for `shard_writer.write_shard`.
    flow: a batched flow algorithm.
    num_workers: decoding processes.
    on_video_done: called with each video's success, in each shard's order.

  Returns:
    The shards' results.

  Raises:
    RuntimeError: a decoding worker died.
  """
  if not specs:
    return []
  ctx = multiprocessing.get_context('spawn')
  frame_queue = ctx.Queue(maxsize=_QUEUE_FRAMES_PER_WORKER * max(1, num_workers))
  assembler = _Assembler(specs, flow, on_video_done)
  executor = concurrent.futures.ProcessPoolExecutor(
      max_workers=max(1, min(num_workers, len(specs))), mp_context=ctx, initializer=_init_worker,
      initargs=(frame_queue,))
  try:
    pending = {executor.submit(_decode_unit, i, spec) for i, spec in enumerate(specs)}
    all_decoded_at = None
    while len(assembler.results) < len(specs):
      try:
        assembler.on_message(frame_queue.get(timeout=_IDLE_FLUSH_S))
        continue
      except queue_lib.Empty:
        pass
      # The decoders are behind (or done): compute what is waiting rather than idle.
      assembler.flush()
      done = {f for f in pending if f.done()}
      for future in done:
        future.result()  # raises BrokenProcessPool if a worker died
      pending -= done
      # A finished task's last messages can still be in the queue's pipe; wait for them a while.
      if not pending:
        all_decoded_at = all_decoded_at or time.monotonic()
        if time.monotonic() - all_decoded_at > _LATE_MESSAGES_S:
          raise RuntimeError('decoding workers finished but some shards never completed')
  except BaseException:
    assembler.abandon()
    # Workers blocked on the full queue would never finish: stop them rather than wait for them.
    for process in list((getattr(executor, '_processes', None) or {}).values()):
      process.terminate()
    raise
  finally:
    executor.shutdown(wait=True, cancel_futures=True)
  return assembler.results
