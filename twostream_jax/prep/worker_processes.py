"""What every worker process of the dataset writer does first: die with the run, keep TF quiet.

Dying with the run: a `ProcessPoolExecutor` worker waits on a queue whose write end it holds
itself, so it never sees the end of its input when the main process is killed (`kill -9`, the OOM
killer): it would idle forever, holding its memory (TensorFlow alone is a few hundred MB per
worker). `exit_with(pid)`, called first in each worker, ties the worker to the main process twice:
  * Linux: `prctl(PR_SET_PDEATHSIG, SIGKILL)` kills the worker as soon as its parent dies. The
    parent of a fork-server worker is the fork server, which exits by itself when the main process
    dies;
  * everywhere: a daemon thread waits for the main process itself to end (on a pidfd where the OS
    has them, else polling once a second) and then ends the worker with `os._exit`; this also covers
    a worker whose parent is not the main process.
The fork server runs the same watcher (`forkserver_preload`): Python's fork server does exit when
the main process dies, but only after unloading TensorFlow, which took 5-6 s on a loaded machine;
`os._exit` takes none.

Keeping TF quiet: TensorFlow logs start-up banners (CPU features, oneDNN custom operations) at INFO
in every process that imports it; `quiet_tensorflow_logs` raises the C++ log threshold to warnings
unless the user set it, and must run before TensorFlow is imported (the fork server imports it for
all workers, see `forkserver_preload`). oneDNN itself stays on (`TF_ENABLE_ONEDNN_OPTS` is left
alone): only its banner goes.
"""

from __future__ import annotations

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
  """Hides TensorFlow's INFO banners in this process and its children (call before importing TF)."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


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
