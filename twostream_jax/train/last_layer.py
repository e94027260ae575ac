"""Training the last layer only, as the paper means it (`optim.train_last_layer_only`).

The classifier is trained on top of a fixed ImageNet net:
  * the backbone runs in inference mode (`train=False`: BatchNorm uses and keeps its running
    statistics, the backbone's own dropout is off);
  * the heads' input features are captured with `flax.linen.intercept_methods` on the head
    `Dense` layers, so every model of the zoo works without a features-only entry point;
  * dropout (`model.dropout_rate`) is applied to those features and the loss is differentiated
    with respect to the head parameters only (no backward pass through the backbone); the other
    parameters get zero gradients, which the optimizer's `freeze` partition leaves unchanged.

No TensorFlow here. Why not a masked full training step: docs/design_notes.md.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from twostream_jax.train import device_views
from twostream_jax.train import losses
from twostream_jax.train import optimizer as optimizer_lib
from twostream_jax.train.state import TrainState


def _head_names(params: Any) -> list[str]:
  prefix = optimizer_lib.HEAD_PREFIX
  names = [k for k in params if k == prefix or k.startswith(prefix + '_')]
  if not names:
    raise ValueError('optim.train_last_layer_only: the model has no `head` parameters')
  # Multi-task heads are head_0, head_1, ...: keep their numeric order (head_10 after head_9).
  return sorted(names, key=lambda n: (len(n), n))


def head_features(state: TrainState, inputs: jax.Array) -> dict[str, jax.Array]:
  """The input of each classifier head, from the backbone in inference mode.

  Args:
    state: a train state of a model built by `twostream_jax.models` (heads `head` or `head_k`).
    inputs: `[B, H, W, C]`.

  Returns:
    head name -> features `[B, D]` (no gradient flows back from them).
  """
  names = set(_head_names(state.params))
  captured: dict[str, jax.Array] = {}

  def capture(next_fun, args, kwargs, context):
    module = context.module
    # Only the model's own top-level heads (their variables are top-level: path = (name,)).
    if (context.method_name == '__call__' and isinstance(module, nn.Dense)
        and module.name in names and tuple(module.scope.path) == (module.name,)):
      captured[module.name] = args[0]
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(capture):
    state.apply_model(inputs)
  missing = names - set(captured)
  if missing:
    raise ValueError(f'optim.train_last_layer_only: heads {sorted(missing)} were not called as '
                     'Dense layers of the model (models/layers.apply_heads builds them)')
  return {k: jax.lax.stop_gradient(v) for k, v in captured.items()}


def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array,
               learning_rate_fn: Callable[[Any], jax.Array], dropout_rate: float,
               dtype: Any = jnp.float32,
               view_spec: Any = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD step of the heads on a fixed backbone; same metrics as `steps.train_step`.

  Args:
    state: replicated training state (donated by the caller's jit).
    batch: as for `steps.train_step` (uint8 images and their views, or float `inputs`).
    rng: the run's base key; dropout uses fold_in(rng, step).
    learning_rate_fn: the schedule, for logging.
    dropout_rate: dropout on the features before the heads (`model.dropout_rate`).
    dtype: the heads' compute dtype (`model.dtype`).
    view_spec: `device_views.ViewSpec` making the inputs of a batch of uint8 images.
  """
  names = _head_names(state.params)
  features = head_features(state, device_views.batch_inputs(batch, view_spec))
  dropout_rng = jax.random.fold_in(rng, state.step)

  def loss_fn(head_params):
    heads = []
    for i, name in enumerate(names):
      x = nn.Dropout(dropout_rate, deterministic=False).apply(
          {}, features[name], rngs={'dropout': jax.random.fold_in(dropout_rng, i)})
      kernel = head_params[name]['kernel']
      dense = nn.Dense(kernel.shape[-1], dtype=dtype, param_dtype=jnp.float32)
      heads.append(dense.apply({'params': head_params[name]}, x).astype(jnp.float32))
    return losses.multitask_loss(tuple(heads), batch['label'], batch['dataset_index'])

  head_params = {n: state.params[n] for n in names}
  (loss, metrics), head_grads = jax.value_and_grad(loss_fn, has_aux=True)(head_params)
  grads = {k: (head_grads[k] if k in head_grads else jax.tree.map(jnp.zeros_like, v))
           for k, v in state.params.items()}
  new_state = state.apply_gradients(grads=grads)
  return new_state, losses.step_metrics(loss, metrics, new_state, learning_rate_fn(state.step))
