"""The training loss of every step (one cross-entropy per head over its own data set's examples)
and the metrics a train step reports. No TensorFlow here."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax


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


def step_metrics(loss: jax.Array, metrics: dict[str, jax.Array], new_state: Any,
                 learning_rate: jax.Array) -> dict[str, jax.Array]:
  """What a train step reports: `loss`, `accuracy`, `learning_rate`, `param_norm` (of the updated
  parameters: a finite loss can still come with an update that overflows, and a checkpoint must
  never hold such a state) and per-head `loss_<k>`."""
  out = {'loss': loss, 'accuracy': metrics['correct'] / jnp.maximum(metrics['count'], 1.0),
         'learning_rate': learning_rate, 'param_norm': optax.global_norm(new_state.params)}
  out.update({k: v for k, v in metrics.items() if k.startswith('loss_')})
  return out
