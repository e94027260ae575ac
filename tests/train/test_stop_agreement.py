"""A SIGTERM to one of two jax.distributed processes stops both after the same step."""

import os
import socket
import subprocess
import sys

import pytest

from tests.config_fixtures import REPO_ROOT

DRIVER = os.path.join(REPO_ROOT, 'tests', 'train', 'stop_agreement_driver.py')


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_a_signal_to_one_process_stops_both_after_the_same_step():
  coordinator = f'127.0.0.1:{_free_port()}'
  env = {k: v for k, v in os.environ.items() if k != 'JAX_COMPILATION_CACHE_DIR'}
  env.update(XLA_FLAGS='--xla_force_host_platform_device_count=1', JAX_PLATFORMS='cpu')
  # Process 1 is signalled during step 5; process 0 never is.
  procs = [subprocess.Popen([sys.executable, DRIVER, coordinator, str(i), str(at)], cwd=REPO_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i, at in ((0, -1), (1, 5))]
  outputs = []
  for p in procs:
    try:
      outputs.append(p.communicate(timeout=240)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail('the two processes did not finish in 240 s')
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  # The flag all-reduced at step 5 is read at step 6: both stop after step 6.
  assert 'stop after step 6 (signal here: False)' in outputs[0], outputs[0][-3000:]
  assert 'stop after step 6 (signal here: True)' in outputs[1], outputs[1][-3000:]
