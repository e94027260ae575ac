"""Tests of twostream_jax.models.pretrained: orbax round trip (also in a fresh process) and merging."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from twostream_jax import models
from twostream_jax.models import pretrained
from twostream_jax.models import torchvision_conversion
from twostream_jax.train import state as state_lib
from tests.config_fixtures import default_config

REPO_ROOT = Path(__file__).resolve().parents[2]


def _tiny_variables(num_classes, channels=3, seed=0):
  """Tiny-net variables with random values (numpy, so nothing is compiled)."""
  model = models.build_model('tiny', num_classes)
  x = jax.ShapeDtypeStruct((1, 32, 32, channels), jnp.float32)
  shapes = jax.eval_shape(lambda inp: model.init(jax.random.key(0), inp, train=False), x)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(np.float32), shapes)


def test_save_then_load_in_a_fresh_process(tmp_path):
  variables = _tiny_variables(10)
  out = pretrained.save_pretrained(variables, str(tmp_path / 'tiny'), info={'arch': 'tiny'})
  assert Path(out) == (tmp_path / 'tiny').resolve()
  assert json.loads((tmp_path / 'tiny' / 'conversion.json').read_text()) == {'arch': 'tiny'}
  code = ('import sys, numpy as np, jax; from twostream_jax.models.pretrained import load_pretrained; '
          'v = load_pretrained(sys.argv[1]); '
          'flat = {"/".join(k.key for k in p): np.asarray(x) for p, x in '
          'jax.tree_util.tree_flatten_with_path(v)[0]}; np.savez(sys.argv[2], **flat)')
  env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), JAX_PLATFORMS='cpu')
  result = subprocess.run([sys.executable, '-c', code, out, str(tmp_path / 'restored.npz')],
                          env=env, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  restored = np.load(tmp_path / 'restored.npz')
  expected = {'/'.join(k.key for k in p): x
              for p, x in jax.tree_util.tree_flatten_with_path(variables)[0]}
  assert sorted(restored.files) == sorted(expected)
  for key, value in expected.items():
    np.testing.assert_array_equal(restored[key], value)


def test_load_accepts_inner_directory_and_empty_batch_stats(tmp_path):
  params = {'conv': {'kernel': np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)}}
  pretrained.save_pretrained({'params': params}, str(tmp_path / 'nobn'))
  for path in (tmp_path / 'nobn', tmp_path / 'nobn' / 'variables'):
    loaded = pretrained.load_pretrained(str(path))
    assert loaded['batch_stats'] == {}
    np.testing.assert_array_equal(loaded['params']['conv']['kernel'], params['conv']['kernel'])
  assert pretrained.load_info(str(tmp_path / 'nobn')) == {}


def test_refuses_to_overwrite_and_reports_missing(tmp_path):
  variables = {'params': {'w': np.ones(3, np.float32)}}
  pretrained.save_pretrained(variables, str(tmp_path / 'a'))
  with pytest.raises(FileExistsError, match='already exists'):
    pretrained.save_pretrained(variables, str(tmp_path / 'a'))
  variables2 = {'params': {'w': np.full(3, 2.0, np.float32)}}
  pretrained.save_pretrained(variables2, str(tmp_path / 'a'), overwrite=True)
  np.testing.assert_array_equal(pretrained.load_pretrained(str(tmp_path / 'a'))['params']['w'],
                                variables2['params']['w'])
  with pytest.raises(FileNotFoundError, match='convert_torchvision'):
    pretrained.load_pretrained(str(tmp_path / 'missing'))


def test_merge_keeps_resized_head_and_new_first_conv_fresh():
  old = _tiny_variables(10, channels=3, seed=1)
  fresh = _tiny_variables(5, channels=20, seed=2)
  merged, kept = pretrained.merge_pretrained(fresh, old)
  assert sorted(line.split(':')[0] for line in kept) == [
      'params/conv1/kernel', 'params/head/bias', 'params/head/kernel']
  assert any('(64, 5)' in line and '(64, 10)' in line for line in kept)
  np.testing.assert_array_equal(merged['params']['head']['kernel'],
                                fresh['params']['head']['kernel'])
  np.testing.assert_array_equal(merged['params']['conv1']['kernel'],
                                fresh['params']['conv1']['kernel'])
  for path in (('params', 'conv2', 'kernel'), ('params', 'bn1', 'scale'),
               ('batch_stats', 'bn2', 'var')):
    got, want = merged, old
    for key in path:
      got, want = got[key], want[key]
    np.testing.assert_array_equal(got, want)
  assert jax.tree.structure(merged) == jax.tree.structure(fresh)


def test_merge_reports_leaves_missing_from_pretrained_and_casts_dtype():
  fresh = {'params': {'a': jnp.zeros(2, jnp.bfloat16), 'b': jnp.zeros(3)}}
  merged, kept = pretrained.merge_pretrained(fresh, {'params': {'a': np.array([1.5, 2.0])}})
  assert merged['params']['a'].dtype == jnp.bfloat16
  np.testing.assert_array_equal(merged['params']['a'].astype(np.float32), [1.5, 2.0])
  assert kept == ['params/b: not in pretrained']


def test_merge_with_another_architecture_is_an_error():
  fresh = _tiny_variables(10)
  other = {'params': {'features_0': {'kernel': np.zeros((3, 3, 3, 64), np.float32)}},
           'batch_stats': {}}
  with pytest.raises(ValueError, match='another architecture'):
    pretrained.merge_pretrained(fresh, other)


def _temporal_config(init_from, partial=False):
  c = default_config()
  c.model.name = 'tiny'
  c.model.init_from = init_from
  c.model.init_from_partial = partial
  c.data.modality = 'flow'
  return c


def _create(config, channels, num_classes=10):
  model = state_lib.build_model(config, num_classes)
  return state_lib.create_train_state(config, model, (32, 32, channels), jax.random.key(3))


def test_temporal_net_given_rgb_weights_is_refused_naming_conv1(tmp_path):
  rgb = _tiny_variables(10, channels=3, seed=1)
  init_from = pretrained.save_pretrained(rgb, str(tmp_path / 'rgb'))
  with pytest.raises(pretrained.PretrainedMismatchError) as error:
    _create(_temporal_config(init_from), channels=20)
  message = str(error.value)
  # Every leaf that was not loaded, with both shapes, and the key that would allow it.
  assert 'params/conv1/kernel: shape (3, 3, 20, 32) but pretrained (3, 3, 3, 32)' in message
  assert message.count('params/') == 1
  assert 'init_from_partial=True' in message


def test_partial_load_allowed_by_the_key_warns_with_the_same_list(tmp_path, caplog):
  rgb = _tiny_variables(10, channels=3, seed=1)
  init_from = pretrained.save_pretrained(rgb, str(tmp_path / 'rgb'))
  with caplog.at_level('WARNING'):
    state = _create(_temporal_config(init_from, partial=True), channels=20, num_classes=5)
  warnings = [r for r in caplog.records if r.levelname == 'WARNING']
  assert len(warnings) == 1
  for leaf in ('params/conv1/kernel', 'params/head/kernel', 'params/head/bias'):
    assert leaf in warnings[0].getMessage()
  # What did match was loaded.
  np.testing.assert_array_equal(state.params['conv2']['kernel'], rgb['params']['conv2']['kernel'])


def test_normalization_mismatch_with_conversion_json_is_an_error_naming_both(tmp_path):
  info = {'preprocessing': {'rgb_range': [0.0, 1.0], 'rgb_mean': list(torchvision_conversion.IMAGENET_RGB_MEAN),
                            'rgb_std': list(torchvision_conversion.IMAGENET_RGB_STD)}}
  init_from = pretrained.save_pretrained(_tiny_variables(10), str(tmp_path / 'w'), info=info)
  config = _temporal_config(init_from)
  config.data.modality = 'rgb'
  config.data.normalization = 'unit'
  with pytest.raises(pretrained.PretrainedMismatchError, match=r"'imagenet'.*'unit'"):
    _create(config, channels=3)
  config.data.normalization = 'imagenet'
  state = _create(config, channels=3)  # The converter's values match 'imagenet': loads whole.
  np.testing.assert_array_equal(state.params['head']['kernel'],
                                _tiny_variables(10)['params']['head']['kernel'])
  odd = dict(info, preprocessing=dict(info['preprocessing'], rgb_mean=[0.5, 0.5, 0.5]))
  with pytest.raises(pretrained.PretrainedMismatchError, match='rgb_mean'):
    pretrained.check_normalization(odd, 'imagenet', 'w')
