"""The jitted training and evaluation steps. No TensorFlow here.

A batch is a dict of global arrays, either uint8 pixels from which the step makes the network
inputs on the device (`train.device_views`: keys `images`, `boxes`, `flips`, `flow_step`, `jitter`;
what `data.train_dataset` and `data.eval_dataset` yield), or ready float inputs:
  inputs         float32 [B, H, W, C]
with, in both cases,
  label          int32   [B]      class index within the example's own data set
  dataset_index  int32   [B]      which data set (head) the example belongs to
  mask           float32 [B]      (evaluation) 1 for real examples, 0 for padding
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from twostream_jax.train import device_views
from twostream_jax.train import last_layer
from twostream_jax.train import losses
from twostream_jax.train import optimizer as optimizer_lib
from twostream_jax.train import sharding
from twostream_jax.train.state import TrainState


def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array,
               learning_rate_fn: Callable[[Any], jax.Array],
               view_spec: device_views.ViewSpec | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD step on the global batch.

  Args:
    state: replicated training state (donated by the caller's jit).
    batch: see the module docstring (one view per example).
    rng: the run's base key; dropout uses fold_in(rng, step).
    learning_rate_fn: the schedule, for logging.
    view_spec: how to make the inputs of a batch of uint8 images (unused for float `inputs`).

  Returns:
    (new state, `losses.step_metrics`).
  """
  dropout_rng = jax.random.fold_in(rng, state.step)
  inputs = device_views.batch_inputs(batch, view_spec)

  def loss_fn(params):
    heads, batch_stats = state.apply_model(inputs, params=params, train=True,
                                           dropout_rng=dropout_rng)
    loss, metrics = losses.multitask_loss(heads, batch['label'], batch['dataset_index'])
    return loss, (metrics, batch_stats)

  (loss, (metrics, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new_state = state.apply_gradients(grads=grads).replace(batch_stats=batch_stats)
  return new_state, losses.step_metrics(loss, metrics, new_state, learning_rate_fn(state.step))


def eval_logits(state: TrainState, inputs: jax.Array, head: int = 0) -> jax.Array:
  """Inference logits `[B, n]` of one head (head 0: the first data set's classes)."""
  return state.apply_model(inputs)[0][head].astype(jnp.float32)


def eval_batch_logits(state: TrainState, batch: dict[str, jax.Array], head: int = 0,
                      view_spec: device_views.ViewSpec | None = None) -> jax.Array:
  """Logits `[B * V, n]` of every view of a batch (V views per example, adjacent; V = 1 for `inputs`).

  The test protocol's batches carry one frame or flow stack per test position with its V boxes
  and flips (`device_views`): the crops are made here, on the device.
  """
  return eval_logits(state, device_views.batch_inputs(batch, view_spec), head)


def make_jitted_steps(config: ml_collections.ConfigDict, mesh, state: TrainState):
  """jit-compiled (train_step, eval_fn) with replicated state, data-sharded batches.

  `train_step(state, batch, rng) -> (state, metrics)`; `eval_fn(state, batch, head=0) -> logits
  [B * V, n]` of head `head` (`eval_batch_logits`), replicated. Both make the inputs of uint8
  batches with the `device_views.ViewSpec` of `config.data`. With `optim.train_last_layer_only`
  the train step is `last_layer.train_step`.
  """
  state_sharding = jax.tree.map(lambda x: x.sharding, state)
  repl = sharding.replicated(mesh)
  lr_fn = optimizer_lib.learning_rate_schedule(config.optim)
  spec = device_views.ViewSpec.from_data_config(config.data)
  step_fn = functools.partial(train_step, learning_rate_fn=lr_fn, view_spec=spec)
  if config.optim.train_last_layer_only:
    # Backbone in inference mode and no backward pass through it (docstring of train.last_layer).
    step_fn = functools.partial(last_layer.train_step, learning_rate_fn=lr_fn, view_spec=spec,
                                dropout_rate=config.model.dropout_rate,
                                dtype=jnp.dtype(config.model.dtype))
  train = jax.jit(step_fn, out_shardings=(state_sharding, repl), donate_argnums=(0,))
  evaluate = jax.jit(functools.partial(eval_batch_logits, view_spec=spec), out_shardings=repl,
                     static_argnames=('head',))
  return train, evaluate
