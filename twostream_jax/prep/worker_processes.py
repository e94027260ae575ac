"""What every worker process of the dataset writer does first: die with the run, keep TF quiet.

`exit_with(pid)`, called first in each worker, ends it with the main process: a pool worker waits
on a queue whose write end it holds itself, so it would outlive a killed main process. On Linux
`prctl(PR_SET_PDEATHSIG, SIGKILL)`, and everywhere a daemon thread that waits for the main process
(a pidfd, else polling) and calls `os._exit`; the fork server runs the same watcher, and
`exit_at_once_on_exit` spares its regular exit the unloading of TensorFlow.
`quiet_tensorflow_logs` raises TensorFlow's C++ log threshold (its start-up banners depend on the
CPU) unless the user set it; it runs before TensorFlow is imported, first thing in the fork server
and in each worker. oneDNN itself stays on. docs/design_notes.md has the details.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import select
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_POLL_S = 1.0


def quiet_tensorflow_logs() -> None:
  """Hides TensorFlow's INFO banners in this process and its children (call before importing TF).

  A level the user set is kept.
  """
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def _exit_now() -> None:
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (AttributeError, OSError, ValueError):
      pass  # closed or absent: nothing to keep
  os._exit(0)  # pylint: disable=protected-access


def exit_at_once_on_exit() -> None:
  """Makes this process's regular exit end it at once, skipping the unloading of its modules.

  For a process that holds no state worth tearing down (the fork server): its exit handlers
  registered before this call, TensorFlow's among them, and the unloading do not run. Processes
  forked from it end with `os._exit` (multiprocessing's own way), so they are not affected.
  """
  atexit.register(_exit_now)


def _set_parent_death_signal() -> bool:
  """Linux only: SIGKILL this process when its parent dies. Returns whether it was set."""
  if not sys.platform.startswith('linux'):
    return False
  try:
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
    return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
  except (OSError, AttributeError):
    return False


def _wait_for_exit(pid: int) -> None:
  """Blocks until process `pid` has ended."""
  if hasattr(os, 'pidfd_open'):
    try:
      fd = os.pidfd_open(pid)
    except ProcessLookupError:
      return
    except OSError:
      pass  # an old kernel without pidfds: poll below
    else:
      select.select([fd], [], [])  # readable once the process has exited
      return
  while True:
    try:
      os.kill(pid, 0)
    except ProcessLookupError:
      return
    except PermissionError:
      pass  # exists, owned by another user (cannot be the main process, but keep waiting)
    time.sleep(_POLL_S)


def _watch(pid: int) -> None:
  _wait_for_exit(pid)
  os._exit(1)  # pylint: disable=protected-access


def exit_with(main_pid: int, parent_death_signal: bool = True) -> None:
  """Ends this (worker) process when process `main_pid` ends; see the module docstring.

  Args:
    main_pid: the process whose end ends this one.
    parent_death_signal: also arm PR_SET_PDEATHSIG (Linux), which fires when the *thread* that
      forked this process ends: right for pool workers (forked by a fork server's main thread or
      by the thread that submits work), not for the fork server itself, which the thread that first
      used a pool starts (that thread may end long before the main process).
  """
  # A main process that died before this point is caught by the watcher (its pid is gone).
  if parent_death_signal:
    _set_parent_death_signal()
  threading.Thread(target=_watch, args=(main_pid,), name='exit-with-main', daemon=True).start()
