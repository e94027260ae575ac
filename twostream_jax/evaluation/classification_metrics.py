"""Video-level classification metrics over per-video scores, and a confusion-matrix picture.

Numpy only (matplotlib is imported lazily by `save_confusion_matrix_png`). Accuracies are fractions
in [0, 1]; tables print them as percentages.

Ties between equal scores are broken towards the lower class index everywhere, the rule of
`np.argmax`, so top-1 accuracy, top-k accuracy and the confusion matrix always agree.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

# Beyond this many classes a cell is a few pixels wide: numbers in the cells would be unreadable.
MAX_CLASSES_WITH_CELL_TEXT = 20


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  probs = np.asarray(probs)
  labels = np.asarray(labels)
  if probs.ndim != 2:
    raise ValueError(f'probs must be [V, C], got shape {probs.shape}.')
  if labels.shape != (probs.shape[0],):
    raise ValueError(f'labels must be [V] = [{probs.shape[0]}] to match probs {probs.shape}, got '
                     f'shape {labels.shape}.')
  if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
    raise ValueError(f'labels must lie in [0, {probs.shape[1]}), found '
                     f'{labels.min()}..{labels.max()}.')
  return probs, labels.astype(np.int64)


def true_class_rank(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Rank of each video's true class among its scores (0: the top prediction).

  Args:
    probs: [V, C] scores (any monotone scores: probabilities, logits, SVM decision values).
    labels: [V] true class indices.

  Returns:
    int [V]: the number of classes scored above the true class, counting equal scores of
    lower-index classes as above (the `np.argmax` tie rule).
  """
  probs, labels = _check(probs, labels)
  true_score = np.take_along_axis(probs, labels[:, None], axis=1)
  lower_index = np.arange(probs.shape[1])[None, :] < labels[:, None]
  above = (probs > true_score) | ((probs == true_score) & lower_index)
  return above.sum(axis=1)


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
  """Fraction of videos whose true class is among their k highest scores.

  Args:
    probs: [V, C] per-video scores.
    labels: [V] true class indices.
    k: 1 <= k; values above C count as C (every video correct).
  """
  if k < 1:
    raise ValueError(f'k must be >= 1, got {k}.')
  ranks = true_class_rank(probs, labels)
  return float(np.mean(ranks < k)) if ranks.size else 0.0


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
  """Counts of (true class, predicted class) pairs.

  Args:
    pred: [V] predicted class indices.
    labels: [V] true class indices.
    num_classes: C.

  Returns:
    int64 [C, C]; entry [i, j] is the number of videos of true class i predicted as class j (rows
    are true classes, so a row sums to that class's number of videos).
  """
  pred = np.asarray(pred).astype(np.int64)
  labels = np.asarray(labels).astype(np.int64)
  if pred.shape != labels.shape or pred.ndim != 1:
    raise ValueError(f'pred and labels must both be [V], got {pred.shape} and {labels.shape}.')
  for name, values in (('pred', pred), ('labels', labels)):
    if values.size and (values.min() < 0 or values.max() >= num_classes):
      raise ValueError(f'{name} must lie in [0, {num_classes}), found {values.min()}..{values.max()}.')
  counts = np.bincount(labels * num_classes + pred, minlength=num_classes * num_classes)
  return counts.reshape(num_classes, num_classes)


def mean_class_accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
  """Top-1 accuracy of each class, averaged over the classes that have videos.

  Classes without any video in `labels` are left out of the mean (their accuracy is undefined), so
  a subset of a dataset is scored on the classes it holds.

  Args:
    probs: [V, C] per-video scores.
    labels: [V] true class indices.
  """
  probs, labels = _check(probs, labels)
  if not labels.size:
    return 0.0
  cm = confusion_matrix(np.argmax(probs, axis=1), labels, probs.shape[1])
  per_class_videos = cm.sum(axis=1)
  present = per_class_videos > 0
  return float(np.mean(np.diag(cm)[present] / per_class_videos[present]))


def compute_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float | int]:
  """The numbers of a results table row.

  Args:
    probs: [V, C] per-video scores.
    labels: [V] true class indices.

  Returns:
    {'top1', 'top5' (k clipped to C), 'mean_class_accuracy'}: fractions in [0, 1];
    'num_videos': V.
  """
  probs, labels = _check(probs, labels)
  return {
      'top1': top_k_accuracy(probs, labels, 1),
      'top5': top_k_accuracy(probs, labels, min(5, probs.shape[1])),
      'mean_class_accuracy': mean_class_accuracy(probs, labels),
      'num_videos': int(labels.size),
  }


def save_confusion_matrix_png(cm: np.ndarray, class_names: Sequence[str], path: str,
                              title: str) -> None:
  """Draws a confusion matrix as a PNG.

  Colours are row-normalised (the fraction of each true class's videos given each prediction) so
  that classes with few videos are as visible as large ones. Up to `MAX_CLASSES_WITH_CELL_TEXT`
  classes the counts are written in the cells; beyond, only colours, with small tick labels, and the
  figure grows with the number of classes so that 101 names stay legible.

  Args:
    cm: int [C, C] from `confusion_matrix` (rows: true classes).
    class_names: C names in label order.
    path: output .png path; parent folders are created.
    title: figure title.
  """
  # The Agg canvas directly, not pyplot: no global backend state, works on headless hosts and in
  # processes that already chose another backend.
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  cm = np.asarray(cm)
  num_classes = len(class_names)
  if cm.shape != (num_classes, num_classes):
    raise ValueError(f'cm must be [C, C] = [{num_classes}, {num_classes}] for {num_classes} class '
                     f'names, got {cm.shape}.')
  row_sums = cm.sum(axis=1, keepdims=True)
  fractions = np.divide(cm, row_sums, out=np.zeros(cm.shape, dtype=np.float64),
                        where=row_sums > 0)
  with_text = num_classes <= MAX_CLASSES_WITH_CELL_TEXT
  side_in = max(6.0, 0.16 * num_classes + 3.0)
  tick_fontsize = 8 if with_text else max(4.0, min(8.0, 500.0 / num_classes))

  fig = Figure(figsize=(side_in + 1.5, side_in), dpi=150 if num_classes > 50 else 100)
  FigureCanvasAgg(fig)
  ax = fig.add_subplot(1, 1, 1)
  image = ax.imshow(fractions, cmap='Blues', vmin=0.0, vmax=1.0, interpolation='none')
  fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label='fraction of the true class')
  ticks = np.arange(num_classes)
  ax.set_xticks(ticks)
  ax.set_yticks(ticks)
  ax.set_xticklabels(class_names, rotation=90, fontsize=tick_fontsize)
  ax.set_yticklabels(class_names, fontsize=tick_fontsize)
  ax.set_xlabel('predicted class')
  ax.set_ylabel('true class')
  ax.set_title(title)
  if with_text:
    for i in range(num_classes):
      for j in range(num_classes):
        if cm[i, j]:
          ax.text(j, i, str(int(cm[i, j])), ha='center', va='center', fontsize=8,
                  color='white' if fractions[i, j] > 0.5 else 'black')
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path)
