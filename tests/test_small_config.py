"""configs/small.py (the README's "your own data, small" recipe) trains what the demo trains."""

import os

from twostream_jax import config_loading
from twostream_jax.experiments import synthetic_streams
from tests.config_fixtures import REPO_ROOT

# Keys where the recipe differs from the demo's stream on purpose.
_DIFFERENT = {'data.data_dirs', 'data.val_split', 'train.val_every_steps', 'eval.stream_name'}


def _flat(config, prefix=''):
  out = {}
  for key, value in config.items():
    if hasattr(value, 'items'):
      out.update(_flat(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = value
  return out


def _load(name):
  return config_loading.load_config_file(os.path.join(REPO_ROOT, 'configs', name))


def _same_keys_and_values(got, expected):
  got, expected = _flat(got), _flat(expected)
  assert set(got) == set(expected)  # Neither has a key the other lacks (no demo.* keys).
  assert {k: v for k, v in got.items() if k not in _DIFFERENT} == {
      k: v for k, v in expected.items() if k not in _DIFFERENT}


def test_small_config_equals_the_demo_temporal_stream():
  small = _load('small.py')
  streams = synthetic_streams.stream_configs(_load('demo.py'), 'records')
  _same_keys_and_values(small, streams['temporal'])
  assert small.mode == 'train_eval' and small.data.val_split == 'heldout'

  # The README's spatial overrides give the demo's spatial stream.
  small.data.modality = 'rgb'
  small.train.num_train_steps = 800
  small.optim.decay_boundaries_steps = '600'
  _same_keys_and_values(small, streams['spatial'])
