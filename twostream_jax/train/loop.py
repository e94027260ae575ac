"""The training loop: data-parallel jitted steps over the tf.data pipeline, orbax resume, logging.

`train(config, workdir)` runs from the latest checkpoint in `<workdir>/checkpoints` (or from scratch)
to `config.train.num_train_steps`, and returns the final state. The data stream is a pure function of
(seed, step), so a resumed run sees exactly the batches an uninterrupted run would have seen. A
SIGTERM or SIGINT stops it after the current step with a checkpoint of that step
(`train.preemption`; every process stops after the same step), raising `preemption.Preempted`.
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from twostream_jax.data import data_spec
from twostream_jax.data import eval_dataset
from twostream_jax.data import pipeline_ops
from twostream_jax.data import train_dataset
from twostream_jax.data import workdir_metadata
from twostream_jax.evaluation import view_batches
from twostream_jax.train import checkpointing
from twostream_jax.train import metric_writers
from twostream_jax.train import preemption
from twostream_jax.train import restore
from twostream_jax.train import sharding
from twostream_jax.train import steps as train_steps
from twostream_jax.train import view_outputs
from twostream_jax.train.state import TrainState

TENSORBOARD_SUBDIR = 'tensorboard'


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or Inf loss."""


def validation_dataset(config: ml_collections.ConfigDict, spec: data_spec.DataSpec, mesh):
  """The held-out views of clip-level validation (`data.val_*`): built once, iterated at each validation.

  One dataset (and one record reader, whose JPEG locations stay cached) for the whole run.
  """
  num_videos = len(spec.metadatas[0].video_ids(spec.val_split)[:config.data.val_max_videos or None])
  return eval_dataset.create_eval_dataset(
      spec, split=spec.val_split, num_frames=config.data.val_num_frames,
      num_crops=config.data.val_num_crops,
      global_batch_size=view_outputs.videos_per_batch(
          config.train.eval_batch_size, config.data.val_num_frames * config.data.val_num_crops,
          mesh, num_videos),
      process_index=jax.process_index(), process_count=jax.process_count(),
      max_videos=config.data.val_max_videos)


def clip_accuracy(state: TrainState, eval_fn, mesh, dataset) -> dict[str, float]:
  """Clip-level accuracy on the views of `dataset` (`validation_dataset`): each view counts on its own."""
  correct, count = 0, 0
  batches = view_outputs.device_batches(pipeline_ops.numpy_batches(dataset), mesh)
  predict = view_outputs.view_predictor(state, eval_fn, mesh)
  for _, label, logits in view_batches.real_views(predict, batches):
    correct += int(np.sum(logits.argmax(-1) == label))
    count += int(label.size)
  return {'val_clip_accuracy': correct / max(count, 1), 'val_clips': float(count)}


def _check_finite(step: int, metrics: dict[str, Any]) -> None:
  loss, norm = (float(x) for x in jax.device_get((metrics['loss'], metrics['param_norm'])))
  if not (np.isfinite(loss) and np.isfinite(norm)):
    what = f'loss is {loss}' if not np.isfinite(loss) else f'parameters became {norm}'
    raise NonFiniteLossError(
        f'{what} at step {step}: training stopped; the last good checkpoint is kept. '
        'Lower optim.learning_rate or add optim.warmup_steps, then run the same command to resume.')


def train(config: ml_collections.ConfigDict, spec: data_spec.DataSpec, workdir: str) -> TrainState:
  """Trains to `config.train.num_train_steps`, resuming from `<workdir>/checkpoints`.

  Raises:
    NonFiniteLossError: a NaN/Inf loss (names the step; no checkpoint is written after it).
    preemption.Preempted: a SIGTERM or SIGINT (on any process); the step it stopped after is
      checkpointed.
  """
  mesh = sharding.create_mesh()
  batch_size = config.train.global_batch_size
  sharding.check_global_batch_size(batch_size, mesh)
  if spec.val_split and config.train.val_every_steps:
    sharding.check_global_batch_size(config.train.eval_batch_size, mesh)
  checkpointer = checkpointing.Checkpointer(workdir, keep=config.train.keep_checkpoints,
                                            every_steps=config.train.checkpoint_every_steps)
  if jax.process_index() == 0:
    # What predict needs to use the run without the records (data.workdir_metadata).
    workdir_metadata.save(workdir, config, spec.data_dirs, spec.metadatas)
  state = restore.restore_or_init(config, spec, mesh, checkpointer)
  train_fn, eval_fn = train_steps.make_jitted_steps(config, mesh, state)
  start_step, num_steps = int(jax.device_get(state.step)), config.train.num_train_steps
  # The stream is per process (train.restore refuses another process count); devices may change.
  meta = {'seed': config.seed, 'config': config.to_json(),
          'datasets': spec.names, 'process_count': jax.process_count()}
  if start_step >= num_steps:
    metric_writers.log(f'nothing to train: checkpoint at step {start_step} >= {num_steps} steps')
    return state

  dataset = train_dataset.create_train_dataset(
      spec, global_batch_size=batch_size, seed=config.seed, start_step=start_step,
      process_index=jax.process_index(), process_count=jax.process_count())
  # The next two batches are transferred while a step runs.
  batches = sharding.prefetch_to_device(pipeline_ops.numpy_batches(dataset), mesh, size=2)
  validate = bool(spec.val_split and config.train.val_every_steps)
  val_dataset = validation_dataset(config, spec, mesh) if validate else None
  writer = metric_writers.MetricWriter(os.path.join(workdir, TENSORBOARD_SUBDIR))
  dropout_rng = jax.random.fold_in(jax.random.key(config.seed), 1)
  metric_writers.log(f'training {config.model.name} on {jax.device_count()} device(s), '
                     f'{jax.process_count()} process(es), steps {start_step} -> {num_steps}')

  pending: tuple[int, dict[str, Any]] | None = None
  window: list[dict[str, Any]] = []
  window_start = time.perf_counter()
  run_start, run_start_step = window_start, start_step
  step = start_step
  stop = False
  signals = preemption.StopSignals(on_request=lambda name: metric_writers.log(
      f'{name} received: stopping after the current step with a checkpoint of it '
      '(a second signal stops at once, without one)'))
  with signals:
    agreement = preemption.StopAgreement(signals, mesh)
    try:
      for step in range(start_step + 1, num_steps + 1):
        batch = next(batches)
        state, metrics = train_fn(state, batch, dropout_rng)
        # Check the previous step while this one runs: names the exact step without a sync per step.
        if pending is not None:
          _check_finite(*pending)
        pending = (step, metrics)
        stop = agreement.stop_after(step)
        window.append(metrics)
        if step % config.train.log_every_steps == 0 or step == num_steps or stop:
          _check_finite(*pending)
          now = time.perf_counter()
          means = {k: float(np.mean([jax.device_get(m[k]) for m in window])) for k in window[0]}
          steps_per_s = len(window) / max(now - window_start, 1e-9)
          means.update({'steps_per_s': steps_per_s, 'examples_per_s': steps_per_s * batch_size})
          # The rate of the logged step, not the window's mean (which blurs a decay boundary).
          means['learning_rate'] = float(jax.device_get(metrics['learning_rate']))
          writer.write_scalars(step, means)
          eta = (num_steps - step) * (now - run_start) / max(step - run_start_step, 1)
          shown = {k: means[k] for k in ('loss', 'accuracy', 'learning_rate', 'examples_per_s')}
          metric_writers.log(metric_writers.console_line(step, num_steps, shown, eta))
          window, window_start = [], time.perf_counter()
        # A stopping run skips validation: the time a scheduler grants after its signal is short.
        if validate and not stop and (step % config.train.val_every_steps == 0 or step == num_steps):
          val = clip_accuracy(state, eval_fn, mesh, val_dataset)
          writer.write_scalars(step, val)
          metric_writers.log(f'step {step}: clip-level validation accuracy '
                             f'{val["val_clip_accuracy"]:.4f} on {int(val["val_clips"])} clips')
        if checkpointer.should_save(step) or step == num_steps or stop:
          _check_finite(*pending)
          checkpointer.save(state, dict(meta, step=step))
        if stop:
          break
    finally:
      checkpointer.wait()
      writer.close()
  # A signal during the last step's checkpoint write: the run is complete, but asked to stop (an
  # evaluation would follow in mode train_eval).
  stop = stop or signals.requested
  if stop:
    name = signals.signal_name or "another process's signal"
    metric_writers.log(f'stopped by {name} after step {step}: checkpoint {step} saved in '
                       f'{checkpointer.directory}; run the same command to resume there '
                       f'(exit status {preemption.EXIT_PREEMPTED})')
    raise preemption.Preempted(step, name)
  metric_writers.log(f'training done at step {step}; checkpoints in {checkpointer.directory}')
  return state
