"""Two processes on localhost train together with jax.distributed and end with identical parameters."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests import record_fixtures
from tests.config_fixtures import REPO_ROOT

DRIVER = os.path.join(REPO_ROOT, 'tests', 'distributed_train_driver.py')


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_two_processes_train_to_identical_parameters(tmp_path):
  data_dir = str(tmp_path / 'records')
  record_fixtures.write_tiny_dataset(data_dir)  # 2 shards per partition: one per process.
  coordinator = f'127.0.0.1:{_free_port()}'
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1', JAX_PLATFORMS='cpu')
  procs = [subprocess.Popen([sys.executable, DRIVER, coordinator, str(i), '2', data_dir,
                             str(tmp_path / 'run'), str(tmp_path / f'params_{i}.npz')],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True) for i in range(2)]
  outputs = []
  for p in procs:
    try:
      outputs.append(p.communicate(timeout=240)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail('distributed training did not finish in 240 s')
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  a, b = (np.load(tmp_path / f'params_{i}.npz') for i in range(2))
  assert a['devices'].tolist() == [2, 2]  # 2 global devices, 2 processes.
  assert sorted(a.files) == sorted(b.files) and len(a.files) > 2
  for k in a.files:
    np.testing.assert_array_equal(a[k], b[k])
  # Process 0 logged the run; one checkpoint at step 2 was written jointly.
  assert 'training done at step 2' in outputs[0]
  assert 'clip-level validation accuracy' in outputs[0]
  assert os.path.isdir(tmp_path / 'run' / 'checkpoints' / '2')
