"""A run's evaluation with the paper's protocol: its state scored on the test and training splits.

For the run's final state (or its latest checkpoint): the test split with `data.test_num_frames` x
`data.test_num_crops` views a video (25 x 10), and, with `eval.score_train_split`, the training split
with fewer views (for fitting fusion). A multi-task run evaluates the data set `eval.dataset` names
with its own head and writes under `<workdir>/eval/<data set name>/<split>/`.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections

from twostream_jax.data import data_spec
from twostream_jax.data import eval_dataset
from twostream_jax.data import pipeline_ops
from twostream_jax.evaluation import evaluate
from twostream_jax.evaluation import stream_scores
from twostream_jax.train import checkpointing
from twostream_jax.train import metric_writers
from twostream_jax.train import restore
from twostream_jax.train import sharding
from twostream_jax.train import steps as train_steps
from twostream_jax.train import task_heads
from twostream_jax.train import view_outputs
from twostream_jax.train.state import TrainState


def evaluate_run(config: ml_collections.ConfigDict, spec: data_spec.DataSpec, workdir: str,
                 state: TrainState | None = None) -> dict[str, dict[str, Any]]:
  """Scores the run's state (or latest checkpoint) and writes the results (module docstring).

  Returns:
    split name -> metrics.

  Raises:
    FileNotFoundError: no state given and no checkpoint in the workdir.
  """
  mesh = sharding.create_mesh()
  if state is None:
    checkpointer = checkpointing.Checkpointer(workdir, keep=config.train.keep_checkpoints,
                                              every_steps=0)
    if checkpointer.latest_step() is None:
      raise FileNotFoundError(f'no checkpoint under {checkpointer.directory}: train first '
                              '(--config.mode=train) or point --workdir at a trained run')
    state = restore.restore_or_init(config, spec, mesh, checkpointer, purpose='eval')
  _, eval_fn = train_steps.make_jitted_steps(config, mesh, state)
  dataset_index = task_heads.eval_dataset_index(spec.names, config.eval.dataset)
  dataset, metadata = spec.names[dataset_index], spec.metadatas[dataset_index]
  # Single-task runs keep eval/<split>; several data sets get one folder each.
  sub = dataset if len(spec.names) > 1 else ''
  jobs = [(spec.eval_split, config.data.test_num_frames, config.data.test_num_crops)]
  if config.eval.score_train_split:
    jobs.append((spec.train_split, config.eval.train_num_frames, config.eval.train_num_crops))
  predict = view_outputs.view_predictor(state, eval_fn, mesh, head=dataset_index)
  stream = stream_scores.stream_name(config.data.modality, config.eval.stream_name)
  max_videos = config.eval.max_videos
  results = {}
  for split, frames, crops in jobs:
    views = frames * crops
    batch_size = view_outputs.videos_per_batch(config.train.eval_batch_size, views, mesh)
    dataset_kwargs = dict(split=split, global_batch_size=batch_size,
                          process_count=jax.process_count(), max_videos=max_videos,
                          dataset_index=dataset_index)
    host_batches = eval_dataset.create_eval_dataset(
        spec, num_frames=frames, num_crops=crops, process_index=jax.process_index(),
        **dataset_kwargs)
    video_ids = metadata.video_ids(split)[:max_videos or None]
    scores = evaluate.score_split(
        predict, view_outputs.device_batches(pipeline_ops.numpy_batches(host_batches), mesh),
        video_ids=video_ids, class_names=metadata.class_names, split=split, views=views,
        stream=stream, num_batches=eval_dataset.num_eval_batches(spec, **dataset_kwargs),
        show_progress=jax.process_index() == 0)
    out_dir = evaluate.split_dir(workdir, split, sub)
    m = results[split] = evaluate.write_split_results(scores, out_dir, dataset,
                                                      write=jax.process_index() == 0)
    metric_writers.log(f'{stream} {dataset} {split}: top-1 {m["top1"]:.4f} top-5 {m["top5"]:.4f} '
                       f'mean class accuracy {m["mean_class_accuracy"]:.4f} over '
                       f'{m["num_videos"]} videos ({frames}x{crops} views) -> {out_dir}')
  return results
