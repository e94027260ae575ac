"""Tests of orbax checkpointing: round trip, keep-K, and a restore in a fresh process with plain orbax."""

import json
import subprocess
import sys
import textwrap

import jax
import numpy as np

from twostream_jax.train import checkpointing
from twostream_jax.train import sharding
from twostream_jax.train import state as state_lib
from tests.config_fixtures import default_config


def _state(seed):
  c = default_config()
  c.model.name = 'tiny'
  model = state_lib.build_model(c, 5)
  return state_lib.create_train_state(c, model, (8, 8, 3), jax.random.key(seed))


def test_round_trip_keep_k_and_fresh_process_restore(tmp_path):
  mesh = sharding.create_mesh()
  ckpt = checkpointing.Checkpointer(str(tmp_path), keep=2, every_steps=1)
  state = sharding.replicate(_state(0), mesh)
  for step in (1, 2, 3):
    state = state.replace(step=step, params=jax.tree.map(lambda x: x + 1.0, state.params))
    ckpt.save(state, {'seed': 0, 'step': step})
  ckpt.wait()
  assert ckpt.all_steps() == [2, 3]
  target = sharding.replicate(_state(1), mesh)
  restored, meta = ckpt.restore(target)
  assert meta == {'seed': 0, 'step': 3} and int(restored.step) == 3
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored.params), jax.device_get(state.params))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored.opt_state), jax.device_get(state.opt_state))
  assert restored.params['conv1']['kernel'].sharding.is_fully_replicated
  ckpt.close()

  # A fresh process with nothing but orbax (the README's recipe) reads the same parameters.
  np.save(tmp_path / 'expected.npy', np.asarray(jax.device_get(state.params['conv1']['kernel'])))
  code = textwrap.dedent(f"""
      import numpy as np, orbax.checkpoint as ocp
      tree = ocp.StandardCheckpointer().restore({str(tmp_path / 'checkpoints' / '3' / 'state')!r})
      np.testing.assert_array_equal(np.asarray(tree['params']['conv1']['kernel']),
                                    np.load({str(tmp_path / 'expected.npy')!r}))
      print('step', int(tree['step']))
  """)
  out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert 'step 3' in out.stdout
