"""A run's state: freshly initialised for the config's data, or restored from the latest checkpoint.

Shared by the training loop and by evaluation (which must not import the loop).
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections

from twostream_jax.data import input_pipeline
from twostream_jax.train import checkpointing
from twostream_jax.train import metric_writers
from twostream_jax.train import sharding
from twostream_jax.train import state as state_lib
from twostream_jax.train import task_heads
from twostream_jax.train.state import TrainState


def init_state(config: ml_collections.ConfigDict, mesh,
               use_init_from: bool = True) -> tuple[TrainState, Any]:
  """Builds the model for the config's data and a replicated, freshly initialised state.

  Returns:
    (state, model).
  """
  num_classes = input_pipeline.num_classes(config.data)
  channels = input_pipeline.input_channels(config.data)
  model = state_lib.build_model(config, num_classes)
  init_rng = jax.random.fold_in(jax.random.key(config.seed), 0)
  shape = (config.data.crop_size, config.data.crop_size, channels)
  state = state_lib.create_train_state(config, model, shape, init_rng,
                                             use_init_from=use_init_from)
  return sharding.replicate(state, mesh), model


def restore_or_init(config: ml_collections.ConfigDict, workdir: str, mesh,
                    checkpointer: checkpointing.Checkpointer) -> TrainState:
  """The latest checkpoint's state if there is one, else a fresh state (both replicated)."""
  resuming = checkpointer.latest_step() is not None
  # A checkpoint replaces every value: reading converted weights would be wasted I/O.
  state, _ = init_state(config, mesh, use_init_from=not resuming)
  if resuming:
    # Heads are positional: refuse data sets listed in another order (train.task_heads), before
    # a restore that would fail on head shapes or, with equal class counts, swap the heads.
    task_heads.check_checkpoint_datasets(checkpointer.read_meta().get('datasets'),
                                         task_heads.dataset_names(config.data),
                                         checkpointer.directory)
    state, meta = checkpointer.restore(state)
    if meta.get('seed') != config.seed:
      raise ValueError(f'{workdir} holds a run with seed {meta.get("seed")}, this config has seed '
                       f'{config.seed}: use another workdir or the same seed to resume')
    metric_writers.log(f'resumed from {checkpointer.directory} at step {int(state.step)}')
  return state
