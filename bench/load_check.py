"""Is the machine idle enough for a benchmark's figures to mean anything? Every bench asks this.

A figure timed while other jobs share the cores is not a result: on this project's 2-core machine
a load average of 9 made JAX look 2.7x faster than PyTorch where an idle machine says 0.6x. So each
bench (bench_models, bench_tvl1, bench_fusion, bench_make_tfrecords):

  * can wait for an idle machine first (`--wait_idle=SECONDS`: until the 1-minute load average is
    below `IDLE_LOAD`);
  * prints the 1-minute load average next to its figures (`LoadMonitor.now()`);
  * ends with `LoadMonitor.verdict()`: the load average when it started (before its own work) and
    how many cores *other* processes kept busy while it ran (all busy CPU time from /proc/stat
    minus this process's and its reaped children's), and, when either is above `IDLE_LOAD`, a loud
    banner saying that the absolute figures are unreliable and only ratios timed within the run
    (interleaved, under the same load) are worth reading.

The load average counts the bench's own threads too, which is why the verdict uses the load at
the start and the other processes' CPU time, not the load at the end. Linux only (/proc); elsewhere
it says it cannot tell.
"""

from __future__ import annotations

import argparse
import os
import time

IDLE_LOAD = 0.5  # 1-minute load average (or cores busy with other work) below which a run counts as idle


def load_average() -> float | None:
  """The 1-minute load average, or None where the OS does not report one."""
  try:
    return os.getloadavg()[0]
  except (AttributeError, OSError):
    return None


def _busy_cpu_seconds() -> float | None:
  """Busy CPU seconds of the whole machine since boot (all cores), from /proc/stat."""
  try:
    with open('/proc/stat') as f:
      fields = [int(x) for x in f.readline().split()[1:]]
  except (OSError, ValueError):
    return None
  idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
  return (sum(fields[:8]) - idle) / os.sysconf('SC_CLK_TCK')


def _own_cpu_seconds() -> float:
  t = os.times()
  return t.user + t.system + t.children_user + t.children_system


def add_arguments(parser: argparse.ArgumentParser) -> None:
  """Adds --wait_idle to a bench's command line."""
  parser.add_argument('--wait_idle', type=float, default=0.0,
                      help=f'wait up to this many seconds for the 1-minute load average to fall '
                      f'below {IDLE_LOAD} before timing (0: start at once)')


def wait_until_idle(max_seconds: float, poll_s: float = 10.0) -> None:
  """Waits (printing progress) until the load average is below IDLE_LOAD, at most max_seconds."""
  if max_seconds <= 0 or load_average() is None:
    return
  deadline = time.monotonic() + max_seconds
  while load_average() >= IDLE_LOAD and time.monotonic() < deadline:
    print(f'waiting for an idle machine: load average {load_average():.2f} >= {IDLE_LOAD}',
          flush=True)
    time.sleep(poll_s)


class LoadMonitor:
  """Records the load when a bench starts and judges it when the bench ends (module docstring)."""

  def __init__(self, wait_idle_s: float = 0.0):
    wait_until_idle(wait_idle_s)
    self.start_load = load_average()
    self._start_busy = _busy_cpu_seconds()
    self._start_own = _own_cpu_seconds()
    self._start_wall = time.monotonic()

  @staticmethod
  def now() -> str:
    """'load 9.62': the 1-minute load average now, to print beside a figure."""
    load = load_average()
    return 'load ?' if load is None else f'load {load:.2f}'

  def other_cores_busy(self) -> float | None:
    """Cores kept busy by other processes since the start, on average (None: cannot tell)."""
    busy = _busy_cpu_seconds()
    if busy is None or self._start_busy is None:
      return None
    wall = max(time.monotonic() - self._start_wall, 1e-6)
    own = _own_cpu_seconds() - self._start_own
    return max(busy - self._start_busy - own, 0.0) / wall

  def reliable(self) -> bool:
    others = self.other_cores_busy()
    return (self.start_load is not None and self.start_load < IDLE_LOAD
            and others is not None and others < IDLE_LOAD)

  def verdict(self) -> str:
    """The closing lines: the load figures, and a loud banner when they make the figures unreliable."""
    others = self.other_cores_busy()
    start = '?' if self.start_load is None else f'{self.start_load:.2f}'
    busy = '?' if others is None else f'{others:.2f}'
    line = (f'load average (1 min) at start: {start}; other processes kept {busy} of '
            f'{os.cpu_count()} cores busy during the run')
    if self.reliable():
      return line + ' -> idle machine: figures are usable.'
    bar = '!' * 78
    return (f'{line}\n{bar}\n!!! UNRELIABLE: the machine was not idle (threshold {IDLE_LOAD}). '
            'Absolute figures\n!!! above are NOT results; only ratios timed within this run '
            '(same load) mean\n!!! anything. Rerun on an idle machine (--wait_idle=600).\n'
            f'{bar}')
