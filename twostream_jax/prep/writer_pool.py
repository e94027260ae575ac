"""The dataset writer's worker pool: processes forked from a fork server with TensorFlow loaded.

Workers inherit TensorFlow from the fork server instead of importing it, report every finished
video through a queue, keep TensorFlow's C++ log level quiet and exit when the main process dies
(`worker_processes`). The fork server a pool started is stopped once the pool is done, so that a
process that trains after writing records does not keep it (and its memory) alive.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import multiprocessing
import os
import queue as queue_lib
import threading
from typing import Any, Callable

from twostream_jax.prep import shard_writer
from twostream_jax.prep import worker_processes

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
def worker_pool(num_workers: int):
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


def run_in_pool(specs: list[shard_writer.ShardSpec], num_workers: int,
                 on_video_done: Callable[[bool], Any],
                 on_ready: Callable[[], Any]) -> list[shard_writer.ShardResult]:
  results = []
  with worker_pool(num_workers) as (executor, progress_queue):
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
