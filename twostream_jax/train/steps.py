"""The jitted training and evaluation steps, with multi-task losses. No TensorFlow here.

A batch is a dict of global arrays:
  inputs         float32 [B, H, W, C]
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
import optax

from twostream_jax.train import optimizer as optimizer_lib
from twostream_jax.train import sharding
from twostream_jax.train.state import TrainState


def as_heads(logits: Any) -> tuple[jax.Array, ...]:
  """A model's output as a tuple of per-head logits `[B, n_k]`."""
  return tuple(logits) if isinstance(logits, (tuple, list)) else (logits,)


def multitask_loss(heads: tuple[jax.Array, ...], labels: jax.Array, dataset_index: jax.Array,
                   weights: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Sum over heads of each head's mean cross-entropy over its own data set's examples only.

  Args:
    heads: per-head logits `[B, n_k]`.
    labels: int `[B]`, within the example's own data set's classes.
    dataset_index: int `[B]`, the head each example belongs to.
    weights: optional float `[B]` (0 drops an example).

  Returns:
    (loss, metrics): the summed loss, and per-head sums: `correct` (examples classified right by
    their own head), `count` (examples counted), `loss_<k>` (head k's mean loss).
  """
  weights = jnp.ones(labels.shape, jnp.float32) if weights is None else weights
  total = jnp.zeros((), jnp.float32)
  correct = jnp.zeros((), jnp.float32)
  metrics = {}
  for k, logits in enumerate(heads):
    logits = logits.astype(jnp.float32)
    member = (dataset_index == k).astype(jnp.float32) * weights
    # Labels of other data sets may exceed this head's classes: they are masked out, clip to index.
    safe_labels = jnp.clip(labels, 0, logits.shape[-1] - 1)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, safe_labels)
    head_loss = jnp.sum(ce * member) / jnp.maximum(jnp.sum(member), 1.0)
    total = total + head_loss
    correct = correct + jnp.sum((jnp.argmax(logits, -1) == labels) * member)
    metrics[f'loss_{k}'] = head_loss
  metrics['correct'] = correct
  metrics['count'] = jnp.sum(weights)
  return total, metrics


def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array,
               learning_rate_fn: Callable[[Any], jax.Array]) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD step on the global batch.

  Args:
    state: replicated training state (donated by the caller's jit).
    batch: see the module docstring.
    rng: the run's base key; dropout uses fold_in(rng, step).
    learning_rate_fn: the schedule, for logging.

  Returns:
    (new state, metrics with `loss`, `accuracy`, `learning_rate`, `param_norm` (of the
    updated parameters), per-head `loss_<k>`).
  """
  dropout_rng = jax.random.fold_in(rng, state.step)

  def loss_fn(params):
    variables = {'params': params}
    mutable = []
    if state.batch_stats:
      variables['batch_stats'] = state.batch_stats
      mutable = ['batch_stats']
    out = state.apply_fn(variables, batch['inputs'], train=True, rngs={'dropout': dropout_rng},
                         mutable=mutable)
    logits, updates = out if mutable else (out, {})
    loss, metrics = multitask_loss(as_heads(logits), batch['label'], batch['dataset_index'])
    return loss, (metrics, updates)

  (loss, (metrics, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new_state = state.apply_gradients(grads=grads)
  if updates:
    new_state = new_state.replace(batch_stats=updates['batch_stats'])
  # The updated parameters' norm: a finite loss can still come with an update that overflows, and a
  # checkpoint must never hold such a state.
  out = {'loss': loss, 'accuracy': metrics['correct'] / jnp.maximum(metrics['count'], 1.0),
         'learning_rate': learning_rate_fn(state.step),
         'param_norm': optax.global_norm(new_state.params)}
  out.update({k: v for k, v in metrics.items() if k.startswith('loss_')})
  return new_state, out


def eval_logits(state: TrainState, inputs: jax.Array, head: int = 0) -> jax.Array:
  """Inference logits `[B, n]` of one head (head 0: the first data set's classes)."""
  variables = {'params': state.params}
  if state.batch_stats:
    variables['batch_stats'] = state.batch_stats
  return as_heads(state.apply_fn(variables, inputs, train=False))[head].astype(jnp.float32)


def make_jitted_steps(config: ml_collections.ConfigDict, mesh, state: TrainState):
  """jit-compiled (train_step, eval_logits) with replicated state, data-sharded batches.

  With `optim.train_last_layer_only` the train step is `last_layer.train_step`.
  """
  state_sharding = jax.tree.map(lambda x: x.sharding, state)
  repl = sharding.replicated(mesh)
  lr_fn = optimizer_lib.learning_rate_schedule(config.optim)
  step_fn = functools.partial(train_step, learning_rate_fn=lr_fn)
  if config.optim.train_last_layer_only:
    # Backbone in inference mode and no backward pass through it (docstring of train.last_layer).
    from twostream_jax.train import last_layer  # pylint: disable=g-import-not-at-top
    step_fn = functools.partial(last_layer.train_step, learning_rate_fn=lr_fn,
                                dropout_rate=config.model.dropout_rate,
                                dtype=jnp.dtype(config.model.dtype))
  train = jax.jit(step_fn,
                  out_shardings=(state_sharding, repl), donate_argnums=(0,))
  evaluate = jax.jit(eval_logits, out_shardings=repl, static_argnames=('head',))
  return train, evaluate
