"""Two processes on localhost train and evaluate together with jax.distributed, and get what one
process gets from the same global batches: parameters to float32 rounding, the same scores.

Replicated parameters agree across the two processes by construction, so comparing them with each
other proves little; the reference here is one process (two local devices) fed the same global
batches, i.e. the two processes' streams side by side, as their global arrays lay them out.
"""

import os
import shutil
import subprocess
import sys

import jax
import numpy as np

from twostream_jax.evaluation import evaluate
from twostream_jax.evaluation import score_files
from twostream_jax.train import protocol_evaluation
from twostream_jax.train import restore
from twostream_jax.train import sharding
from twostream_jax.train import steps as train_steps
from tests import distributed_train_driver as driver
from tests import local_processes
from tests import record_fixtures
from tests.config_fixtures import REPO_ROOT, spec_of
from tests.data import pipelines

DRIVER = os.path.join(REPO_ROOT, 'tests', 'distributed_train_driver.py')


def _one_process_training(config, streams: int) -> dict[str, np.ndarray]:
  """Trains in this process (2 devices) on global batches made of `streams` process streams.

  streams=2: process 0's and process 1's local batches side by side, as the distributed run's
  global batch holds them (mesh devices in process order); streams=1: this process's own stream.
  """
  mesh = sharding.create_mesh()
  assert mesh.devices.size == 2  # tests/conftest.py
  state, _ = restore.init_state(config, spec_of(config), mesh)
  train_fn, _ = train_steps.make_jitted_steps(config, mesh, state)
  iterators = [pipelines.create_train_dataset(
      config.data, global_batch_size=config.train.global_batch_size, seed=config.seed,
      process_index=i, process_count=streams).as_numpy_iterator() for i in range(streams)]
  dropout_rng = jax.random.fold_in(jax.random.key(config.seed), 1)  # As train.loop makes it.
  for _ in range(config.train.num_train_steps):
    parts = [next(it) for it in iterators]
    batch = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    state, _ = train_fn(state, sharding.global_batch(batch, mesh), dropout_rng)
  return driver.flat_variables(state)


def test_two_processes_train_and_evaluate_like_one(tmp_path):
  data_dir = str(tmp_path / 'records')
  record_fixtures.write_tiny_dataset(data_dir)  # 2 shards per partition: one per process.
  coordinator = local_processes.coordinator_address()
  env = local_processes.one_device_env()
  procs = [subprocess.Popen([sys.executable, DRIVER, coordinator, str(i), '2', data_dir,
                             str(tmp_path / 'run'), str(tmp_path / f'params_{i}.npz')],
                            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True) for i in range(2)]
  outputs = local_processes.outputs_of_all(procs, 420, 'distributed training')
  a, b = (np.load(tmp_path / f'params_{i}.npz') for i in range(2))
  assert a['devices'].tolist() == [2, 2]  # 2 global devices, 2 processes.
  assert 'training done at step 3' in outputs[0]
  assert 'clip-level validation accuracy' in outputs[0]
  distributed = {k: a[k] for k in a.files if k != 'devices'}
  for k in distributed:
    np.testing.assert_array_equal(distributed[k], b[k])

  # One process fed the same global batches reaches the same variables (float32 rounding).
  config = driver.run_config(data_dir)
  reference = _one_process_training(config, streams=2)
  assert sorted(reference) == sorted(distributed)
  for k in reference:
    np.testing.assert_allclose(distributed[k], reference[k], rtol=1e-5, atol=1e-6, err_msg=k)
  # ... which the comparison can tell apart from other batches: this process's own stream.
  other = _one_process_training(config, streams=1)
  assert max(float(np.abs(other[k] - reference[k]).max()) for k in reference) > 1e-3

  # The protocol's scores over two processes equal one process's scores of the same checkpoint.
  shutil.copytree(tmp_path / 'run' / 'checkpoints', tmp_path / 'one' / 'checkpoints')
  protocol_evaluation.evaluate_run(config, spec_of(config), str(tmp_path / 'one'))
  split = config.data.eval_split
  two = score_files.load_scores(os.path.join(evaluate.split_dir(str(tmp_path / 'run'), split),
                                             'scores.npz'))
  one = score_files.load_scores(os.path.join(evaluate.split_dir(str(tmp_path / 'one'), split),
                                             'scores.npz'))
  assert two.video_ids == one.video_ids and len(one.video_ids) == 6
  np.testing.assert_array_equal(two.labels, one.labels)
  assert two.num_views == one.num_views == config.data.test_num_frames * config.data.test_num_crops
  np.testing.assert_allclose(two.probs, one.probs, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(two.logits, one.logits, rtol=1e-5, atol=1e-5)
