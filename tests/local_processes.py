"""Several JAX processes on this machine, started by a test: a coordinator address, their
environment and waiting for all of them."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest


def coordinator_address() -> str:
  """127.0.0.1:<a free port> for jax.distributed."""
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return f'127.0.0.1:{s.getsockname()[1]}'


def one_device_env() -> dict[str, str]:
  """The test environment with one CPU device a process and without the session's compilation
  cache (tests/conftest.py): with one, JAX compiles each program in process 0 only and sends it to
  the others, which wait; here each process compiles its own."""
  env = {k: v for k, v in os.environ.items() if k != 'JAX_COMPILATION_CACHE_DIR'}
  env.update(XLA_FLAGS='--xla_force_host_platform_device_count=1', JAX_PLATFORMS='cpu')
  return env


def outputs_of_all(procs: list[subprocess.Popen], timeout: float, what: str) -> list[str]:
  """Each process's output once all exited 0; kills them all and fails when one takes longer than
  `timeout` seconds, fails naming the output of one that exited otherwise."""
  outputs = []
  for p in procs:
    try:
      outputs.append(p.communicate(timeout=timeout)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail(f'{what} did not finish in {timeout:g} s')
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  return outputs
