"""SIGTERM during training: the step it stopped at is checkpointed, the exit status asks for a retry,
and the same command resumes exactly there, on the same device count or on another one.

One run of `python -m twostream_jax.main` is stopped by SIGTERM after a step drawn from a seeded
RNG (interval checkpoints are out of reach, so the only checkpoint is the one the signal made);
copies of its workdir are resumed on 2 devices and on 1, and compared with an uninterrupted run.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from twostream_jax.train import checkpointing
from twostream_jax.train import loop as train_loop
from twostream_jax.train import preemption
from twostream_jax.train import restore
from twostream_jax.train import sharding
from tests import record_fixtures
from tests.config_fixtures import REPO_ROOT, spec_of, tiny_train_config
from tests.main_commands import main_command, run_signalled

NUM_STEPS = 24


def _config(data_dir):
  config = tiny_train_config(data_dir)
  config.train.num_train_steps = NUM_STEPS
  config.train.log_every_steps = 1  # A console line per step: the test signals after one of them.
  config.train.checkpoint_every_steps = 1000  # No interval checkpoint: only the signal's.
  # The test process's convolutions (tests/conftest.py leaves XLA_FLAGS to the jaxlib default),
  # so that the in-process reference runs the same programs.
  config.train.cpu_convolutions = 'ynnpack'
  return config


def _variables(workdir, config, step):
  """The checkpoint at `step`, restored in this process: params, batch_stats, opt_state as numpy."""
  ckpt = checkpointing.Checkpointer(workdir, keep=5, every_steps=0)
  target, _ = restore.init_state(config, spec_of(config), sharding.create_mesh())
  state, _ = ckpt.restore(target, step)
  return jax.tree.map(np.asarray, jax.device_get((state.params, state.batch_stats,
                                                  state.opt_state)))


def _run(config, workdir, devices=2):
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
  return subprocess.run(main_command(config, workdir), cwd=REPO_ROOT, env=env, capture_output=True,
                        text=True, timeout=300)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp('records'))
  record_fixtures.write_tiny_dataset(d)
  return d


@pytest.fixture(scope='module')
def preempted(data_dir, tmp_path_factory):
  """(workdir, signalled after step, stopped after step, output) of a run stopped by SIGTERM."""
  config = _config(data_dir)
  workdir = str(tmp_path_factory.mktemp('preempted'))
  signal_after = int(np.random.default_rng(26).integers(2, 9))
  returncode, output = run_signalled(
      main_command(config, workdir),
      lambda line: line.startswith(f'step {signal_after}/{NUM_STEPS} '), signal.SIGTERM)
  assert returncode == preemption.EXIT_PREEMPTED, output[-3000:]
  stopped = re.search(r'stopped by SIGTERM after step (\d+): checkpoint \1 saved', output)
  assert stopped, output[-3000:]
  return workdir, signal_after, int(stopped.group(1)), output


@pytest.fixture(scope='module')
def uninterrupted(data_dir, tmp_path_factory):
  config = _config(data_dir)
  workdir = str(tmp_path_factory.mktemp('uninterrupted'))
  train_loop.train(config, spec_of(config), workdir)
  return _variables(workdir, config, NUM_STEPS)


def test_sigterm_checkpoints_the_step_it_stopped_at_and_the_rerun_resumes_exactly(
    data_dir, preempted, uninterrupted, tmp_path):
  workdir, signal_after, stopped, output = preempted
  # The step the signal found running, not an interval (there is none before NUM_STEPS).
  assert signal_after <= stopped < NUM_STEPS, output[-3000:]
  assert 'SIGTERM received' in output
  assert checkpointing.Checkpointer(workdir, keep=5, every_steps=0).all_steps() == [stopped]

  resumed = str(tmp_path / 'resumed')
  shutil.copytree(workdir, resumed)
  config = _config(data_dir)
  out = _run(config, resumed)
  assert out.returncode == 0, out.stderr[-3000:]
  assert f'at step {stopped}' in out.stdout and f'steps {stopped} -> {NUM_STEPS}' in out.stdout
  jax.tree.map(np.testing.assert_array_equal, _variables(resumed, config, NUM_STEPS),
               uninterrupted)


def test_a_run_checkpointed_on_two_devices_resumes_on_one(data_dir, preempted, uninterrupted,
                                                          tmp_path):
  workdir, _, stopped, _ = preempted
  resumed = str(tmp_path / 'one_device')
  shutil.copytree(workdir, resumed)
  config = _config(data_dir)
  out = _run(config, resumed, devices=1)
  assert out.returncode == 0, out.stderr[-3000:]
  assert f'on 1 device(s), 1 process(es), steps {stopped} -> {NUM_STEPS}' in out.stdout
  final = _variables(resumed, config, NUM_STEPS)
  # The same batches: equal to the 2-device run up to the order of float32 reductions (the
  # differences reach about 1e-6 after 24 steps) ...
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), final,
               uninterrupted)
  # ... a tolerance far below what the resumed steps changed.
  moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), final,
                       _variables(workdir, config, stopped))
  assert max(jax.tree.leaves(moved)) > 1e-3


def test_another_process_count_is_refused_naming_it(data_dir):
  config = _config(data_dir)
  meta = {'seed': config.seed, 'config': config.to_json(), 'process_count': 2}
  with pytest.raises(restore.ResumeConfigError, match=r'processes \(hosts.*\): 2 -> 1'):
    restore.check_resume(meta, config, 'ckpts', purpose='train')
  restore.check_resume(meta, config, 'ckpts', purpose='eval')  # Scoring does not depend on it.
  restore.check_resume(dict(meta, process_count=1), config, 'ckpts', purpose='train')


_SECOND_SIGNAL = textwrap.dedent('''
    import os, signal, time
    from twostream_jax.train import preemption
    with preemption.StopSignals() as signals:
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(0.2)  # The handler runs; the default action is back.
      print('requested', signals.requested, flush=True)
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(5)
      print('still running', flush=True)
''')


def test_a_second_signal_ends_the_process_at_once():
  out = subprocess.run([sys.executable, '-c', _SECOND_SIGNAL], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=120)
  assert 'requested True' in out.stdout, out.stderr[-2000:]
  assert 'still running' not in out.stdout
  assert out.returncode == -signal.SIGINT
