"""The training loop: data-parallel jitted steps over the tf.data pipeline, orbax resume, logging.

`train(config, workdir)` runs from the latest checkpoint in `<workdir>/checkpoints` (or from scratch)
to `config.train.num_train_steps`, and returns the final state. The data stream is a pure function of
(seed, step), so a resumed run sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from twostream_jax import checkpointing
from twostream_jax import input_pipeline
from twostream_jax import metric_writers
from twostream_jax import optimizer as optimizer_lib
from twostream_jax import sharding
from twostream_jax import train_state as train_state_lib
from twostream_jax import train_steps
from twostream_jax.train_state import TrainState

TENSORBOARD_SUBDIR = 'tensorboard'


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or Inf loss."""


def init_state(config: ml_collections.ConfigDict, mesh,
               use_init_from: bool = True) -> tuple[TrainState, Any]:
  """Builds the model for the config's data and a replicated, freshly initialised state.

  Returns:
    (state, model).
  """
  num_classes = input_pipeline.num_classes(config.data)
  channels = input_pipeline.input_channels(config.data)
  model = train_state_lib.build_model(config, num_classes)
  init_rng = jax.random.fold_in(jax.random.key(config.seed), 0)
  shape = (config.data.crop_size, config.data.crop_size, channels)
  state = train_state_lib.create_train_state(config, model, shape, init_rng,
                                             use_init_from=use_init_from)
  return sharding.replicate(state, mesh), model


def restore_or_init(config: ml_collections.ConfigDict, workdir: str, mesh,
                    checkpointer: checkpointing.Checkpointer) -> TrainState:
  """The latest checkpoint's state if there is one, else a fresh state (both replicated)."""
  resuming = checkpointer.latest_step() is not None
  # A checkpoint replaces every value: reading converted weights would be wasted I/O.
  state, _ = init_state(config, mesh, use_init_from=not resuming)
  if resuming:
    state, meta = checkpointer.restore(state)
    if meta.get('seed') != config.seed:
      raise ValueError(f'{workdir} holds a run with seed {meta.get("seed")}, this config has seed '
                       f'{config.seed}: use another workdir or the same seed to resume')
    metric_writers.log(f'resumed from {checkpointer.directory} at step {int(state.step)}')
  return state


def make_jitted_steps(config: ml_collections.ConfigDict, mesh, state: TrainState):
  """jit-compiled (train_step, eval_logits) with replicated state, data-sharded batches."""
  state_sharding = jax.tree.map(lambda x: x.sharding, state)
  repl = sharding.replicated(mesh)
  lr_fn = optimizer_lib.learning_rate_schedule(config.optim)
  train = jax.jit(functools.partial(train_steps.train_step, learning_rate_fn=lr_fn),
                  out_shardings=(state_sharding, repl), donate_argnums=(0,))
  evaluate = jax.jit(train_steps.eval_logits, out_shardings=repl)
  return train, evaluate


def clip_accuracy(config: ml_collections.ConfigDict, state: TrainState, eval_fn, mesh) -> dict[str, float]:
  """Clip-level accuracy on held-out views (`data.val_*`): each view counts on its own."""
  dataset = input_pipeline.create_eval_dataset(
      config.data, split=config.data.val_split, num_frames=config.data.val_num_frames,
      num_crops=config.data.val_num_crops, global_batch_size=config.train.eval_batch_size,
      process_index=jax.process_index(), process_count=jax.process_count(),
      max_videos=config.data.val_max_videos)
  correct, count = 0.0, 0.0
  for local in dataset.as_numpy_iterator():
    batch = sharding.global_batch(local, mesh)
    logits = eval_fn(state, batch['inputs'])
    label, mask = sharding.to_host((batch['label'], batch['mask']), mesh)
    pred = np.asarray(jax.device_get(logits)).argmax(-1)
    correct += float(np.sum((pred == label) * mask))
    count += float(np.sum(mask))
  return {'val_clip_accuracy': correct / max(count, 1.0), 'val_clips': count}


def _check_finite(step: int, metrics: dict[str, Any]) -> None:
  loss, norm = (float(x) for x in jax.device_get((metrics['loss'], metrics['param_norm'])))
  if not (np.isfinite(loss) and np.isfinite(norm)):
    what = f'loss is {loss}' if not np.isfinite(loss) else f'parameters became {norm}'
    raise NonFiniteLossError(
        f'{what} at step {step}: training stopped; the last good checkpoint is kept. '
        'Lower optim.learning_rate or add optim.warmup_steps, then run the same command to resume.')


def train(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains to `config.train.num_train_steps`, resuming from `<workdir>/checkpoints`.

  Raises:
    NonFiniteLossError: a NaN/Inf loss (names the step; no checkpoint is written after it).
  """
  mesh = sharding.create_mesh()
  batch_size = config.train.global_batch_size
  sharding.check_global_batch_size(batch_size, mesh)
  if config.data.val_split and config.train.val_every_steps:
    sharding.check_global_batch_size(config.train.eval_batch_size, mesh)
  checkpointer = checkpointing.Checkpointer(workdir, keep=config.train.keep_checkpoints,
                                            every_steps=config.train.checkpoint_every_steps)
  state = restore_or_init(config, workdir, mesh, checkpointer)
  train_fn, eval_fn = make_jitted_steps(config, mesh, state)
  start_step, num_steps = int(jax.device_get(state.step)), config.train.num_train_steps
  meta = {'seed': config.seed, 'config': config.to_json()}
  if start_step >= num_steps:
    metric_writers.log(f'nothing to train: checkpoint at step {start_step} >= {num_steps} steps')
    return state

  dataset = input_pipeline.create_train_dataset(
      config.data, global_batch_size=batch_size, seed=config.seed, start_step=start_step,
      process_index=jax.process_index(), process_count=jax.process_count())
  batches = dataset.as_numpy_iterator()
  writer = metric_writers.MetricWriter(os.path.join(workdir, TENSORBOARD_SUBDIR))
  dropout_rng = jax.random.fold_in(jax.random.key(config.seed), 1)
  metric_writers.log(f'training {config.model.name} on {jax.device_count()} device(s), '
                     f'{jax.process_count()} process(es), steps {start_step} -> {num_steps}')

  pending: tuple[int, dict[str, Any]] | None = None
  window: list[dict[str, Any]] = []
  window_start = time.perf_counter()
  run_start, run_start_step = window_start, start_step
  step = start_step
  try:
    for step in range(start_step + 1, num_steps + 1):
      batch = sharding.global_batch(next(batches), mesh)
      state, metrics = train_fn(state, batch, dropout_rng)
      # Check the previous step while this one runs: names the exact step without a sync per step.
      if pending is not None:
        _check_finite(*pending)
      pending = (step, metrics)
      window.append(metrics)
      if step % config.train.log_every_steps == 0 or step == num_steps:
        _check_finite(*pending)
        now = time.perf_counter()
        means = {k: float(np.mean([jax.device_get(m[k]) for m in window])) for k in window[0]}
        steps_per_s = len(window) / max(now - window_start, 1e-9)
        means.update({'steps_per_s': steps_per_s, 'examples_per_s': steps_per_s * batch_size})
        writer.write_scalars(step, means)
        eta = (num_steps - step) * (now - run_start) / max(step - run_start_step, 1)
        shown = {k: means[k] for k in ('loss', 'accuracy', 'learning_rate', 'examples_per_s')}
        metric_writers.log(metric_writers.console_line(step, num_steps, shown, eta))
        window, window_start = [], time.perf_counter()
      if (config.data.val_split and config.train.val_every_steps
          and (step % config.train.val_every_steps == 0 or step == num_steps)):
        val = clip_accuracy(config, state, eval_fn, mesh)
        writer.write_scalars(step, val)
        metric_writers.log(f'step {step}: clip-level validation accuracy '
                           f'{val["val_clip_accuracy"]:.4f} on {int(val["val_clips"])} clips')
      if checkpointer.should_save(step) or step == num_steps:
        _check_finite(*pending)
        checkpointer.save(state, dict(meta, step=step))
  finally:
    checkpointer.wait()
    writer.close()
  metric_writers.log(f'training done at step {step}; checkpoints in {checkpointer.directory}')
  return state
