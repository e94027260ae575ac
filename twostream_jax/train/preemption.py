"""Stopping training cleanly on SIGTERM / SIGINT: finish the step, checkpoint it, exit for a retry.

`StopSignals` turns the first SIGTERM or SIGINT into a request (a flag read by the training loop)
and puts the default action back, so that a second signal ends the process at once. `StopAgreement`
makes every process stop after the same step: with one process it reads the flag; with several it
all-reduces each process's flag in a tiny jitted max, read one step later, when the loop already
waits for that step's loss (no extra device sync). Design: docs/training.md (Preemption).
No TensorFlow here.
"""

from __future__ import annotations

import functools
import signal
from typing import Callable

import jax
import numpy as np

from twostream_jax.train import sharding

# sysexits.h EX_TEMPFAIL: "a temporary failure; the user is invited to retry". The exit status of a
# run that stopped on a signal after checkpointing the step it was on (docs/training.md).
EXIT_PREEMPTED = 75
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
  """Training stopped on a signal after checkpointing `step`; the same command resumes there."""

  def __init__(self, step: int, signal_name: str):
    super().__init__(f'stopped by {signal_name} after step {step}, checkpointed; run the same '
                     f'command to resume at step {step}')
    self.step = step
    self.signal_name = signal_name


class StopSignals:
  """While open, the first SIGTERM/SIGINT sets `requested`; a second one kills the process.

  A context manager; the previous handlers come back on exit. In a thread other than the main one
  (where Python cannot install handlers) it does nothing.
  """

  def __init__(self, on_request: Callable[[str], None] = lambda name: None):
    self.requested = False
    self.signal_name = ''
    self._on_request = on_request
    self._previous: dict[int, object] = {}

  def _handle(self, signum, frame) -> None:  # pylint: disable=unused-argument
    self.requested = True
    self.signal_name = signal.Signals(signum).name
    # The kernel's default action from now on: a second signal ends the process even while the
    # main thread is inside a long C call, where a Python handler would wait.
    for s in SIGNALS:
      signal.signal(s, signal.SIG_DFL)
    self._on_request(self.signal_name)

  def __enter__(self) -> 'StopSignals':
    try:
      self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
    except ValueError:  # Not the main thread.
      self._previous = {}
    return self

  def __exit__(self, *exc) -> None:
    for s, handler in self._previous.items():
      # None: a handler installed outside Python (JAX's preemption notifier under
      # jax.distributed), which cannot be put back; the default action is the safe one.
      signal.signal(s, signal.SIG_DFL if handler is None else handler)


@functools.lru_cache(maxsize=4)
def _any_flag(mesh):
  return jax.jit(lambda flags: flags.max(), out_shardings=sharding.replicated(mesh))


class StopAgreement:
  """Whether to stop after the step just dispatched, the same answer on every process.

  Call `stop_after(step)` once per step on every process (a collective with several processes).
  """

  def __init__(self, signals: StopSignals, mesh):
    self._signals = signals
    self._mesh = mesh
    self._pending = None
    self._local_devices = len([d for d in mesh.devices.flat
                               if d.process_index == jax.process_index()])

  def stop_after(self, step: int) -> bool:  # pylint: disable=unused-argument
    if jax.process_count() == 1:
      return self._signals.requested
    # This step's flags go out; the previous step's all-reduced flag comes back (every process
    # then stops after the same step, one step after the first process saw its signal).
    local = np.full((self._local_devices,), int(self._signals.requested), np.int32)
    flags = jax.make_array_from_process_local_data(sharding.data_sharded(self._mesh), local)
    previous, self._pending = self._pending, _any_flag(self._mesh)(flags)
    return previous is not None and bool(jax.device_get(previous))
