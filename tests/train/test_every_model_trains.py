"""Every model of the registry trains two steps and evaluates through the jitted steps main uses.

Models with and without batch statistics (CNN-M-2048 and VGG-16 have none) take different paths
through `TrainState.apply_model`; both must train on RGB (3 channels) and flow (2L channels) inputs.
Every model and input kind is traced through the steps (shapes, no compilation); CNN-M-2048 and a
small net with batch norm also train for real.
"""

import functools

import jax
import numpy as np
import pytest

from twostream_jax import models
from twostream_jax.train import optimizer as optimizer_lib
from twostream_jax.train import sharding
from twostream_jax.train import state as state_lib
from twostream_jax.train import steps as train_steps
from tests.config_fixtures import default_config

# Small inputs each architecture takes: CNN-M's valid convolutions need about 64 px; ResNets see
# 2x2 at their last stage (at 1x1, two examples' batch statistics leave the running variance at 0).
_INPUT_SIZE = {'tiny': 16, 'small': 32, 'cnn_m_2048': 64, 'cnn_m_2048_temporal': 64, 'vgg16': 32,
               'vgg16_bn': 32}
_NUM_CLASSES = 3
_BATCH = 2
_FLOW_FIELDS = 10
_WITHOUT_BATCH_NORM = ('cnn_m_2048', 'cnn_m_2048_temporal', 'vgg16')


# Trained for real, jitted: CNN-M-2048 (the paper's net, no batch norm) on both input kinds and its
# temporal variant, and one small net with batch norm. VGG-16 takes CNN-M's path (no batch
# statistics) and is traced above; resnet18 RGB and CNN-M-2048-temporal flow train at 224 in
# tests/configs/, and the small nets in most end-to-end tests. The others' compilations would take
# minutes of the suite.
_TRAINED = [('cnn_m_2048', 'rgb'), ('cnn_m_2048', 'flow'), ('cnn_m_2048_temporal', 'rgb'),
            ('tiny', 'flow')]


def test_the_registry_is_what_this_file_trains():
  expected = {'tiny', 'small', 'cnn_m_2048', 'cnn_m_2048_temporal', 'vgg16', 'vgg16_bn',
              'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152'}
  assert set(models.MODEL_NAMES) == expected


def _config(name, modality):
  config = default_config()
  config.model.name = name
  config.model.dropout_rate = 0.5
  config.data.modality = modality
  config.data.num_flow_fields = _FLOW_FIELDS
  config.optim.learning_rate = 0.01
  return config


def _input_shape(name, modality):
  size = _INPUT_SIZE.get(name, 64)
  return (size, size, 3 if modality == 'rgb' else 2 * _FLOW_FIELDS)


def _batch(shape):
  rng = np.random.default_rng(0)
  return {'inputs': rng.normal(size=(_BATCH, *shape)).astype(np.float32),
          'label': np.arange(_BATCH, dtype=np.int32) % _NUM_CLASSES,
          'dataset_index': np.zeros(_BATCH, np.int32),
          'mask': np.ones(_BATCH, np.float32)}


@pytest.mark.parametrize('modality', ['rgb', 'flow'])
@pytest.mark.parametrize('name', models.MODEL_NAMES)
def test_every_model_traces_through_the_train_and_eval_steps(name, modality):
  # Shapes only (no compilation): every model and input kind goes through the very functions that
  # main jits, with and without batch statistics.
  config, shape = _config(name, modality), _input_shape(name, modality)
  model = state_lib.build_model(config, _NUM_CLASSES)
  state = jax.eval_shape(lambda r: state_lib.create_train_state(config, model, shape, r),
                         jax.random.key(0))
  batch = _batch(shape)
  lr_fn = optimizer_lib.learning_rate_schedule(config.optim)
  new_state, metrics = jax.eval_shape(
      functools.partial(train_steps.train_step, learning_rate_fn=lr_fn), state, batch,
      jax.random.key(1))
  assert metrics['loss'].shape == () and metrics['loss'].dtype == np.float32
  assert jax.tree.structure(new_state.params) == jax.tree.structure(state.params)
  assert jax.tree.structure(new_state.batch_stats) == jax.tree.structure(state.batch_stats)
  assert bool(state.batch_stats) == (name not in _WITHOUT_BATCH_NORM)
  logits = jax.eval_shape(train_steps.eval_batch_logits, new_state, batch)
  assert logits.shape == (_BATCH, _NUM_CLASSES)


@pytest.mark.parametrize('name,modality', _TRAINED)
def test_two_train_steps_and_an_eval_step(name, modality):
  config, shape = _config(name, modality), _input_shape(name, modality)
  mesh = sharding.create_mesh()
  model = state_lib.build_model(config, _NUM_CLASSES)
  state = state_lib.create_train_state(config, model, shape, jax.random.key(0))
  state = sharding.replicate(state, mesh)
  before = jax.device_get(state.params)
  has_batch_stats = bool(state.batch_stats)
  train_fn, eval_fn = train_steps.make_jitted_steps(config, mesh, state)
  batch = _batch(shape)
  for _ in range(2):
    state, metrics = train_fn(state, sharding.global_batch(batch, mesh), jax.random.key(1))
    assert np.isfinite(float(metrics['loss'])), metrics
    assert np.isfinite(float(metrics['param_norm']))
  after = jax.device_get(state.params)
  changed = [float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(before),
                                                         jax.tree.leaves(after))]
  assert max(changed) > 0.0
  # The classifier learns whatever the backbone does.
  assert float(np.abs(after['head']['kernel'] - before['head']['kernel']).max()) > 0.0
  assert bool(state.batch_stats) == has_batch_stats

  logits = eval_fn(state, sharding.global_batch(batch, mesh))
  assert logits.shape == (_BATCH, _NUM_CLASSES)
  assert np.all(np.isfinite(np.asarray(logits)))
