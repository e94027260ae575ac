"""One stage of the rehearsal: a command run as a child process, measured.

`run_stage` runs the command (a user's command line: `python -m twostream_jax.main ...`,
`tools/make_tfrecords.py ...`), writes its output to `<log_dir>/<name>.log` with each line's
time, and measures its wall seconds and its peak resident memory: the largest sum of the RSS of
the child and all its descendants (worker processes included), sampled by psutil every
`SAMPLE_SECONDS`. Without psutil, the peak is `getrusage(RUSAGE_CHILDREN).ru_maxrss`, the largest
single process (a lower bound), and the stage says so.
"""

from __future__ import annotations

import dataclasses
import os
import re
import resource
import subprocess
import sys
import threading
import time
from typing import Optional, Sequence

try:
  import psutil
except ImportError:  # optional: the fallback below
  psutil = None

SAMPLE_SECONDS = 0.2
_ABSL_LINE = re.compile(r'^[IW]\d{4} ')  # absl INFO/WARNING lines stay in the log only


class StageError(RuntimeError):
  """A stage's command failed; the message names the stage, its log and the log's last lines."""


@dataclasses.dataclass
class StageResult:
  """What one stage cost.

  Attributes:
    name: the stage's name.
    command: the command line.
    seconds: wall time.
    peak_rss_bytes: the largest total RSS of the process tree (module docstring).
    rss_method: 'process tree (psutil)' or 'largest process (getrusage)'.
    log: the log file; `lines` holds (seconds since start, line) of its output.
  """
  name: str
  command: list[str]
  seconds: float
  peak_rss_bytes: int
  rss_method: str
  log: str
  lines: list[tuple[float, str]] = dataclasses.field(default_factory=list, repr=False)


def _tree_rss(proc) -> int:
  total = 0
  try:
    procs = [proc] + proc.children(recursive=True)
  except psutil.Error:
    return 0
  for p in procs:
    try:
      total += p.memory_info().rss
    except psutil.Error:
      pass
  return total


def run_stage(name: str, command: Sequence[str], log_dir: str, *, cwd: Optional[str] = None,
              env: Optional[dict[str, str]] = None, echo: bool = True) -> StageResult:
  """Runs `command` to completion and measures it (module docstring).

  Raises:
    StageError: the command exited with a non-zero status.
  """
  os.makedirs(log_dir, exist_ok=True)
  log_path = os.path.join(log_dir, f'{name}.log')
  start = time.perf_counter()
  proc = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1)
  peak = [0]
  done = threading.Event()

  def sample():
    handle = psutil.Process(proc.pid)
    while not done.is_set():
      peak[0] = max(peak[0], _tree_rss(handle))
      done.wait(SAMPLE_SECONDS)

  sampler = threading.Thread(target=sample, daemon=True) if psutil is not None else None
  if sampler is not None:
    sampler.start()
  lines = []
  try:
    with open(log_path, 'w') as log:
      log.write('$ ' + ' '.join(command) + '\n')
      for line in proc.stdout:
        t = time.perf_counter() - start
        lines.append((t, line.rstrip('\n')))
        log.write(f'[{t:8.1f}s] {line}')
        if echo and not _ABSL_LINE.match(line):
          sys.stdout.write(f'  [{name} {t:6.0f}s] {line}')
          sys.stdout.flush()
  except BaseException:  # e.g. Ctrl-C: the stage's process does not outlive the rehearsal
    proc.kill()
    done.set()
    raise
  status = proc.wait()
  seconds = time.perf_counter() - start
  done.set()
  if sampler is not None:
    sampler.join()
    method = 'process tree (psutil)'
  else:
    peak[0] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    method = 'largest process (getrusage)'
  if status != 0:
    tail = '\n'.join(line for _, line in lines[-25:])
    raise StageError(f'stage {name!r} failed with exit status {status} after {seconds:.0f} s; '
                     f'log: {log_path}\n{tail}')
  return StageResult(name, list(command), seconds, peak[0], method, log_path, lines)


def folder_bytes(path: str) -> int:
  """Bytes of the files under `path` (0 when absent)."""
  total = 0
  for root, _, files in os.walk(path):
    for f in files:
      try:
        total += os.path.getsize(os.path.join(root, f))
      except OSError:
        pass
  return total
