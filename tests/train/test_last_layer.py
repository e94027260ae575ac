"""Last layer only: a fixed backbone in inference mode, gradients of the heads only."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from twostream_jax.train import last_layer
from twostream_jax.train import losses
from twostream_jax.train import optimizer as optimizer_lib
from twostream_jax.train import sharding
from twostream_jax.train import state as state_lib
from twostream_jax.train import steps as train_steps
from tests.config_fixtures import default_config


def _setup(num_classes=(3, 4), last_layer_only=True):
  c = default_config()
  c.model.name = 'tiny'
  c.model.dropout_rate = 0.0
  c.optim.learning_rate = 0.1
  c.optim.train_last_layer_only = last_layer_only
  rng = np.random.default_rng(0)
  batch = {'inputs': rng.normal(2.0, 3.0, size=(8, 16, 16, 4)).astype(np.float32),
           'label': rng.integers(0, 3, 8).astype(np.int32),
           'dataset_index': (np.arange(8) % 2).astype(np.int32)}
  model = state_lib.build_model(c, num_classes)
  state = state_lib.create_train_state(c, model, (16, 16, 4), jax.random.key(0))
  # Non-trivial running statistics, so that train-mode BatchNorm would give other features.
  state = state.replace(batch_stats=jax.tree.map(lambda v: v + 0.3, state.batch_stats))
  return c, state, batch


def test_backbone_and_statistics_fixed_heads_follow_the_inference_mode_gradient():
  c, state, batch = _setup()
  lr_fn = optimizer_lib.learning_rate_schedule(c.optim)
  step = jax.jit(functools.partial(last_layer.train_step, learning_rate_fn=lr_fn, dropout_rate=0.0))
  new_state, metrics = step(state, batch, jax.random.key(1))

  # The reference: the plain multi-task loss of the model in inference mode, w.r.t. the heads.
  def reference_loss(params):
    logits = state.apply_fn({'params': params, 'batch_stats': state.batch_stats}, batch['inputs'],
                            train=False)
    return losses.multitask_loss(state_lib.as_heads(logits), batch['label'],
                                      batch['dataset_index'])[0]

  # Jitted: one compile instead of one per operation.
  loss, grads = jax.jit(jax.value_and_grad(reference_loss))(state.params)
  np.testing.assert_allclose(float(metrics['loss']), float(loss), rtol=1e-5)
  lr = float(lr_fn(0))
  for name in ('head_0', 'head_1'):
    for leaf in ('kernel', 'bias'):
      before, after = state.params[name][leaf], new_state.params[name][leaf]
      decay = c.optim.weight_decay * before if leaf == 'kernel' else 0.0
      # First SGD-momentum step: update = -lr * (grad + weight decay on kernels).
      np.testing.assert_allclose(after, before - lr * (grads[name][leaf] + decay), rtol=1e-4,
                                 atol=1e-6)
  for name in ('conv1', 'conv2', 'bn1', 'bn2'):
    jax.tree.map(np.testing.assert_array_equal, new_state.params[name], state.params[name])
  jax.tree.map(np.testing.assert_array_equal, new_state.batch_stats, state.batch_stats)


def _count_convolutions(step, state, batch):
  # The program as traced (before XLA's backend rewrites convolutions into library calls).
  return step.lower(state, batch, jax.random.key(1)).as_text().count('stablehlo.convolution')


def test_compiled_step_holds_no_backbone_backward_pass():
  c, state, batch = _setup(num_classes=5)
  lr_fn = optimizer_lib.learning_rate_schedule(c.optim)
  last = jax.jit(functools.partial(last_layer.train_step, learning_rate_fn=lr_fn, dropout_rate=0.5))
  c, state_all, _ = _setup(num_classes=5, last_layer_only=False)
  full = jax.jit(functools.partial(train_steps.train_step, learning_rate_fn=lr_fn))
  # Forward only: one convolution per conv layer (tiny has 2); fine-tuning every layer adds the
  # kernel gradients of both and the input gradient of the second, which on CPU is one
  # convolution per phase of its stride 2 (models/strided_conv.py): 2 + 2 + 4.
  assert _count_convolutions(last, state, batch) == 2
  assert _count_convolutions(full, state_all, batch) == 8


def test_make_jitted_steps_uses_it_on_two_devices():
  c, state, batch = _setup(num_classes=5)
  mesh = Mesh(np.asarray(jax.devices()[:2]), (sharding.DATA_AXIS,))
  state = sharding.replicate(state, mesh)
  train, _ = train_steps.make_jitted_steps(c, mesh, state)
  stats = jax.device_get(state.batch_stats)
  conv = np.asarray(jax.device_get(state.params['conv1']['kernel']))
  head = np.asarray(jax.device_get(state.params['head']['kernel']))
  batch = sharding.global_batch(dict(batch, label=batch['label'] % 5), mesh)
  for _ in range(3):
    state, metrics = train(state, batch, jax.random.key(1))
  assert np.isfinite(float(metrics['loss']))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.batch_stats), stats)
  np.testing.assert_array_equal(jax.device_get(state.params['conv1']['kernel']), conv)
  assert np.abs(np.asarray(jax.device_get(state.params['head']['kernel'])) - head).max() > 0
  assert optax.global_norm(state.params) > 0
