"""Tests of the learning-rate schedules and the optimizer (weight decay mask, last layer only)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from twostream_jax.train import optimizer as optimizer_lib
from tests.config_fixtures import default_config


def test_paper_schedule_from_scratch():
  c = default_config()
  c.optim.learning_rate = 1e-2
  c.optim.decay_boundaries_steps = '50000,70000'
  lr = optimizer_lib.learning_rate_schedule(c.optim)
  for step, want in [(0, 1e-2), (49999, 1e-2), (50000, 1e-3), (69999, 1e-3), (70000, 1e-4), (80000, 1e-4)]:
    np.testing.assert_allclose(float(lr(step)), want, rtol=1e-6)


def test_warmup_is_linear_then_schedule():
  c = default_config()
  c.optim.learning_rate = 0.1
  c.optim.decay_boundaries_steps = '10'
  c.optim.warmup_steps = 4
  lr = optimizer_lib.learning_rate_schedule(c.optim)
  got = [float(lr(s)) for s in range(12)]
  np.testing.assert_allclose(got[:4], [0.025, 0.05, 0.075, 0.1], rtol=1e-6)
  np.testing.assert_allclose(got[4:10], [0.1] * 6, rtol=1e-6)
  np.testing.assert_allclose(got[10:], [0.01] * 2, rtol=1e-5)


def _params():
  return {'conv': {'kernel': jnp.ones((3, 3, 2, 4)), 'bias': jnp.ones((4,))},
          'head': {'kernel': jnp.ones((4, 5)), 'bias': jnp.ones((5,))}}


def test_weight_decay_only_on_kernels():
  c = default_config()
  c.optim.learning_rate = 1.0
  c.optim.momentum = 0.0
  c.optim.weight_decay = 0.5
  tx = optimizer_lib.create_optimizer(c.optim)
  params = _params()
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero_grads, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  # Kernel: p - lr * wd * p = 0.5; bias untouched.
  np.testing.assert_allclose(new['conv']['kernel'], 0.5)
  np.testing.assert_allclose(new['head']['kernel'], 0.5)
  np.testing.assert_allclose(new['conv']['bias'], 1.0)
  np.testing.assert_allclose(new['head']['bias'], 1.0)


def test_last_layer_only_freezes_everything_but_the_head():
  c = default_config()
  c.optim.train_last_layer_only = True
  c.optim.weight_decay = 0.0
  tx = optimizer_lib.create_optimizer(c.optim)
  params = _params()
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  assert float(jnp.abs(updates['conv']['kernel']).max()) == 0.0
  assert float(jnp.abs(updates['conv']['bias']).max()) == 0.0
  assert float(jnp.abs(updates['head']['kernel']).min()) > 0.0
