"""Per-video scores of a split from its views, and the results written for it.

`score_split` averages each video's softmax scores (and logits) over its views, from any predict
function and batches (the test protocol's on the devices, or anything else), and checks that each
video received all its views. Given a `partial_scores.PartialScores`, it starts from the videos an
interrupted run scored and saves its progress as it goes. `write_split_results` writes `scores.npz` (`score_files`),
`metrics.json` and `confusion_matrix.png` under `split_dir(workdir, split, dataset)`.
Imports nothing of training: the caller brings the eval step and the data.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import tqdm

from twostream_jax.evaluation import classification_metrics
from twostream_jax.evaluation import partial_scores
from twostream_jax.evaluation import score_files
from twostream_jax.evaluation import stream_scores
from twostream_jax.evaluation import view_batches

EVAL_SUBDIR = 'eval'


def score_split(predict: Callable, batches: Iterable[Any], *, video_ids: Sequence[str],
                class_names: Sequence[str], split: str, views: int, stream: str,
                num_batches: int | None = None, show_progress: bool = True,
                partial: partial_scores.PartialScores | None = None,
                train_split: str = '') -> score_files.VideoScores:
  """Per-video scores from the views of `batches` (every video gets exactly `views` views).

  Args:
    predict: `batch -> (video_index, label, mask, logits)` per view, on the host.
    batches: the split's batches (e.g. the test protocol's, on the devices).
    video_ids: the split's videos, in `video_index` order.
    class_names: the classes of the head that scores.
    split, stream: names recorded with the scores.
    train_split: the training split of the run that made the scores, recorded with them.
    views: K x C, the views per video.
    num_batches: for the progress bar.
    show_progress: a progress bar (on one process of several only).
    partial: the sums of the videos an interrupted run scored (`batches` then hold the other
      videos only), updated and saved after each batch (module docstring).

  Raises:
    RuntimeError: a video did not receive exactly `views` views (a pipeline bug).
  """
  num_videos, num_classes = len(video_ids), len(class_names)
  logit_sums = np.zeros((num_videos, num_classes), np.float64)
  prob_sums = np.zeros((num_videos, num_classes), np.float64)
  counts = np.zeros(num_videos, np.int64)
  labels = np.full(num_videos, -1, np.int64)
  if partial is not None:
    done = partial.scored
    logit_sums[done], prob_sums[done] = partial.logit_sums[done], partial.prob_sums[done]
    counts[done], labels[done] = views, partial.labels[done]
  bar = tqdm.tqdm(total=num_batches, desc=f'eval {split} ({views} views a video)', unit='batch',
                  disable=not show_progress)
  for index, label, logits in view_batches.real_views(predict, batches):
    np.add.at(logit_sums, index, logits)
    np.add.at(prob_sums, index, stream_scores.softmax(logits))
    np.add.at(counts, index, 1)
    labels[index] = label
    bar.update(1)
    if partial is not None and partial.update(counts == views, labels, logit_sums, prob_sums):
      if show_progress:
        bar.write(f'partial scores: {int(partial.scored.sum())}/{num_videos} videos of {split} '
                  f'-> {partial.path}')
        sys.stdout.flush()
  bar.close()
  wrong = np.flatnonzero(counts != views)
  if wrong.size:
    i = wrong[0]
    raise RuntimeError(f'video {video_ids[i]!r} received {counts[i]} views, expected {views} '
                       f'({wrong.size} videos affected)')
  return score_files.VideoScores(
      video_ids=list(video_ids), labels=labels, logits=(logit_sums / views).astype(np.float32),
      probs=(prob_sums / views).astype(np.float32), class_names=list(class_names), split=split,
      stream=stream, num_views=views, train_split=train_split)


def write_split_results(scores: score_files.VideoScores, out_dir: str, dataset: str = '',
                        write: bool = True) -> dict[str, Any]:
  """Writes scores.npz, metrics.json and confusion_matrix.png; returns the metrics.

  Args:
    dataset: the data set's name, recorded in metrics.json (and returned) when given.
    write: False computes the metrics only (every process but the first of several).
  """
  metrics = classification_metrics.compute_metrics(scores.probs, scores.labels)
  if dataset:
    metrics = dict(metrics, dataset=dataset)
  if write:
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
