"""Tests of the steps: multi-task loss masking, 1-device vs 2-device equivalence, uint8 batches."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from twostream_jax.train import device_views
from twostream_jax.train import losses
from twostream_jax.train import optimizer as optimizer_lib
from twostream_jax.train import sharding
from twostream_jax.train import state as state_lib
from twostream_jax.train import steps as train_steps
from tests.config_fixtures import default_config


def test_multitask_loss_sees_only_its_own_examples():
  rng = np.random.default_rng(0)
  head0 = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
  head1 = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
  labels = jnp.array([0, 3, 1, 2, 0, 1])
  dataset = jnp.array([0, 0, 1, 1, 0, 1])
  multitask_loss = jax.jit(losses.multitask_loss)  # one compile, not one per operation
  loss, metrics = multitask_loss((head0, head1), labels, dataset)
  # Head 0's loss changes not at all when head 0's logits of data set 1's examples change.
  changed = head0.at[2].set(100.0).at[3].set(-50.0)
  loss2, metrics2 = multitask_loss((changed, head1), labels, dataset)
  np.testing.assert_allclose(float(metrics2['loss_0']), float(metrics['loss_0']), rtol=1e-6)
  np.testing.assert_allclose(float(loss2), float(loss), rtol=1e-6)
  # And equals the plain mean cross-entropy over its own examples (numpy, float64).
  def ce(logits, y, rows):
    logits, y = np.asarray(logits, np.float64)[rows], np.asarray(y)[rows]
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -float(np.mean(logp[np.arange(len(y)), y]))
  np.testing.assert_allclose(float(metrics['loss_0']), ce(head0, labels, [0, 1, 4]), rtol=1e-5)
  np.testing.assert_allclose(float(metrics['loss_1']), ce(head1, labels, [2, 3, 5]), rtol=1e-5)
  np.testing.assert_allclose(float(loss), float(metrics['loss_0'] + metrics['loss_1']), rtol=1e-6)


def _config():
  c = default_config()
  c.model.name = 'tiny'
  c.model.dropout_rate = 0.0
  c.optim.learning_rate = 0.1
  return c


def _batch(n=8, size=16, channels=4, seed=0):
  rng = np.random.default_rng(seed)
  return {'inputs': rng.normal(size=(n, size, size, channels)).astype(np.float32),
          'label': rng.integers(0, 3, n).astype(np.int32),
          'dataset_index': (np.arange(n) % 2).astype(np.int32)}


def _train_two_steps(devices, config, batch):
  mesh = Mesh(np.asarray(devices), (sharding.DATA_AXIS,))
  model = state_lib.build_model(config, (3, 3))
  state = state_lib.create_train_state(config, model, batch['inputs'].shape[1:], jax.random.key(0))
  state = sharding.replicate(state, mesh)
  step = jax.jit(functools.partial(train_steps.train_step,
                                   learning_rate_fn=optimizer_lib.learning_rate_schedule(config.optim)),
                 donate_argnums=(0,))
  for _ in range(2):
    state, metrics = step(state, sharding.global_batch(batch, mesh), jax.random.key(1))
  return jax.device_get(state.params), jax.device_get(state.batch_stats), metrics


def test_one_and_two_devices_give_the_same_update():
  assert jax.device_count() >= 2, 'conftest asks XLA for 2 CPU devices'
  config, batch = _config(), _batch()
  p1, s1, m1 = _train_two_steps(jax.devices()[:1], config, batch)
  p2, s2, m2 = _train_two_steps(jax.devices()[:2], config, batch)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), p1, p2)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s1, s2)
  np.testing.assert_allclose(float(m1['loss']), float(m2['loss']), rtol=1e-5)
  # The update did something.
  p0 = jax.device_get(state_lib.create_train_state(
      config, state_lib.build_model(config, (3, 3)), batch['inputs'].shape[1:], jax.random.key(0)).params)
  assert max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(p0), jax.tree.leaves(p1))) > 1e-4


def test_head_of_an_absent_data_set_gets_no_gradient():
  config = _config()
  config.optim.weight_decay = 0.0
  batch = _batch()
  batch['dataset_index'][:] = 0
  params, _, _ = _train_two_steps(jax.devices()[:1], config, batch)
  model = state_lib.build_model(config, (3, 3))
  init = jax.device_get(state_lib.create_train_state(config, model, batch['inputs'].shape[1:],
                                                           jax.random.key(0)).params)
  jax.tree.map(np.testing.assert_array_equal, params['head_1'], init['head_1'])
  assert float(np.abs(params['head_0']['kernel'] - init['head_0']['kernel']).max()) > 0


def _uint8_batch(n=8, size=16, channels=4, seed=0):
  """A flow batch as the pipeline yields it: uint8 crops, one box, flip and flow step per example."""
  rng = np.random.default_rng(seed)
  return {'images': rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8),  # flow planes
          'boxes': np.tile(np.array([[[0, 0, size, size]]], np.int32), (n, 1, 1)),
          'flips': (np.arange(n) % 3 == 0)[:, None], 'flow_step': np.full(n, 0.1, np.float32),
          'label': rng.integers(0, 3, n).astype(np.int32),
          'dataset_index': (np.arange(n) % 2).astype(np.int32)}


def test_steps_make_the_inputs_of_uint8_batches_on_two_devices():
  config = _config()
  config.data.modality, config.data.crop_size = 'flow', 16
  mesh = Mesh(np.asarray(jax.devices()[:2]), (sharding.DATA_AXIS,))
  model = state_lib.build_model(config, (3, 3))
  state = sharding.replicate(
      state_lib.create_train_state(config, model, (16, 16, 4), jax.random.key(0)), mesh)
  train_fn, eval_fn = train_steps.make_jitted_steps(config, mesh, state)
  batch = _uint8_batch()
  spec = device_views.ViewSpec.from_data_config(config.data)
  inputs = np.asarray(jax.jit(functools.partial(device_views.make_views, spec))(batch))
  floats = {'inputs': inputs, 'label': batch['label'], 'dataset_index': batch['dataset_index']}
  # Evaluation: V = 2 views per example (the crop and its mirror), ordered by example then view.
  two = dict(batch, boxes=np.repeat(batch['boxes'], 2, axis=1),
             flips=np.stack([np.zeros(8, bool), np.ones(8, bool)], axis=1))
  logits = np.asarray(eval_fn(state, sharding.global_batch(two, mesh)))
  assert logits.shape == (16, 3)
  mirrored = inputs[:, :, ::-1] * np.array([-1, 1, -1, 1], np.float32)  # x negated
  unflipped = np.where(batch['flips'][:, 0, None, None, None], mirrored, inputs)
  np.testing.assert_allclose(logits[0::2], np.asarray(eval_fn(state, sharding.global_batch(
      dict(floats, inputs=unflipped.astype(np.float32)), mesh))), rtol=1e-4, atol=1e-4)
  # Training: a uint8 batch gives the update of its float inputs.
  new_u8, m_u8 = train_fn(jax.tree.map(jnp.copy, state), sharding.global_batch(batch, mesh), jax.random.key(1))
  new_f, m_f = train_fn(state, sharding.global_batch(floats, mesh), jax.random.key(1))
  np.testing.assert_allclose(float(m_u8['loss']), float(m_f['loss']), rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               jax.device_get(new_u8.params), jax.device_get(new_f.params))
