"""Metrics on small examples whose answers are worked out by hand in the comments."""

import numpy as np
import pytest

from twostream_jax.evaluation import classification_metrics

# Five videos, three classes; the rank of the true class is in the comment.
PROBS = np.array([
    [0.7, 0.2, 0.1],  # label 0: top prediction             -> rank 0
    [0.5, 0.3, 0.2],  # label 1: second                     -> rank 1
    [0.1, 0.3, 0.6],  # label 0: last                       -> rank 2
    [0.2, 0.5, 0.3],  # label 1: top                        -> rank 0
    [0.1, 0.8, 0.1],  # label 1: top                        -> rank 0
])
LABELS = np.array([0, 1, 0, 1, 1])


def test_top_k_accuracy():
  assert classification_metrics.top_k_accuracy(PROBS, LABELS, 1) == pytest.approx(3 / 5)  # ranks 0, 0, 0
  assert classification_metrics.top_k_accuracy(PROBS, LABELS, 2) == pytest.approx(4 / 5)  # + the rank-1 video
  assert classification_metrics.top_k_accuracy(PROBS, LABELS, 3) == pytest.approx(1.0)
  assert classification_metrics.top_k_accuracy(PROBS, LABELS, 10) == pytest.approx(1.0)  # k beyond C: all classes
  with pytest.raises(ValueError, match='k must be >= 1'):
    classification_metrics.top_k_accuracy(PROBS, LABELS, 0)


def test_ties_follow_argmax():
  # np.argmax([0.5, 0.5, 0]) is class 0: a label-0 video is right at k=1, a label-1 video is not.
  probs = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
  np.testing.assert_array_equal(classification_metrics.true_class_rank(probs, np.array([0, 1])), [0, 1])
  assert classification_metrics.top_k_accuracy(probs, np.array([0, 1]), 1) == pytest.approx(0.5)
  assert classification_metrics.top_k_accuracy(probs, np.array([0, 1]), 2) == pytest.approx(1.0)


def test_confusion_matrix():
  # argmax per row: 0, 0, 2, 1, 1 against labels 0, 1, 0, 1, 1.
  cm = classification_metrics.confusion_matrix(np.argmax(PROBS, axis=1), LABELS, 3)
  expected = np.array([
      [1, 0, 1],  # class 0: video 0 right, video 2 predicted as 2
      [1, 2, 0],  # class 1: video 1 predicted as 0, videos 3 and 4 right
      [0, 0, 0],  # class 2: no videos
  ])
  np.testing.assert_array_equal(cm, expected)
  with pytest.raises(ValueError, match=r'pred must lie in \[0, 3\)'):
    classification_metrics.confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)


def test_mean_class_accuracy_skips_classes_without_videos():
  # Class 0: 1 of 2 right; class 1: 2 of 3 right; class 2 has no video -> (1/2 + 2/3) / 2.
  assert classification_metrics.mean_class_accuracy(PROBS, LABELS) == pytest.approx(7 / 12)


def test_compute_metrics():
  metrics = classification_metrics.compute_metrics(PROBS, LABELS)
  assert metrics == pytest.approx({'top1': 3 / 5, 'top5': 1.0, 'mean_class_accuracy': 7 / 12,
                                   'num_videos': 5})
  assert isinstance(metrics['num_videos'], int)
  with pytest.raises(ValueError, match='labels must be'):
    classification_metrics.compute_metrics(PROBS, LABELS[:4])


def _png_size(path):
  with open(path, 'rb') as f:
    header = f.read(24)
  assert header[:8] == b'\x89PNG\r\n\x1a\n'
  return int.from_bytes(header[16:20], 'big'), int.from_bytes(header[20:24], 'big')


def test_confusion_matrix_png_small_and_many_classes(tmp_path):
  cm = classification_metrics.confusion_matrix(np.argmax(PROBS, axis=1), LABELS, 3)
  small = str(tmp_path / 'small.png')
  classification_metrics.save_confusion_matrix_png(cm, ['a', 'b', 'c'], small, 'three classes')
  rng = np.random.default_rng(0)
  # Past MAX_CLASSES_WITH_CELL_TEXT: colours only (bench-size 101 classes take seconds to draw).
  num_classes = 2 * classification_metrics.MAX_CLASSES_WITH_CELL_TEXT
  labels = rng.integers(0, num_classes, 500)
  pred = np.where(rng.random(500) < 0.8, labels, rng.integers(0, num_classes, 500))
  large = str(tmp_path / 'many' / 'large.png')
  classification_metrics.save_confusion_matrix_png(classification_metrics.confusion_matrix(pred, labels, num_classes),
                                   [f'Class{i:03d}' for i in range(num_classes)], large,
                                   f'{num_classes} classes')
  small_w, small_h = _png_size(small)
  large_w, large_h = _png_size(large)
  # The figure grows with the number of classes so that every tick label has room: 6 in square at
  # least, 0.16 in per class beyond (3 + 0.16 * 40 = 9.4 in, against 6 in for 3 classes).
  assert large_w > small_w and large_h == pytest.approx(small_h * 9.4 / 6, abs=2)
  with pytest.raises(ValueError, match='cm must be'):
    classification_metrics.save_confusion_matrix_png(cm, ['a', 'b'], small, 'wrong names')
