"""Learning-rate schedules and the SGD optimizer of the paper, built from the `optim` config.

The paper: SGD with momentum 0.9; from scratch 1e-2 -> 1e-3 at 50K -> 1e-4 at 70K, stop at 80K;
fine-tuning 1e-2 -> 1e-3 at 14K, stop at 20K. Weight decay is an L2 term on kernels (added to the
gradient before momentum, as in Caffe); biases and normalisation parameters are not decayed.
No TensorFlow here.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import traverse_util

HEAD_PREFIX = 'head'


def parse_int_list(text: str) -> list[int]:
  """'50000,70000' -> [50000, 70000]; '' -> []."""
  return [int(x) for x in str(text).replace(' ', '').split(',') if x]


def learning_rate_schedule(optim: ml_collections.ConfigDict) -> Callable[[Any], jax.Array]:
  """Piecewise-constant schedule with optional linear warm-up.

  lr(step) = learning_rate * decay_factor ** (number of boundaries <= step) * min(1, (step + 1) / warmup)
  """
  boundary_list = parse_int_list(optim.decay_boundaries_steps)
  if any(b <= 0 for b in boundary_list):
    raise ValueError(f'optim.decay_boundaries_steps must be positive steps, got '
                     f'{optim.decay_boundaries_steps!r}')
  boundaries = jnp.asarray(boundary_list, jnp.int32)
  base, factor, warmup = float(optim.learning_rate), float(optim.decay_factor), int(optim.warmup_steps)

  def schedule(step):
    step = jnp.asarray(step)
    decays = jnp.sum(step >= boundaries)
    lr = base * jnp.power(factor, decays)
    if warmup > 0:
      lr = lr * jnp.minimum(1.0, (step + 1) / warmup)
    return lr

  return schedule


def _is_head(path: tuple[str, ...]) -> bool:
  return path[0] == HEAD_PREFIX or path[0].startswith(HEAD_PREFIX + '_')


def create_optimizer(optim: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """SGD + momentum with L2 weight decay on kernels; optionally only the head(s) are trained."""

  def decay_mask(params):
    # Kernels only; under multi_transform, frozen leaves arrive as optax MaskedNode (no ndim).
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({k: getattr(v, 'ndim', 0) > 1 for k, v in flat.items()})

  sgd = optax.chain(
      optax.add_decayed_weights(float(optim.weight_decay), mask=decay_mask),
      optax.sgd(learning_rate_schedule(optim), momentum=float(optim.momentum),
                nesterov=bool(optim.nesterov)))
  if not optim.train_last_layer_only:
    return sgd

  def labels(params):
    flat = traverse_util.flatten_dict(params)
    if not any(_is_head(k) for k in flat):
      raise ValueError('optim.train_last_layer_only: the model has no `head` parameters')
    return traverse_util.unflatten_dict({k: 'train' if _is_head(k) else 'freeze' for k in flat})

  return optax.multi_transform({'train': sgd, 'freeze': optax.set_to_zero()}, labels)
