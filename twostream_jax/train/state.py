"""The training state (params, batch statistics, optimizer state) and its creation from a config.

No TensorFlow here.
"""

from __future__ import annotations

import logging
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
from flax.training import train_state

from twostream_jax import models
from twostream_jax.models import pretrained
from twostream_jax.train import optimizer as optimizer_lib


def as_heads(logits: Any) -> tuple[jax.Array, ...]:
  """A model's output as a tuple of per-head logits `[B, n_k]`."""
  return tuple(logits) if isinstance(logits, (tuple, list)) else (logits,)


class TrainState(train_state.TrainState):
  """Flax TrainState plus the models' batch-norm statistics (an empty dict for nets without BN)."""
  batch_stats: Any = flax.struct.field(default_factory=dict)

  def apply_model(self, inputs: jax.Array, *, params: Any = None, train: bool = False,
                  dropout_rng: jax.Array | None = None) -> tuple[tuple[jax.Array, ...], Any]:
    """The one way the steps run the network, with or without batch statistics.

    Args:
      inputs: `[B, H, W, C]`.
      params: parameters to use instead of `self.params` (the argument being differentiated).
      train: training mode (dropout on; batch norm normalises with and updates batch statistics).
      dropout_rng: the dropout key, needed when `train`.

    Returns:
      (per-head logits `[B, n_k]`, the batch statistics after the call: updated in training
      mode, `self.batch_stats` otherwise; an empty dict for nets without batch norm).
    """
    variables = {'params': self.params if params is None else params}
    if self.batch_stats:
      variables['batch_stats'] = self.batch_stats
    if not train:
      return as_heads(self.apply_fn(variables, inputs, train=False)), self.batch_stats
    if dropout_rng is None:
      raise ValueError('apply_model(train=True) needs a dropout_rng')
    rngs = {'dropout': dropout_rng}
    if not self.batch_stats:
      return as_heads(self.apply_fn(variables, inputs, train=True, rngs=rngs)), self.batch_stats
    logits, updates = self.apply_fn(variables, inputs, train=True, rngs=rngs,
                                    mutable=['batch_stats'])
    return as_heads(logits), updates['batch_stats']


def build_model(config: ml_collections.ConfigDict, num_classes: int | tuple[int, ...]) -> nn.Module:
  """The config's model with `num_classes` (a tuple for multi-task heads)."""
  return models.build_model(config.model.name, num_classes, dropout_rate=config.model.dropout_rate,
                            dtype=config.model.dtype)


def create_train_state(config: ml_collections.ConfigDict, model: nn.Module,
                       input_shape: tuple[int, int, int], rng: jax.Array, *,
                       use_init_from: bool = True) -> TrainState:
  """Initialises parameters (from `config.model.init_from` where given) and the optimizer.

  Args:
    config: the full config.
    model: from `build_model`.
    input_shape: one example's `[H, W, C]`.
    rng: key for parameter initialisation.
    use_init_from: False skips loading `init_from` (a checkpoint will overwrite the values).

  Returns:
    A TrainState at step 0, on the default device (place it with `sharding.replicate`).

  Raises:
    pretrained.PretrainedMismatchError: `init_from` leaves some variables unloaded (listed) and
      `model.init_from_partial` is False, or its conversion.json normalisation differs from
      `data.normalization` (RGB only: flow inputs are not normalised that way).
  """
  if config.model.init_from and use_init_from and config.data.modality == 'rgb':
    # Before initialising: a wrong normalisation fails in a second.
    pretrained.check_normalization(pretrained.load_info(config.model.init_from),
                                   config.data.normalization, config.model.init_from)
  variables = jax.jit(lambda r: model.init(r, jnp.zeros((1, *input_shape), jnp.float32),
                                           train=False))(rng)
  variables = flax.core.unfreeze(variables)
  if config.model.init_from and use_init_from:
    init_from = config.model.init_from
    loaded = pretrained.load_pretrained(init_from)
    variables, not_loaded = pretrained.merge_pretrained(variables, loaded)
    if not_loaded:
      allowed = bool(config.model.init_from_partial)
      message = pretrained.partial_load_message(init_from, not_loaded, allowed=allowed)
      if not allowed:
        raise pretrained.PretrainedMismatchError(message)
      # WARNING, not INFO: main hides INFO, and a net half-trained from scratch must be visible.
      logging.warning('%s', message)
    logging.info('initialised from %s', init_from)
  return TrainState.create(apply_fn=model.apply, params=variables['params'],
                           batch_stats=variables.get('batch_stats', {}),
                           tx=optimizer_lib.create_optimizer(config.optim))
