"""Evaluation with the paper's protocol: views -> jitted sharded logits -> per-video scores and metrics.

Per video, `data.test_num_frames` (25) equally spaced frames or flow stacks, each giving
`data.test_num_crops` (10) crops; softmax scores are averaged over the video's views (logits are
averaged too and kept). Every video of the split is evaluated exactly once: the input pipeline pads
the last batch with masked views, and this module checks that each video received all its views.

Writes under `<workdir>/eval/<split>/`: `scores.npz` (see score_files), `metrics.json` (top1, top5,
mean_class_accuracy, num_videos, and the data set's name) and `confusion_matrix.png`. A multi-task
run evaluates the data set `eval.dataset` names with its own head (`train.task_heads`), for the test
and the training split alike, and writes under `<workdir>/eval/<data set name>/<split>/`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
import tqdm

from twostream_jax.data import input_pipeline
from twostream_jax.evaluation import classification_metrics
from twostream_jax.evaluation import score_files
from twostream_jax.evaluation import stream_scores
from twostream_jax.train import checkpointing
from twostream_jax.train import eval_batches
from twostream_jax.train import metric_writers
from twostream_jax.train import restore
from twostream_jax.train import sharding
from twostream_jax.train import steps as train_steps
from twostream_jax.train import task_heads
from twostream_jax.train.state import TrainState

EVAL_SUBDIR = 'eval'


def score_split(config: ml_collections.ConfigDict, state: TrainState, eval_fn, mesh, *, split: str,
                num_frames: int, num_crops: int, max_videos: int = 0,
                dataset_index: int = 0) -> score_files.VideoScores:
  """Per-video scores of `state` on `split` with `num_frames` x `num_crops` views per video.

  Args:
    dataset_index: which of `data.data_dirs` is evaluated, scored by the head of the same index
      (`eval_fn` takes `head=`).

  Raises:
    RuntimeError: a video did not receive exactly num_frames * num_crops views (a pipeline bug).
  """
  metadata = input_pipeline.load_dataset_metadata(config.data)[dataset_index]
  video_ids = metadata.video_ids(split)
  if max_videos:
    video_ids = video_ids[:max_videos]
  num_videos, num_classes, views = len(video_ids), metadata.num_classes, num_frames * num_crops
  # Videos per batch: each makes num_frames x num_crops views on the device.
  batch_size = eval_batches.videos_per_batch(config.train.eval_batch_size, views, mesh)
  dataset = input_pipeline.create_eval_dataset(
      config.data, split=split, num_frames=num_frames, num_crops=num_crops,
      global_batch_size=batch_size, process_index=jax.process_index(),
      process_count=jax.process_count(), max_videos=max_videos, dataset_index=dataset_index)
  head_fn = lambda s, batch: eval_fn(s, batch, head=dataset_index)
  logit_sums = np.zeros((num_videos, num_classes), np.float64)
  prob_sums = np.zeros((num_videos, num_classes), np.float64)
  counts = np.zeros(num_videos, np.int64)
  labels = np.full(num_videos, -1, np.int64)
  # Every process yields the same number of batches (padding included).
  total = input_pipeline.num_eval_batches(
      config.data, split=split, num_frames=num_frames, num_crops=num_crops,
      global_batch_size=batch_size, process_count=jax.process_count(), max_videos=max_videos,
      dataset_index=dataset_index)
  bar = tqdm.tqdm(total=total, desc=f'eval {split} ({num_frames}x{num_crops} views)', unit='batch',
                  disable=jax.process_index() != 0)
  for index, label, logits in eval_batches.real_logits(state, head_fn, dataset, mesh):
    np.add.at(logit_sums, index, logits)
    np.add.at(prob_sums, index, stream_scores.softmax(logits))
    np.add.at(counts, index, 1)
    labels[index] = label
    bar.update(1)
  bar.close()
  wrong = np.flatnonzero(counts != views)
  if wrong.size:
    i = wrong[0]
    raise RuntimeError(f'video {video_ids[i]!r} received {counts[i]} views, expected {views} '
                       f'({wrong.size} videos affected)')
  return score_files.VideoScores(
      video_ids=video_ids, labels=labels, logits=(logit_sums / views).astype(np.float32),
      probs=(prob_sums / views).astype(np.float32), class_names=metadata.class_names, split=split,
      stream=stream_scores.stream_name(config.data.modality, config.eval.stream_name),
      num_views=views)


def write_split_results(scores: score_files.VideoScores, out_dir: str,
                        dataset: str = '') -> dict[str, Any]:
  """Writes scores.npz, metrics.json and confusion_matrix.png; returns the metrics.

  Args:
    dataset: the data set's name, recorded in metrics.json (and returned) when given.
  """
  metrics = classification_metrics.compute_metrics(scores.probs, scores.labels)
  if dataset:
    metrics = dict(metrics, dataset=dataset)
  if jax.process_index() == 0:
    os.makedirs(out_dir, exist_ok=True)
    score_files.save_scores(os.path.join(out_dir, 'scores.npz'), scores)
    with open(os.path.join(out_dir, 'metrics.json'), 'w') as f:
      json.dump(dict(metrics, split=scores.split, stream=scores.stream,
                     num_views=scores.num_views), f, indent=1)
    cm = classification_metrics.confusion_matrix(scores.probs.argmax(-1), scores.labels,
                                                 scores.num_classes)
    classification_metrics.save_confusion_matrix_png(
        cm, scores.class_names, os.path.join(out_dir, 'confusion_matrix.png'),
        f'{scores.stream} on {scores.split}: top-1 {metrics["top1"]:.3f}')
  return metrics


def split_dir(workdir: str, split: str, dataset: str = '') -> str:
  """`<workdir>/eval/<split>`, or `<workdir>/eval/<dataset>/<split>` for a data set of a multi-task run."""
  return os.path.join(workdir, EVAL_SUBDIR, *([dataset] if dataset else []), split)


def evaluate_run(config: ml_collections.ConfigDict, workdir: str,
                 state: TrainState | None = None) -> dict[str, dict[str, Any]]:
  """Evaluates the run's final state (or latest checkpoint) on `data.eval_split` with the paper's
  protocol and, if `eval.score_train_split`, scores `data.train_split` for fitting fusion.

  Returns:
    split name -> metrics.
  """
  mesh = sharding.create_mesh()
  if state is None:
    checkpointer = checkpointing.Checkpointer(workdir, keep=config.train.keep_checkpoints,
                                              every_steps=0)
    if checkpointer.latest_step() is None:
      raise FileNotFoundError(f'no checkpoint under {checkpointer.directory}: train first '
                              '(--config.mode=train) or point --workdir at a trained run')
    state = restore.restore_or_init(config, workdir, mesh, checkpointer, purpose='eval')
  _, eval_fn = train_steps.make_jitted_steps(config, mesh, state)
  dataset_index = task_heads.eval_dataset_index(config)
  names = task_heads.dataset_names(config.data)
  dataset = names[dataset_index]
  # Single-task runs keep eval/<split>; several data sets get one folder each.
  sub = dataset if len(names) > 1 else ''
  jobs = [(config.data.eval_split, config.data.test_num_frames, config.data.test_num_crops)]
  if config.eval.score_train_split:
    jobs.append((config.data.train_split, config.eval.train_num_frames, config.eval.train_num_crops))
  results = {}
  for split, frames, crops in jobs:
    scores = score_split(config, state, eval_fn, mesh, split=split, num_frames=frames,
                         num_crops=crops, max_videos=config.eval.max_videos,
                         dataset_index=dataset_index)
    results[split] = write_split_results(scores, split_dir(workdir, split, sub), dataset)
    m = results[split]
    metric_writers.log(f'{scores.stream} {dataset} {split}: top-1 {m["top1"]:.4f} top-5 {m["top5"]:.4f} '
                       f'mean class accuracy {m["mean_class_accuracy"]:.4f} over {m["num_videos"]} '
                       f'videos ({frames}x{crops} views) -> {split_dir(workdir, split, sub)}')
  return results
