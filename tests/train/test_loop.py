"""End-to-end tests of the training loop on tiny records: checkpoints, resume, NaN stop, CLI errors."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from twostream_jax.train import checkpointing
from twostream_jax.train import loop as train_loop
from twostream_jax.train import protocol_evaluation
from twostream_jax.train import restore
from twostream_jax.train import sharding
from tests import record_fixtures
from tests.config_fixtures import REPO_ROOT, spec_of, tiny_train_config


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  d = str(tmp_path_factory.mktemp('records'))
  record_fixtures.write_tiny_dataset(d)
  return d


def _params(state):
  return jax.tree.map(np.asarray, jax.device_get((state.params, state.batch_stats, state.opt_state)))


def test_interrupted_then_resumed_equals_uninterrupted(data_dir, tmp_path):
  config = tiny_train_config(data_dir)
  config.train.val_every_steps = 3
  whole = train_loop.train(config, spec_of(config), str(tmp_path / 'whole'))
  assert int(whole.step) == 6

  # Stop at step 3 (a checkpoint), then run the same config to 6 in the same workdir.
  config.train.num_train_steps = 3
  first = train_loop.train(config, spec_of(config), str(tmp_path / 'resumed'))
  assert int(first.step) == 3
  assert checkpointing.Checkpointer(str(tmp_path / 'resumed'), keep=5, every_steps=3).all_steps() == [3]
  config.train.num_train_steps = 6
  resumed = train_loop.train(config, spec_of(config), str(tmp_path / 'resumed'))
  assert int(resumed.step) == 6
  assert checkpointing.Checkpointer(str(tmp_path / 'resumed'), keep=5, every_steps=3).all_steps() == [3, 6]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
               _params(whole), _params(resumed))
  # And the run did learn something: the parameters moved from their initialisation.
  fresh, _ = restore.init_state(config, spec_of(config), sharding.create_mesh())
  moved = [float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(_params(fresh)[0]),
                                                       jax.tree.leaves(_params(whole)[0]))]
  assert max(moved) > 1e-3
  assert os.listdir(tmp_path / 'whole' / train_loop.TENSORBOARD_SUBDIR)


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(data_dir, tmp_path):
  config = tiny_train_config(data_dir)
  config.train.checkpoint_every_steps = 1
  config.train.num_train_steps = 8
  # Good steps 1..3 (checkpointed), then a rate of 5e28 from step 4 on.
  config.optim.decay_boundaries_steps = '3'
  config.optim.decay_factor = 1e30
  with pytest.raises(train_loop.NonFiniteLossError, match=r'at step \d+'):
    train_loop.train(config, spec_of(config), str(tmp_path))
  steps = checkpointing.Checkpointer(str(tmp_path), keep=5, every_steps=1).all_steps()
  assert 3 in steps
  # No checkpoint holds a non-finite state.
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=5, every_steps=1)
  state, _ = ckpt.restore(restore.init_state(config, spec_of(config), sharding.create_mesh())[0])
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(jax.device_get(state.params)))


def test_resume_with_another_global_batch_size_is_refused_naming_it(data_dir, tmp_path, capsys,
                                                                    caplog):
  config = tiny_train_config(data_dir)
  config.train.num_train_steps = 3
  config.train.log_every_steps = 3
  config.optim.decay_boundaries_steps = '2'  # Steps 1, 2 at 0.05, step 3 at 0.005.
  train_loop.train(config, spec_of(config), str(tmp_path))
  # The console logs the rate of the logged step, not the window's mean (0.035).
  assert 'learning_rate 0.005 |' in capsys.readouterr().out
  config.train.num_train_steps = 6
  config.train.global_batch_size = 8
  config.data.num_flow_fields = 3
  with pytest.raises(restore.ResumeConfigError) as error:
    train_loop.train(config, spec_of(config), str(tmp_path))
  message = str(error.value)
  assert 'train.global_batch_size: 4 -> 8' in message
  assert 'data.num_flow_fields: 2 -> 3' in message
  # How long to train is not a stream key: it is not among the refused ones.
  assert 'num_train_steps' not in message
  assert checkpointing.Checkpointer(str(tmp_path), keep=5, every_steps=3).all_steps() == [3]

  # Evaluating that checkpoint with another batch size is legitimate: a warning, not an error,
  # and the console says what it does.
  config.data.num_flow_fields = 2
  config.eval.score_train_split = False
  capsys.readouterr()
  with caplog.at_level('WARNING'):
    protocol_evaluation.evaluate_run(config, spec_of(config), str(tmp_path))
  out = capsys.readouterr().out
  assert 'evaluating ' in out and 'at step 3' in out and 'resumed from' not in out
  assert any('train.global_batch_size: 4 -> 8' in r.getMessage() for r in caplog.records)


def test_config_comparison_splits_stream_keys_from_resumable_ones(data_dir):
  old = tiny_train_config(data_dir)
  new = tiny_train_config(data_dir)
  new.train.num_train_steps = 100
  new.train.log_every_steps = 7
  new.eval.max_videos = 3
  new.data.val_split = 'test1'
  refused, allowed = restore.compare_configs(old.to_json(), new)
  # val_split 'heldout' -> 'test1' returns the held-out videos to the training stream.
  assert refused == ["data.val_split: 'heldout' -> 'test1'"]
  assert allowed == ['eval.max_videos: 0 -> 3', 'train.log_every_steps: 2 -> 7',
                     'train.num_train_steps: 6 -> 100']
  for key, value in (('seed', 1), ('model.name', 'small'), ('data.train_split', 'train2'),
                     ('data.modality', 'rgb'), ('data.data_dirs', data_dir + '2')):
    other = tiny_train_config(data_dir)
    section, _, name = key.rpartition('.')
    (other[section] if section else other)[name] = value
    refused, _ = restore.compare_configs(old.to_json(), other)
    assert [line.split(':')[0] for line in refused] == [key]


def test_checkpoints_with_the_retired_experiment_sections_still_resume(data_dir):
  # Checkpoints written before the demo and ablations kept their own keys hold demo.* and
  # ablations.* keys that today's training configs lack: they never changed the data or the model.
  new = tiny_train_config(data_dir)
  old = json.loads(new.to_json())
  old['demo'] = {'camera_pan': True, 'video_height': 96}
  old['ablations'] = {'rows': ''}
  old['data']['gone_key'] = 1  # any other key that disappeared still refuses
  refused, allowed = restore.compare_configs(json.dumps(old), new)
  assert refused == ["data.gone_key: 1 -> '<absent>'"]
  assert sorted(line.split(':')[0] for line in allowed) == [
      'ablations.rows', 'demo.camera_pan', 'demo.video_height']


def _main(*args, timeout=120):
  return subprocess.run([sys.executable, '-m', 'twostream_jax.main', *args], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=timeout)


def test_unknown_config_key_fails_with_a_clear_message():
  out = _main('--config', 'configs/temporal.py', '--config.optim.learning_rat=0.1')
  assert out.returncode != 0
  assert "unknown config key 'optim.learning_rat'" in out.stderr
  assert 'learning_rate' in out.stderr  # The keys it does have are listed.
  assert 'Traceback' not in out.stderr


def test_missing_data_set_fails_with_a_clear_message(tmp_path):
  out = _main('--config', 'configs/spatial.py', f'--workdir={tmp_path}',
              f'--config.data.data_dirs={tmp_path / "nowhere"}')
  assert out.returncode != 0
  assert 'does not exist' in out.stderr and 'make_tfrecords' in out.stderr
  assert '--config.data.data_dirs' in out.stderr  # The key's real name.
  assert 'Traceback' not in out.stderr


_CONV_HLO = '''
import sys
from twostream_jax import main
main.set_cpu_convolutions(sys.argv[1])
import jax, jax.numpy as jnp
conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), 'SAME',
                                                 dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
text = jax.jit(conv).lower(jnp.ones((2, 32, 32, 64)), jnp.ones((3, 3, 64, 64))).compile().as_text()
print('ynn' if '__ynn_fusion' in text else 'eigen')
'''


@pytest.mark.parametrize('choice', ['eigen', 'ynnpack'])
def test_cpu_convolutions_choose_the_compiled_kernels(choice):
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  out = subprocess.run([sys.executable, '-c', _CONV_HLO, choice], cwd=REPO_ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split()[-1] == ('eigen' if choice == 'eigen' else 'ynn')
